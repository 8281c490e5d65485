"""Trust declarations of the policy files -> :class:`mlprov.verification.TrustSet`.

Each declared signer becomes one :class:`~mlprov.verification.TrustedSigner` per key (a person
with two keys is one name with two entries: approvals count names, not keys), one for
its certificate roots, or one for its Sigstore identity. A key or root given as a file is
read from the files mapping the policy set was loaded from (paths relative to the policy
folder), never from the disk.

Sigstore identities with a regular expression (``subject_regex``, ``issuer_regex``) are
matched by :class:`PatternSigstoreTrust`: the bundle's leaf certificate is read (not
trusted) for its subject alternative names and OIDC issuer; every SAN that matches the
pattern is then verified as an *exact* identity by :class:`mlprov.signing.SigstoreTrust`
(chain to the Sigstore root, transparency log, SAN and issuer), so the pattern only picks
which exact identity sigstore-python is asked to verify.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from mlprov.config import Limits
from mlprov.errors import InvalidInputError, SignatureError
from mlprov.policy._documents import PemSource, SignerDeclaration
from mlprov.signing import (
    CertificateTrust,
    KeyTrust,
    SignerIdentity,
    SigstoreTrust,
    Trust,
)
from mlprov.verification import TrustedSigner

__all__ = ["PatternSigstoreTrust", "SignerKind", "normalise_relative_path"]

# Fulcio's OIDC issuer extension (v1, raw bytes): what sigstore-python's Identity policy
# compares the issuer with (sigstore.verify.policy.OIDCIssuer).
_FULCIO_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
# Fulcio's "other name" SAN for identities that are neither e-mail nor URI.
_FULCIO_OTHERNAME = "1.3.6.1.4.1.57264.1.7"


@dataclass(frozen=True)
class SignerKind:
    """How a declared signer's name relates to people: ``exact`` declarations (keys, an
    exact Sigstore identity) are one identity; ``pattern`` ones (certificate roots, a
    Sigstore regex) admit many, told apart by the verified subject."""

    name: str
    roles: frozenset[str]
    exact: bool


def normalise_relative_path(text: str) -> str:
    """A file name inside the policy folder, as POSIX text; ValueError for anything that
    could leave it (absolute, ``..``, backslashes)."""
    if not text or "\\" in text or "\x00" in text:
        raise ValueError(f"{text[:80]!r} is not a relative POSIX path")
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{text[:80]!r} must be relative to the policy folder, without '..'")
    return path.as_posix()


def _leaf_identities(der: bytes) -> tuple[list[str], str | None]:
    """The SANs (e-mail, URI, Fulcio other name) and the OIDC issuer a leaf claims."""
    from cryptography import x509  # noqa: PLC0415

    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise SignatureError(f"the Sigstore bundle's certificate does not parse: {e}") from e
    sans: list[str] = []
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    if names is not None:
        sans.extend(names.get_values_for_type(x509.RFC822Name))
        sans.extend(names.get_values_for_type(x509.UniformResourceIdentifier))
        for other in names.get_values_for_type(x509.OtherName):
            if other.type_id.dotted_string == _FULCIO_OTHERNAME:
                # As sigstore-python reads it (policy.Identity): the raw value as text.
                sans.append(other.value.decode(errors="replace"))
    issuer: str | None = None
    for extension in certificate.extensions:
        if extension.oid.dotted_string == _FULCIO_ISSUER_V1:
            value: Any = extension.value
            issuer = bytes(value.value).decode(errors="replace")
    return sans, issuer


class PatternSigstoreTrust(Trust):
    """Sigstore signatures whose identity and issuer match anchored regular expressions
    (or an exact issuer), verified offline like :class:`~mlprov.signing.SigstoreTrust`."""

    method = "sigstore"

    def __init__(
        self,
        *,
        subject: str | None = None,
        subject_regex: str | None = None,
        issuer: str | None = None,
        issuer_regex: str | None = None,
    ) -> None:
        if (subject is None) == (subject_regex is None) or (issuer is None) == (
            issuer_regex is None
        ):
            raise InvalidInputError(
                "give a subject or a subject regex, an issuer or an issuer regex"
            )
        self._subject = subject
        self._subject_pattern = re.compile(subject_regex) if subject_regex is not None else None
        self._issuer = issuer
        self._issuer_pattern = re.compile(issuer_regex) if issuer_regex is not None else None
        self.description = (
            f"identity {subject!r}" if subject is not None else f"identity ~ {subject_regex!r}"
        ) + (f", issuer {issuer!r}" if issuer is not None else f", issuer ~ {issuer_regex!r}")

    def _subject_matches(self, san: str) -> bool:
        if self._subject_pattern is not None:
            return self._subject_pattern.fullmatch(san) is not None
        return san == self._subject

    def _issuer_matches(self, issuer: str) -> bool:
        if self._issuer_pattern is not None:
            return self._issuer_pattern.fullmatch(issuer) is not None
        return issuer == self._issuer

    def _authenticate(
        self, bundle: Any, *, now: datetime, limits: Limits, record: Any
    ) -> SignerIdentity:
        if not bundle.certificates:
            raise SignatureError("the Sigstore bundle has no certificate")
        sans, issuer = _leaf_identities(bundle.certificates[0])
        if issuer is None or not self._issuer_matches(issuer):
            raise SignatureError(
                f"the Sigstore certificate's issuer {issuer!r} does not match {self.description}"
            )
        candidates = [san for san in sans if self._subject_matches(san)]
        if not candidates:
            raise SignatureError(
                f"no identity of the Sigstore certificate ({', '.join(sans)[:200] or 'none'}) "
                f"matches {self.description}"
            )
        failure: SignatureError | None = None
        for san in candidates:
            try:
                # The exact identity sigstore verifies (chain, log, SAN, issuer): the
                # pattern above only chose it from what the certificate claims.
                return SigstoreTrust(san, issuer).authenticate(
                    bundle, now=now, limits=limits, record=record
                )
            except SignatureError as e:
                failure = e
        assert failure is not None
        raise failure


def build_trusted_signers(
    declaration: SignerDeclaration, files: Mapping[str, bytes]
) -> tuple[TrustedSigner, ...]:
    """The :class:`TrustedSigner` entries of one :class:`SignerDeclaration`.

    ValueError (one line) for a file that is not in ``files`` or a PEM that does not load.
    """
    roles = frozenset(declaration.roles)
    builder_ids = tuple(declaration.builder_ids)

    def pem_bytes(source: PemSource) -> bytes:
        if source.pem is not None:
            return str(source.pem).encode("utf-8")
        name = normalise_relative_path(source.file or "")
        if name not in files:
            raise ValueError(f"the file {name!r} is not in the policy folder")
        return files[name]

    def signer(trust: Trust) -> TrustedSigner:
        return TrustedSigner(declaration.name, roles, trust, builder_ids)

    try:
        if declaration.keys is not None:
            return tuple(signer(KeyTrust(pem_bytes(source))) for source in declaration.keys)
        if declaration.certificate_roots is not None:
            return (
                signer(CertificateTrust([pem_bytes(s) for s in declaration.certificate_roots])),
            )
    except InvalidInputError as e:
        raise ValueError(e.message) from e
    identity = declaration.sigstore
    assert identity is not None  # the declaration validated: exactly one kind of trust
    if identity.subject is not None and identity.issuer is not None:
        return (signer(SigstoreTrust(identity.subject, identity.issuer)),)
    return (
        signer(
            PatternSigstoreTrust(
                subject=identity.subject,
                subject_regex=identity.subject_regex,
                issuer=identity.issuer,
                issuer_regex=identity.issuer_regex,
            )
        ),
    )


def referenced_files(declaration: SignerDeclaration) -> tuple[str, ...]:
    """The policy-folder files a signer declaration reads (keys, roots given by file)."""
    sources = list(declaration.keys or ()) + list(declaration.certificate_roots or ())
    names = []
    for source in sources:
        if source.file is not None:
            try:
                names.append(normalise_relative_path(source.file))
            except ValueError:
                continue
    return tuple(names)
