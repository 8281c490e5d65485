"""Sigstore bundle v0.3 JSON, as OMS uses it: read (untrusted, bounded) and write.

A bundle is ``{mediaType, verificationMaterial, dsseEnvelope}``. The verification
material says which of the three OMS signing methods made it (OMS v1.0 section 4.1):

========== =========================================== ============================
method     verificationMaterial                        notes
========== =========================================== ============================
key        ``publicKey.hint`` (or ``rawBytes`` < 1.1)  ``tlogEntries`` empty/absent
certificate ``x509CertificateChain.certificates``       leaf first, DER in base64
sigstore   ``certificate`` + ``tlogEntries`` (>= 1)     verified with ``sigstore``
========== =========================================== ============================

Reading checks structure only: nothing in a bundle is trusted until
:mod:`mlprov.signing._trust` has checked it against what the user trusts. Each refusal
is a :class:`~mlprov.errors.MalformedDocumentError` with a one-line message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import MalformedDocumentError
from mlprov.signing._dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, b64decode, b64encode
from mlprov.signing._json import parse_json_object

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "MAX_CHAIN_LENGTH",
    "SignatureBundle",
    "SigningMethod",
    "certificate_material",
    "key_material",
    "parse_bundle",
    "serialise_bundle",
]

#: The media type OMS bundles carry (Sigstore bundle v0.3).
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# The older spelling of the same version that Sigstore clients also accept.
_MEDIA_TYPES = frozenset(
    {BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"}
)

#: Most certificates accepted in one chain (bounds path building).
MAX_CHAIN_LENGTH = 10

SigningMethod = Literal["key", "certificate", "sigstore"]


@dataclass(frozen=True)
class SignatureBundle:
    """A structurally valid OMS bundle; nothing in it is trusted yet."""

    method: SigningMethod
    envelope: Envelope
    #: key mode: the ``publicKey.hint`` (None or "" in bundles older than model_signing 1.1).
    key_hint: str | None = None
    #: key mode before model_signing 1.1: the embedded public key (PEM or DER bytes).
    key_raw_bytes: bytes | None = None
    #: certificate mode: DER certificates, leaf first; sigstore mode: the one leaf.
    certificates: tuple[bytes, ...] = ()
    tlog_entries: int = 0
    has_timestamps: bool = False
    #: The exact bytes the bundle was read from.
    raw: bytes = field(default=b"", repr=False)


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedDocumentError(f"{what} is missing or not a JSON object")
    return value


def _certificate(value: object, what: str) -> bytes:
    raw = b64decode(_object(value, what).get("rawBytes"), f"{what}.rawBytes")
    if not raw:
        raise MalformedDocumentError(f"{what}.rawBytes is empty")
    return raw


def parse_bundle(data: bytes, limits: Limits = DEFAULT_LIMITS) -> SignatureBundle:
    """Read an OMS Sigstore bundle from bytes; refuse anything malformed in one line."""
    document = parse_json_object(data, "signature bundle", limits)
    media_type = document.get("mediaType")
    if media_type not in _MEDIA_TYPES:
        raise MalformedDocumentError(
            f"signature bundle mediaType {str(media_type)[:100]!r} is not {BUNDLE_MEDIA_TYPE!r}"
        )
    if "verificationMaterial" not in document:
        raise MalformedDocumentError("signature bundle has no verificationMaterial")
    material = _object(document["verificationMaterial"], "verificationMaterial")
    if "dsseEnvelope" not in document:
        if "messageSignature" in document:
            raise MalformedDocumentError(
                "signature bundle signs a blob (messageSignature), not an OMS DSSE envelope"
            )
        raise MalformedDocumentError("signature bundle has no dsseEnvelope")
    envelope = Envelope.from_json_value(document["dsseEnvelope"])
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise MalformedDocumentError(
            f"dsseEnvelope.payloadType {envelope.payload_type[:100]!r} is not "
            f"{IN_TOTO_PAYLOAD_TYPE!r}"
        )

    tlog = material.get("tlogEntries", [])
    if tlog is None:
        tlog = []
    if not isinstance(tlog, list):
        raise MalformedDocumentError("verificationMaterial.tlogEntries is not a list")
    timestamps = material.get("timestampVerificationData")
    has_timestamps = isinstance(timestamps, dict) and bool(timestamps.get("rfc3161Timestamps"))

    kinds = [k for k in ("publicKey", "x509CertificateChain", "certificate") if k in material]
    if len(kinds) != 1:
        raise MalformedDocumentError(
            "verificationMaterial must hold exactly one of publicKey, x509CertificateChain, "
            f"certificate; it holds {', '.join(kinds) or 'none'}"
        )
    kind = kinds[0]
    if kind == "publicKey":
        public_key = _object(material["publicKey"], "verificationMaterial.publicKey")
        hint = public_key.get("hint")
        if hint is not None and not isinstance(hint, str):
            raise MalformedDocumentError("verificationMaterial.publicKey.hint is not a string")
        raw_key = None
        if public_key.get("rawBytes") is not None:
            raw_key = b64decode(public_key["rawBytes"], "verificationMaterial.publicKey.rawBytes")
        if not hint and not raw_key:
            raise MalformedDocumentError(
                "verificationMaterial.publicKey has neither a hint nor rawBytes"
            )
        return SignatureBundle(
            "key", envelope, hint or None, raw_key, (), len(tlog), has_timestamps, data
        )
    if kind == "x509CertificateChain":
        chain = _object(
            material["x509CertificateChain"], "verificationMaterial.x509CertificateChain"
        )
        certificates = chain.get("certificates")
        if not isinstance(certificates, list) or not certificates:
            raise MalformedDocumentError(
                "verificationMaterial.x509CertificateChain.certificates is missing or empty"
            )
        if len(certificates) > MAX_CHAIN_LENGTH:
            raise MalformedDocumentError(
                f"certificate chain has {len(certificates)} certificates, "
                f"more than {MAX_CHAIN_LENGTH}"
            )
        ders = tuple(
            _certificate(item, f"x509CertificateChain.certificates[{i}]")
            for i, item in enumerate(certificates)
        )
        return SignatureBundle(
            "certificate", envelope, None, None, ders, len(tlog), has_timestamps, data
        )
    leaf = _certificate(material["certificate"], "verificationMaterial.certificate")
    if not tlog:
        raise MalformedDocumentError(
            "Sigstore bundle has no transparency log entry (verificationMaterial.tlogEntries); "
            "OMS requires at least one for the sigstore method"
        )
    return SignatureBundle(
        "sigstore", envelope, None, None, (leaf,), len(tlog), has_timestamps, data
    )


def key_material(hint: str) -> dict[str, Any]:
    """verificationMaterial of a key-mode bundle, as model_signing 1.1 writes it."""
    return {"publicKey": {"hint": hint}, "tlogEntries": []}


def certificate_material(certificates_der: list[bytes]) -> dict[str, Any]:
    """verificationMaterial of a certificate-mode bundle: leaf first, then the chain."""
    return {
        "tlogEntries": [],
        "x509CertificateChain": {
            "certificates": [{"rawBytes": b64encode(der)} for der in certificates_der]
        },
    }


def serialise_bundle(envelope: Envelope, material: dict[str, Any]) -> bytes:
    """The bundle as JSON bytes: keys sorted, two-space indent, one trailing newline."""
    document = {
        "dsseEnvelope": envelope.to_json_value(),
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
    }
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()
