"""Signers: turn an OMS statement into a signed Sigstore bundle.

:class:`Signer` is the plug-in point: its public :meth:`Signer.sign` wraps the private
abstract :meth:`Signer._sign`, so every implementation gets the same checks (the
statement is non-empty and within limits; the bundle produced parses and carries the
exact statement bytes) and the same error mapping.

* :class:`KeySigner` - an ECDSA private key; the bundle names the key by its hint.
* :class:`CertificateSigner` - a key plus its certificate and chain; the bundle carries
  the leaf first, then the chain as given (the root is usually left out).
* :class:`SigstoreSigner` - keyless signing with the public-good Sigstore instance via
  the optional ``sigstore`` package. It needs a network and an OIDC identity token, so
  it is not exercised by the offline test suite.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import (
    ConfigError,
    InvalidInputError,
    MalformedDocumentError,
    MlprovError,
    StorageError,
)
from mlprov.signing._bundle import (
    certificate_material,
    key_material,
    parse_bundle,
    serialise_bundle,
)
from mlprov.signing._dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, EnvelopeSignature, pae
from mlprov.signing._identity import SignerIdentity
from mlprov.signing._keys import ecdsa_hash_for, key_hint, load_private_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.x509 import Certificate

__all__ = [
    "CertificateSigner",
    "KeySigner",
    "SignedBundle",
    "Signer",
    "SigstoreSigner",
]


@dataclass(frozen=True)
class SignedBundle:
    """A bundle as written (exact bytes) and who signed it."""

    bundle: bytes
    signer: SignerIdentity


class Signer(abc.ABC):
    """Signs an in-toto statement into an OMS Sigstore bundle."""

    limits: Limits = DEFAULT_LIMITS

    def sign(self, statement: bytes) -> SignedBundle:
        """Sign ``statement`` (the exact payload bytes) and return the bundle."""
        if not statement:
            raise InvalidInputError("nothing to sign: the statement is empty")
        if len(statement) > self.limits.max_document_bytes:
            raise InvalidInputError(
                f"the statement is {len(statement)} bytes, more than the limit of "
                f"{self.limits.max_document_bytes}; raise Limits.max_document_bytes"
            )
        signed = self._sign(statement)
        try:
            parsed = parse_bundle(signed.bundle, self.limits)
        except MalformedDocumentError as e:  # pragma: no cover - a bug in a signer
            raise MlprovError(f"the signer produced a malformed bundle: {e}") from e
        if parsed.envelope.payload != statement:  # pragma: no cover - a bug in a signer
            raise MlprovError("the signer changed the statement bytes it was given")
        return signed

    @abc.abstractmethod
    def _sign(self, statement: bytes) -> SignedBundle:
        """Produce the bundle; implementations raise only MlprovError subclasses."""


def _ecdsa_envelope(key: EllipticCurvePrivateKey, statement: bytes) -> Envelope:
    """DSSE-sign ``statement`` with ECDSA, hash matched to the curve, DER signature."""
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    signature = key.sign(
        pae(IN_TOTO_PAYLOAD_TYPE, statement), ec.ECDSA(ecdsa_hash_for(key.public_key()))
    )
    # keyid "" as the reference tool writes it (OMS v1.0 section 11.1 accepts it).
    return Envelope(IN_TOTO_PAYLOAD_TYPE, statement, (EnvelopeSignature(signature, ""),))


class KeySigner(Signer):
    """Sign with an ECDSA P-256 or P-384 private key."""

    def __init__(self, private_key: EllipticCurvePrivateKey) -> None:
        self._key = private_key
        self._hint = key_hint(private_key.public_key())

    @classmethod
    def from_pem(cls, pem: bytes, passphrase: bytes | None = None) -> KeySigner:
        return cls(load_private_key(pem, passphrase))

    @property
    def identity(self) -> SignerIdentity:
        return SignerIdentity("key", self._hint, None, self._hint)

    def _sign(self, statement: bytes) -> SignedBundle:
        envelope = _ecdsa_envelope(self._key, statement)
        return SignedBundle(serialise_bundle(envelope, key_material(self._hint)), self.identity)


class CertificateSigner(Signer):
    """Sign with a private key and its X.509 certificate (plus the chain to embed)."""

    def __init__(
        self,
        private_key: EllipticCurvePrivateKey,
        certificate: Certificate,
        chain: Sequence[Certificate] = (),
        *,
        now: datetime | None = None,
    ) -> None:
        from mlprov.signing import _x509  # noqa: PLC0415

        if certificate.public_key() != private_key.public_key():
            raise InvalidInputError(
                "the signing certificate's public key does not match the private key"
            )
        _x509.check_signing_usage(certificate)
        when = now or datetime.now(timezone.utc)
        try:
            _x509.check_validity([certificate], when, 0)
        except MlprovError as e:
            raise InvalidInputError(f"cannot sign with this certificate: {e}") from e
        self._key = private_key
        self._certificate = certificate
        self._chain = tuple(chain)

    @classmethod
    def from_pem(
        cls,
        key_pem: bytes,
        certificate_pem: bytes,
        chain_pems: Sequence[bytes] = (),
        passphrase: bytes | None = None,
    ) -> CertificateSigner:
        from mlprov.signing import _x509  # noqa: PLC0415

        key = load_private_key(key_pem, passphrase)
        leaf = _x509.load_certificates_pem(certificate_pem, "signing certificate")
        if len(leaf) != 1:
            raise InvalidInputError(
                f"the signing certificate file holds {len(leaf)} certificates; give the leaf "
                "alone and the rest with --certificate-chain"
            )
        chain = [
            certificate
            for pem in chain_pems
            for certificate in _x509.load_certificates_pem(pem, "certificate chain")
        ]
        return cls(key, leaf[0], chain)

    @property
    def identity(self) -> SignerIdentity:
        from mlprov.signing import _x509  # noqa: PLC0415

        return SignerIdentity(
            "certificate",
            _x509.subject_of(self._certificate),
            self._certificate.issuer.rfc4514_string(),
            _x509.fingerprint(self._certificate),
        )

    def _sign(self, statement: bytes) -> SignedBundle:
        from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

        envelope = _ecdsa_envelope(self._key, statement)
        ders = [c.public_bytes(Encoding.DER) for c in (self._certificate, *self._chain)]
        return SignedBundle(serialise_bundle(envelope, certificate_material(ders)), self.identity)


class SigstoreSigner(Signer):
    """Keyless signing with Sigstore (Fulcio certificate + Rekor entry); needs a network.

    The OIDC identity token comes from ``identity_token``, else from the environment
    (``SIGSTORE_ID_TOKEN`` or the ambient credentials ``sigstore`` detects, e.g. a
    GitHub Actions OIDC token). Untested offline: the test suite has no network.
    """

    def __init__(self, identity_token: str | None = None, *, staging: bool = False) -> None:
        self._token = identity_token
        self._staging = staging

    def _identity_token(self) -> object:
        from sigstore.oidc import IdentityError, IdentityToken, detect_credential  # noqa: PLC0415

        raw = self._token or os.environ.get("SIGSTORE_ID_TOKEN")
        try:
            if not raw:
                raw = detect_credential()
            if not raw:
                raise ConfigError(
                    "no OIDC identity token for Sigstore: pass --identity-token TOKEN, set "
                    "SIGSTORE_ID_TOKEN, or run where ambient credentials exist"
                )
            return IdentityToken(raw)
        except IdentityError as e:
            raise InvalidInputError(f"the OIDC identity token is not usable: {e}") from e

    def _sign(self, statement: bytes) -> SignedBundle:
        try:
            from sigstore import dsse  # noqa: PLC0415
            from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
            from sigstore.models import ClientTrustConfig  # noqa: PLC0415
            from sigstore.oidc import IdentityToken  # noqa: PLC0415
            from sigstore.sign import SigningContext  # noqa: PLC0415
        except ImportError as e:
            raise ConfigError(
                "Sigstore signing needs the optional 'sigstore' package: "
                "pip install 'mlprov[sigstore]'"
            ) from e
        token = self._identity_token()
        assert isinstance(token, IdentityToken)
        try:
            config = (
                ClientTrustConfig.staging() if self._staging else ClientTrustConfig.production()
            )
            context = SigningContext.from_trust_config(config)
            with context.signer(token, cache=True) as signer:
                bundle = signer.sign_dsse(dsse.Statement(statement))
        except SigstoreError as e:
            raise StorageError(f"Sigstore signing failed: {e}") from e
        issuer = token.federated_issuer or token.issuer
        identity = SignerIdentity("sigstore", token.identity, issuer, None)
        return SignedBundle(bundle.to_json().encode("utf-8"), identity)
