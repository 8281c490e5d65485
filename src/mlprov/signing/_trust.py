"""What the user trusts, and how a bundle is authenticated against it.

A key or certificate carried inside a bundle is never trusted by itself:

* :class:`KeyTrust` - the user's public key. The bundle's ``publicKey.hint`` (or, in
  bundles older than model_signing 1.1, its ``rawBytes``) must name that key, and the
  DSSE signature must verify with the user's key, never with one from the bundle.
* :class:`CertificateTrust` - the user's root (and optionally intermediate)
  certificates. The bundle's leaf must chain to one of them (see
  :mod:`mlprov.signing._x509` for every rule). Certificates must be valid at
  verification time: an expired leaf is refused even though ``model_signing`` 1.1
  accepts it (it checks at the leaf's notBefore), because OMS v1.0 section 8.2 says the
  leaf "MUST be within its validity period" and no trusted timestamp is verified for
  certificate bundles.
* :class:`SigstoreTrust` - an identity and OIDC issuer. Verified offline by the
  ``sigstore`` package against the public-good trusted root it ships (or a trusted root
  file given), read through sigstore's public API in offline mode and never refreshed
  over the network; ``sigstore`` is imported only here.

:class:`Trust` is the plug-in point: the public :meth:`Trust.authenticate` checks that
the bundle's signing method is the one this trust handles and maps foreign errors;
implementations write :meth:`Trust._authenticate`.
"""

from __future__ import annotations

