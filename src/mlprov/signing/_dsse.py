"""DSSE v1: the pre-authentication encoding and the envelope as a plain value.

The envelope keeps the payload as the exact bytes that were signed (decoded from
base64 once); nothing here re-serialises a payload before a signature is checked.
See https://github.com/secure-systems-lab/dsse/blob/v1.0.2/protocol.md.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from mlprov.errors import MalformedDocumentError

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "Envelope",
    "EnvelopeSignature",
    "b64decode",
    "b64encode",
    "pae",
]

#: DSSE payload type of an in-toto statement (in-toto attestation spec, "envelope").
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

_B64 = re.compile(r"\A[A-Za-z0-9+/_-]*={0,2}\Z")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1.0.2 "Protocol", PAE: ``DSSEv1 SP len(type) SP type SP len(body) SP body``.

    Lengths are byte counts written as decimal ASCII without leading zeros.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def b64encode(data: bytes) -> str:
    """Standard, padded base64 (what protobuf JSON and the reference tool write)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, what: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (DSSE verifiers accept both)."""
    if not isinstance(text, str) or not _B64.match(text):
        raise MalformedDocumentError(f"{what} is not base64 text")
    normal = text.rstrip("=").replace("-", "+").replace("_", "/")
    if len(normal) % 4 == 1:
        raise MalformedDocumentError(f"{what} is not valid base64 (truncated)")
    try:
        return base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise MalformedDocumentError(f"{what} is not valid base64: {e}") from e


@dataclass(frozen=True)
class EnvelopeSignature:
    """One DSSE signature: the raw signature bytes and the optional key id."""

    sig: bytes
    keyid: str | None = None


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: payload type, the exact payload bytes, and the signatures."""

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    @classmethod
    def from_json_value(cls, value: object) -> Envelope:
        """Read an envelope from its parsed JSON object (as in a Sigstore bundle)."""
        if not isinstance(value, dict):
            raise MalformedDocumentError("dsseEnvelope must be a JSON object")
        payload_type = value.get("payloadType")
        if not isinstance(payload_type, str) or not payload_type:
            raise MalformedDocumentError("dsseEnvelope.payloadType is missing or not a string")
        if "payload" not in value:
            raise MalformedDocumentError("dsseEnvelope.payload is missing")
        payload = b64decode(value["payload"], "dsseEnvelope.payload")
        if not payload:
            raise MalformedDocumentError("dsseEnvelope.payload is empty")
        raw_signatures = value.get("signatures")
        if not isinstance(raw_signatures, list):
            raise MalformedDocumentError("dsseEnvelope.signatures is missing or not a list")
        if not raw_signatures:
            raise MalformedDocumentError("dsseEnvelope has no signatures")
        signatures = []
        for index, item in enumerate(raw_signatures):
            if not isinstance(item, dict):
                raise MalformedDocumentError(f"dsseEnvelope.signatures[{index}] is not an object")
            sig = b64decode(item.get("sig"), f"dsseEnvelope.signatures[{index}].sig")
            if not sig:
                raise MalformedDocumentError(f"dsseEnvelope.signatures[{index}].sig is empty")
            keyid = item.get("keyid")
            # OMS v1.0 section 11.1: keyid may be absent, "" or null; it is never used.
            if keyid is not None and not isinstance(keyid, str):
                raise MalformedDocumentError(
                    f"dsseEnvelope.signatures[{index}].keyid must be a string or null"
                )
            signatures.append(EnvelopeSignature(sig, keyid))
        return cls(payload_type, payload, tuple(signatures))

    def to_json_value(self) -> dict[str, Any]:
        return {
            "payload": b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [
                {"sig": b64encode(s.sig), "keyid": s.keyid if s.keyid is not None else ""}
                for s in self.signatures
            ],
        }
