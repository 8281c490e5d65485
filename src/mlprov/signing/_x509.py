"""X.509 checks shared by the certificate signer and the certificate trust.

Chain validation uses ``cryptography``'s X.509 verification API (``PolicyBuilder`` and
its client verifier), never a hand-written path walk (docs/adr/0013). What is checked:

1. the leaf is inside its validity period at the checking time, with
   ``Limits.clock_skew_seconds`` of slack (checked first, for a clear message);
2. a path from the leaf through the bundle's certificates to a certificate the user
   trusts, validated by :func:`verify_chain`: issuers are CAs (WebPKI CA policy), every
   signature and validity period holds, and no certificate carries a critical extension
   nothing accounts for; the leaf policy is relaxed (see :func:`_leaf_policy`);
3. every certificate on the path is valid at the checking time;
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
    from cryptography.x509.verification import ExtensionPolicy

__all__ = [
    "check_signing_usage",
    "check_validity",
    "fingerprint",
    "load_certificates_der",
    "load_certificates_pem",
    "subject_of",
    "verification_time",
    "verify_chain",
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


def _leaf_policy() -> ExtensionPolicy:
    """Extensions allowed on the signing (end-entity) certificate: any, in any criticality.

    The WebPKI leaf policy refuses a leaf that asserts ``cA`` (the OMS reference test PKI
    signs with such a certificate, ``keys/signing-key-cert.pem``) and wants TLS-style
    names; neither says anything about code signing. What a signing leaf needs is checked
    by :func:`check_signing_usage`. An unknown *critical* extension is still refused: the
    verifier refuses every critical extension no policy accounts for (RFC 5280 4.2).
    """
    from cryptography.x509.verification import ExtensionPolicy  # noqa: PLC0415

    return ExtensionPolicy.permit_all()


def verify_chain(
    leaf: Certificate,
    intermediates: Sequence[Certificate],
    anchors: Sequence[Certificate],
    when: datetime,
) -> list[Certificate]:
    """The path leaf, intermediates..., trusted certificate, as of ``when``.

    Built and checked by ``cryptography``'s X.509 verifier (RFC 5280 path validation with
    the WebPKI CA policy: basicConstraints cA, keyCertSign, path length, names, signatures,
    validity at ``when``, no unaccounted-for critical extension) with the relaxed leaf
    policy of :func:`_leaf_policy`. Each given certificate is a trust anchor (so a user
    may trust an intermediate, or a leaf itself). SignatureError when there is no path.
    """
    from cryptography.x509.verification import (  # noqa: PLC0415
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    builder = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(when)
        .max_chain_depth(MAX_PATH_LENGTH)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_leaf_policy()
        )
    )
    try:
        verified = builder.build_client_verifier().verify(leaf, list(intermediates))
    except (VerificationError, ValueError, TypeError) as e:
        reason = str(e).split(" (encountered processing", 1)[0]
        raise SignatureError(
            f"the signing certificate {subject_of(leaf)!r} (issued by "
            f"{leaf.issuer.rfc4514_string()!r}) does not chain to any of the "
            f"{len(anchors)} trusted certificate(s) given: {reason}"
        ) from e
    return list(verified.chain)


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


def verification_time(leaf: Certificate, when: datetime, skew_seconds: int) -> datetime:
    """The time to validate the chain at: ``when``, moved into the leaf's validity period
    by at most the allowed clock skew (the leaf was checked with that slack already)."""
    slack = timedelta(seconds=skew_seconds)
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if not_before > when >= not_before - slack:
        return not_before
    if not_after < when <= not_after + slack:
        return not_after
    return when


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