import abc
import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from mlprov.config import Limits
from mlprov.errors import (
    ConfigError,
    InvalidInputError,
    MalformedDocumentError,
    NotFoundError,
    SignatureError,
)
from mlprov.signing._bundle import SignatureBundle, SigningMethod
from mlprov.signing._dsse import IN_TOTO_PAYLOAD_TYPE
from mlprov.signing._identity import SignerIdentity
from mlprov.signing._keys import (
    describe_key,
    ecdsa_hash_for,
    key_hint,
    load_public_key,
    public_key_pem,
    require_ecdsa_key,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from cryptography.hazmat.primitives.hashes import HashAlgorithm
    from sigstore.models import TrustedRoot

__all__ = [
    "CarriedSignature",
    "CertificateTrust",
    "CheckRecorder",
    "KeyTrust",
    "SigstoreTrust",
    "Trust",
    "check_carried_signature",
]

#: Called once per passed check: (check name, detail). Failures are raised.
CheckRecorder = Callable[[str, str], None]

_METHOD_HINTS: dict[str, str] = {
    "key": "verify it with --key PUBLIC_KEY",
    "certificate": "verify it with --certificate-chain ROOT",
    "sigstore": "verify it with --identity and --issuer",
}


class Trust(abc.ABC):
    """What the user trusts for one signing method."""

    method: ClassVar[SigningMethod]

    def authenticate(
        self, bundle: SignatureBundle, *, now: datetime, limits: Limits, record: CheckRecorder
    ) -> SignerIdentity:
        """Check the bundle's signature against this trust; return who signed.

        Raises SignatureError when it does not verify, MalformedDocumentError when the
        bundle's material cannot be read. ``record`` is told about each passed check.
        """
        if bundle.method != self.method:
            raise SignatureError(
                f"the signature was made with a {bundle.method} ({_METHOD_HINTS[bundle.method]}), "
                f"but a {self.method} was given as trust"
            )
        record("trust", f"{bundle.method} signature, {self.method} trust given")
        return self._authenticate(bundle, now=now, limits=limits, record=record)

    @abc.abstractmethod
    def _authenticate(
        self, bundle: SignatureBundle, *, now: datetime, limits: Limits, record: CheckRecorder
    ) -> SignerIdentity:
        """Implementations raise only MlprovError subclasses."""


def _verify_ecdsa(key: EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    try:
        key.verify(signature, message, ec.ECDSA(ecdsa_hash_for(key)))
    except InvalidSignature:
        return False
    return True


def legacy_pae(payload: bytes) -> bytes:
    """The message model_signing 0.2 signed instead of the DSSE PAE (docs/adr/0010).

    Its encoder formatted the payload *bytes* into a text string, so what was signed is
    ``DSSEV1`` (capital V), the in-toto payload type and its length, the payload's byte
    length, and then the Python ``repr`` of the payload bytes (``b'...'`` with escapes),
    all UTF-8 encoded. The reference verifier (model_signing 1.1) accepts this encoding
    when the real PAE does not verify; so does mlprov, and nothing else.
    """
    text = f"DSSEV1 {len(IN_TOTO_PAYLOAD_TYPE)} {IN_TOTO_PAYLOAD_TYPE} {len(payload)} {payload!r}"
    return text.encode("utf-8")


def _check_dsse_signature(
    key: EllipticCurvePublicKey,
    bundle: SignatureBundle,
    whose: str,
    record: CheckRecorder,
    *,
    legacy_hash: HashAlgorithm,
) -> None:
    """DSSE v1.0.2 over the exact payload; else the model_signing 0.2 encoding.

    ``legacy_hash`` is the hash the reference verifier uses on its compatibility path:
    the curve's hash for keys, always SHA-256 for certificates (0.2 hard-coded it).
    """
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    # Only signatures[0] counts, as in the reference tool; the envelope has at least one.
    signature = bundle.envelope.signatures[0].sig
    if _verify_ecdsa(key, signature, bundle.envelope.pae()):
        record("signature", f"DSSE signature verifies with {whose}")
        return
    if bundle.envelope.payload_type == IN_TOTO_PAYLOAD_TYPE:
        try:
            key.verify(signature, legacy_pae(bundle.envelope.payload), ec.ECDSA(legacy_hash))
        except InvalidSignature:
            pass
        else:
            record(
                "signature",
                f"signature verifies with {whose} over the pre-1.0 model_signing encoding "
                f"(model_signing 0.2 PAE, {legacy_hash.name.upper()}); re-sign to use DSSE PAE",
            )
            return
    raise SignatureError(
        f"the DSSE signature does not verify with {whose}: the signature, the payload or "
        "the key is not the one that was signed with"
    )


class KeyTrust(Trust):
    """Trust one public key (PEM)."""

    method = "key"

    def __init__(self, public_key_pem_text: bytes) -> None:
        self._key: PublicKeyTypes = load_public_key(public_key_pem_text)

    @property
    def hint(self) -> str:
        return key_hint(self._key)

    def _authenticate(
        self, bundle: SignatureBundle, *, now: datetime, limits: Limits, record: CheckRecorder
    ) -> SignerIdentity:
        try:
            key = require_ecdsa_key(self._key, "the given public key")
        except InvalidInputError as e:
            raise SignatureError(f"{e}; it cannot have made this signature") from e
        hint = key_hint(key)
        if bundle.key_hint:
            if bundle.key_hint.lower() != hint:
                raise SignatureError(
                    f"the signature names key {bundle.key_hint[:16]}..., the given key is "
                    f"{hint[:16]}... ({describe_key(key)}): wrong key"
                )
            record("key", f"bundle names the given key (hint {hint[:16]}...)")
        elif bundle.key_raw_bytes is not None:
            # model_signing < 1.1 embedded the key itself; compare, never use it.
            embedded = bundle.key_raw_bytes
            try:
                theirs = load_public_key(
                    embedded if b"-----BEGIN" in embedded else _der_to_pem(embedded)
                )
            except InvalidInputError as e:
                raise MalformedDocumentError(
                    f"verificationMaterial.publicKey.rawBytes is not a public key: {e}"
                ) from e
            if public_key_pem(theirs) != public_key_pem(key):
                raise SignatureError(
                    f"the signature embeds key {key_hint(theirs)[:16]}..., the given key is "
                    f"{hint[:16]}...: wrong key"
                )
            record("key", "bundle embeds the given key (model_signing < 1.1 format)")
        _check_dsse_signature(
            key,
            bundle,
            f"the given key ({describe_key(key)})",
            record,
            legacy_hash=ecdsa_hash_for(key),
        )
        return SignerIdentity("key", hint, None, hint)


def _sha256() -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415

    # model_signing 0.2 signed with SHA-256 whatever the certificate's curve; its 1.1
    # verifier checks certificate bundles on the compatibility path with SHA-256 only.
    return hashes.SHA256()


def _der_to_pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN PUBLIC KEY-----\n" + b"\n".join(lines) + b"\n-----END PUBLIC KEY-----\n"


class CertificateTrust(Trust):
    """Trust certificates chaining to the given root (or intermediate) certificates."""

    method = "certificate"

    def __init__(self, anchor_pems: Sequence[bytes]) -> None:
        from mlprov.signing import _x509  # noqa: PLC0415

        if not anchor_pems:
            raise InvalidInputError("give at least one trusted certificate (--certificate-chain)")
        self._anchors = [
            certificate
            for pem in anchor_pems
            for certificate in _x509.load_certificates_pem(pem, "trusted certificate chain")
        ]

    def _authenticate(
        self, bundle: SignatureBundle, *, now: datetime, limits: Limits, record: CheckRecorder
    ) -> SignerIdentity:
        from mlprov.signing import _x509  # noqa: PLC0415

        certificates = _x509.load_certificates_der(
            bundle.certificates, "x509CertificateChain.certificates"
        )
        leaf, intermediates = certificates[0], certificates[1:]
        # Validity at verification time; see the module docstring for why not notBefore.
        _x509.check_validity([leaf], now, limits.clock_skew_seconds)
        path = _x509.verify_chain(
            leaf,
            intermediates,
            self._anchors,
            _x509.verification_time(leaf, now, limits.clock_skew_seconds),
        )
        record(
            "certificate-chain",
            " <- ".join(repr(_x509.subject_of(c)) for c in path) + " (trusted)",
        )
        _x509.check_validity(path, now, limits.clock_skew_seconds)
        record("certificate-validity", f"all {len(path)} certificates valid at {now.isoformat()}")
        usage = _x509.check_signing_usage(leaf)
        record("certificate-usage", f"leaf may sign ({usage})")
        try:
            key = require_ecdsa_key(leaf.public_key(), "the signing certificate's key")
        except InvalidInputError as e:
            raise SignatureError(str(e)) from e
        _check_dsse_signature(
            key,
            bundle,
            "the signing certificate's key",
            record,
            legacy_hash=_sha256(),
        )
        return SignerIdentity(
            "certificate",
            _x509.subject_of(leaf),
            leaf.issuer.rfc4514_string(),
            _x509.fingerprint(leaf),
        )


class _OfflineNotice(logging.Filter):
    """Drops sigstore's "loaded in offline mode" warning, which mlprov asks for on purpose.

    Without a logging configuration Python prints warnings to stderr, so the notice would
    break the CLI's one-line output on every Sigstore verification.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("TUF repository is loaded in offline mode")


_OFFLINE_NOTICE = _OfflineNotice()


def _public_good_root() -> TrustedRoot:
    """The Sigstore public-good trusted root, offline, through sigstore's public API.

    ``ClientTrustConfig.production(offline=True)`` never touches the network: it seeds
    sigstore's TUF cache (``$XDG_CACHE_HOME/sigstore-python``, else ``~/.cache``) with the
    trusted root bundled in the package when the cache has none, and reads the cache. A
    root that an online ``sigstore`` run refreshed there is used as it stands.
    """
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
    from sigstore.models import ClientTrustConfig  # noqa: PLC0415

    # The logger of sigstore's TUF module (sigstore 4.x); addFilter ignores a repeat.
    logging.getLogger("sigstore._internal.tuf").addFilter(_OFFLINE_NOTICE)
    try:
        return ClientTrustConfig.production(offline=True).trusted_root
    except OSError as e:
        raise ConfigError(
            f"Sigstore's trust cache cannot be prepared ({e.strerror or e}: {e.filename}); "
            "point XDG_CACHE_HOME at a writable folder"
        ) from e
    except (SigstoreError, ValueError) as e:
        raise ConfigError(f"the Sigstore public-good trusted root cannot be read: {e}") from e


def _trusted_root_file(path: Path) -> TrustedRoot:
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
    from sigstore.models import TrustedRoot  # noqa: PLC0415

    try:
        return TrustedRoot.from_file(str(path))
    except FileNotFoundError as e:
        raise NotFoundError(f"Sigstore trusted root {path}: no such file") from e
    except OSError as e:
        raise ConfigError(f"Sigstore trusted root {path}: {e.strerror or e}") from e
    except (SigstoreError, ValueError) as e:
        raise ConfigError(f"Sigstore trusted root {path} cannot be read: {e}") from e


class SigstoreTrust(Trust):
    """Trust Sigstore signatures by one identity from one OIDC issuer, verified offline.

    ``trusted_root`` names a ``trusted_root.json`` file (e.g. of a private Sigstore
    instance); without it the public-good root that ships with ``sigstore`` is used.
    """

    method = "sigstore"

    def __init__(self, identity: str, issuer: str, *, trusted_root: Path | None = None) -> None:
        if not identity or not issuer:
            raise InvalidInputError("Sigstore trust needs both --identity and --issuer")
        self.identity = identity
        self.issuer = issuer
        self._trusted_root = trusted_root

    def _authenticate(
        self, bundle: SignatureBundle, *, now: datetime, limits: Limits, record: CheckRecorder
    ) -> SignerIdentity:
        try:
            # Imported here: sigstore costs about 0.3 s, and only Sigstore bundles need it.
            from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
            from sigstore.models import Bundle  # noqa: PLC0415
            from sigstore.verify import Verifier, policy  # noqa: PLC0415
        except ImportError as e:
            raise ConfigError(
                "the 'sigstore' package, a dependency of mlprov, is missing: "
                "pip install 'sigstore>=4.0,<5'"
            ) from e
        if self._trusted_root is None:
            root = _public_good_root()
        else:
            root = _trusted_root_file(self._trusted_root)
        try:
            parsed = Bundle.from_json(bundle.raw)
        except (SigstoreError, ValueError) as e:
            raise MalformedDocumentError(f"Sigstore bundle does not parse: {e}") from e
        try:
            verifier = Verifier(trusted_root=root)
            payload_type, payload = verifier.verify_dsse(
                parsed, policy.Identity(identity=self.identity, issuer=self.issuer)
            )
        except (SigstoreError, ValueError) as e:
            raise SignatureError(
                f"Sigstore verification failed for identity {self.identity!r} and issuer "
                f"{self.issuer!r}: {e}"
            ) from e
        if payload != bundle.envelope.payload or payload_type != bundle.envelope.payload_type:
            raise SignatureError("Sigstore verified a payload other than the bundle's envelope")
        record(
            "sigstore",
            f"certificate chains to the Sigstore public-good root, transparency log entry "
            f"verified, identity {self.identity!r} from issuer {self.issuer!r}",
        )
        record("signature", "DSSE signature verifies with the Fulcio certificate's key")
        return SignerIdentity("sigstore", self.identity, self.issuer, None)


#: Fulcio's OIDC issuer extensions: v2 (a DER UTF8String) and the deprecated v1 (raw
#: UTF-8), https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md.
_FULCIO_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_FULCIO_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"


@dataclass(frozen=True)
class CarriedSignature:
    """Who a bundle says signed it, and whether its DSSE signature verifies with the key
    or certificate the bundle itself carries. Integrity, never trust: anyone can make a
    bundle that verifies with its own certificate."""

    signer: SignerIdentity
    #: True when the signature verified with the carried material; False when the bundle
    #: carries none (a key-mode bundle names its key by hint only).
    verified: bool


def _der_utf8_string(value: bytes) -> str | None:
    # DER UTF8String (tag 12) with a short or long definite length (X.690, 8.1.3).
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    body = value[offset : offset + length]
    return body.decode("utf-8", "replace") if len(body) == length else None


def _fulcio_identity(leaf: object) -> SignerIdentity:
    from cryptography import x509  # noqa: PLC0415

    assert isinstance(leaf, x509.Certificate)
    subject = ""
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    if names is not None:
        found = names.get_values_for_type(x509.RFC822Name) or names.get_values_for_type(
            x509.UniformResourceIdentifier
        )
        subject = found[0] if found else ""
    issuer = None
    for extension in leaf.extensions:
        value = getattr(extension.value, "value", None)
        if not isinstance(value, bytes):
            continue
        if extension.oid.dotted_string == _FULCIO_ISSUER_V2:
            issuer = _der_utf8_string(value)
            break
        if extension.oid.dotted_string == _FULCIO_ISSUER_V1:
            issuer = value.decode("utf-8", "replace")
    return SignerIdentity("sigstore", subject or "(no identity)", issuer, None)


def check_carried_signature(bundle: SignatureBundle) -> CarriedSignature:
    """The bundle's own claim of who signed, checked for integrity only.

    * key mode: the signer is the key the ``publicKey.hint`` names; a bundle older than
      model_signing 1.1 embeds the key (``rawBytes``) and is verified with it, a newer
      one carries none and is not verified (``verified`` False);
    * certificate mode: the leaf's subject and issuer, as :class:`CertificateTrust`
      reports them, verified with the leaf's key (no chain, no validity period);
    * sigstore mode: the Fulcio leaf's identity (SAN) and OIDC issuer, as
      :class:`SigstoreTrust` reports them, verified with the leaf's key (no root, no
      transparency log).

    Raises SignatureError when the carried material does not verify the signature,
    MalformedDocumentError when it cannot be read.
    """

    def ignore(_name: str, _detail: str) -> None:
        return None

    if bundle.method == "key":
        if bundle.key_raw_bytes is None:
            hint = (bundle.key_hint or "").lower()
            return CarriedSignature(SignerIdentity("key", hint, None, hint), False)
        embedded = bundle.key_raw_bytes
        try:
            key = require_ecdsa_key(
                load_public_key(embedded if b"-----BEGIN" in embedded else _der_to_pem(embedded)),
                "the bundle's embedded key",
            )
        except InvalidInputError as e:
            raise MalformedDocumentError(
                f"verificationMaterial.publicKey.rawBytes is not an ECDSA public key: {e}"
            ) from e
        hint = key_hint(key)
        if bundle.key_hint and bundle.key_hint.lower() != hint:
            raise SignatureError(
                f"the bundle names key {bundle.key_hint[:16]}... but embeds key {hint[:16]}..."
            )
        _check_dsse_signature(
            key, bundle, "the key the bundle embeds", ignore, legacy_hash=ecdsa_hash_for(key)
        )
        return CarriedSignature(SignerIdentity("key", hint, None, hint), True)

    from mlprov.signing import _x509  # noqa: PLC0415

    what = (
        "x509CertificateChain.certificates"
        if bundle.method == "certificate"
        else "verificationMaterial.certificate"
    )
    leaf = _x509.load_certificates_der(bundle.certificates[:1], what)[0]
    try:
        key = require_ecdsa_key(leaf.public_key(), "the signing certificate's key")
    except InvalidInputError as e:
        raise SignatureError(str(e)) from e
    if bundle.method == "certificate":
        signer = SignerIdentity(
            "certificate",
            _x509.subject_of(leaf),
            leaf.issuer.rfc4514_string(),
            _x509.fingerprint(leaf),
        )
        legacy_hash = _sha256()
    else:
        signer = _fulcio_identity(leaf)
        legacy_hash = ecdsa_hash_for(key)
    _check_dsse_signature(
        key, bundle, "the certificate the bundle carries", ignore, legacy_hash=legacy_hash
    )
    return CarriedSignature(signer, True)
