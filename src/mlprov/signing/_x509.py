"""X.509 helpers shared by the certificate signer and the certificate trust.

Chain validation is done here with ``cryptography`` primitives rather than a WebPKI
verifier, because code-signing PKIs (the OMS reference test PKI included) use
certificates a TLS-oriented verifier refuses. What is checked, in order:

1. a path from the leaf through the bundle's certificates to a certificate the user
   trusts (each link: issuer name equals subject name and the issuer's key verifies the
   signature; a trusted certificate ends the path, even as the leaf itself);
2. every issuer on the path is a CA (basicConstraints cA, keyUsage keyCertSign when
   keyUsage is present, pathLenConstraint respected); a trusted certificate without
   basicConstraints is accepted as an explicit trust decision;
3. every certificate on the path is inside its validity period at the checking time
   (``Limits.clock_skew_seconds`` of slack);
4. the leaf may sign: keyUsage digitalSignature, or extendedKeyUsage codeSigning
   (the rule of the reference tool ``model_signing`` 1.1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mlprov.errors import InvalidInputError, SignatureError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = [
    "build_path",
    "check_ca",
    "check_signing_usage",
    "check_validity",
    "fingerprint",
    "load_certificates_der",
    "load_certificates_pem",
    "subject_of",
]

MAX_PATH_LENGTH = 10


def load_certificates_pem(pem: bytes, what: str) -> list[Certificate]:
    """Every certificate in a PEM file (a bundle of several is fine)."""
    from cryptography import x509  # noqa: PLC0415

    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise InvalidInputError(f"{what}: no PEM certificate could be read ({e})") from e
    if not certificates:
        raise InvalidInputError(f"{what}: holds no PEM certificate")
    return certificates


def load_certificates_der(ders: Sequence[bytes], what: str) -> list[Certificate]:
    """Certificates from DER bytes (as carried in a bundle); malformed ones are refused."""
    from cryptography import x509  # noqa: PLC0415

    from mlprov.errors import MalformedDocumentError  # noqa: PLC0415

    certificates = []
    for index, der in enumerate(ders):
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError as e:
            raise MalformedDocumentError(f"{what}[{index}] is not a DER certificate: {e}") from e
    return certificates


def subject_of(certificate: Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def fingerprint(certificate: Certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def _issued_by(child: Certificate, issuer: Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415

    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def build_path(
    leaf: Certificate, intermediates: Sequence[Certificate], anchors: Sequence[Certificate]
) -> list[Certificate]:
    """Leaf, intermediates..., trusted certificate; SignatureError if there is none."""

    def is_anchor(certificate: Certificate) -> bool:
        return any(certificate == anchor for anchor in anchors)

    def extend(path: list[Certificate]) -> list[Certificate] | None:
        current = path[-1]
        if is_anchor(current):
            return path
        if len(path) >= MAX_PATH_LENGTH:
            return None
        for anchor in anchors:
            if _issued_by(current, anchor):
                return [*path, anchor]
        for candidate in intermediates:
            if any(candidate == seen for seen in path):
                continue
            if _issued_by(current, candidate):
                found = extend([*path, candidate])
                if found is not None:
                    return found
        return None

    path = extend([leaf])
    if path is None:
        raise SignatureError(
            f"the signing certificate {subject_of(leaf)!r} (issued by "
            f"{leaf.issuer.rfc4514_string()!r}) does not chain to any of the "
            f"{len(anchors)} trusted certificate(s) given"
        )
    return path


def check_ca(path: Sequence[Certificate], anchors: Sequence[Certificate]) -> None:
    """Every issuer on the path is allowed to issue certificates."""
    from cryptography import x509  # noqa: PLC0415

    for depth, issuer in enumerate(path[1:], start=1):
        trusted = any(issuer == anchor for anchor in anchors)
        try:
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            if trusted:
                continue
            raise SignatureError(
                f"certificate {subject_of(issuer)!r} issued another but is not a CA "
                "(no basicConstraints)"
            ) from None
        if not constraints.ca:
            raise SignatureError(
                f"certificate {subject_of(issuer)!r} issued another but is not a CA"
            )
        # Intermediate CAs below this issuer, leaf excluded (RFC 5280 section 4.2.1.9).
        below = depth - 1
        if constraints.path_length is not None and below > constraints.path_length:
            raise SignatureError(
                f"certificate {subject_of(issuer)!r} allows {constraints.path_length} "
                f"intermediate CA(s) below it, the chain has {below}"
            )
        try:
            usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if not usage.key_cert_sign:
            raise SignatureError(
                f"certificate {subject_of(issuer)!r} issued another but lacks keyCertSign"
            )


def check_validity(path: Sequence[Certificate], when: datetime, skew_seconds: int) -> None:
    """Every certificate on the path is inside its validity period at ``when``."""
    slack = timedelta(seconds=skew_seconds)
    for certificate in path:
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
        if when + slack < not_before:
            raise SignatureError(
                f"certificate {subject_of(certificate)!r} is not valid before "
                f"{not_before.isoformat()} (checked at {when.isoformat(timespec='seconds')})"
            )
        if when - slack > not_after:
            raise SignatureError(
                f"certificate {subject_of(certificate)!r} expired on {not_after.isoformat()} "
                f"(checked at {when.isoformat(timespec='seconds')}); mlprov refuses "
                "certificates outside their validity period"
            )


def check_signing_usage(leaf: Certificate) -> str:
    """The leaf may sign (keyUsage digitalSignature or EKU codeSigning); returns which."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: PLC0415

    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        if usage.digital_signature:
            return "keyUsage digitalSignature"
    except x509.ExtensionNotFound:
        pass
    try:
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING in extended:
            return "extendedKeyUsage codeSigning"
    except x509.ExtensionNotFound:
        pass
    raise SignatureError(
        f"certificate {subject_of(leaf)!r} may not sign: it has neither keyUsage "
        "digitalSignature nor extendedKeyUsage codeSigning"
    )
