"""Any in-toto attestation in a Sigstore bundle: sign one, verify one against a trust.

The OMS signature (``_oms``) is one predicate among many; provenance, ML-BOMs, model
cards, evaluation results and CI-made SLSA provenance travel the same way: an in-toto
Statement v1 as the payload of a DSSE envelope inside a Sigstore bundle v0.3. This
module checks the envelope's signature with the same :class:`~mlprov.signing.Trust`
objects, then parses the statement tolerantly (unknown fields kept; STYLE.md, 7):
the exact payload bytes are what callers store and digest, never a re-serialisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import MalformedDocumentError, MalformedSignatureError
from mlprov.signing._bundle import parse_bundle
from mlprov.signing._identity import SignerIdentity
from mlprov.signing._json import parse_json_object
from mlprov.signing._trust import CarriedSignature, Trust, check_carried_signature

__all__ = [
    "IN_TOTO_STATEMENT_TYPES",
    "InspectedAttestation",
    "VerifiedAttestation",
    "inspect_attestation",
    "verify_attestation",
]

#: Statement types accepted (in-toto Attestation Framework v1; v0.1 is still emitted by
#: some CI systems and has the same subject shape).
IN_TOTO_STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"}
)


@dataclass(frozen=True)
class VerifiedAttestation:
    """An attestation whose signature verified against the trust given."""

    signer: SignerIdentity
    predicate_type: str
    #: (name, {algorithm: hex}) for every subject, as the statement lists them.
    subjects: tuple[tuple[str, dict[str, str]], ...]
    statement: dict[str, Any] = field(repr=False)
    #: The exact signed payload bytes (the DSSE payload).
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class InspectedAttestation:
    """An attestation checked for integrity only: who its bundle says signed it, and
    whether the signature verifies with the material the bundle carries. Not trusted."""

    carried: CarriedSignature
    predicate_type: str
    subjects: tuple[tuple[str, dict[str, str]], ...]
    statement: dict[str, Any] = field(repr=False)
    payload: bytes = field(repr=False)


def _subjects(statement: dict[str, Any]) -> tuple[tuple[str, dict[str, str]], ...]:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise MalformedSignatureError("the attestation's statement has no subject")
    result = []
    for index, item in enumerate(subjects):
        if not isinstance(item, dict) or not isinstance(item.get("digest"), dict):
            raise MalformedSignatureError(f"subject[{index}] has no digest object")
        digest = item["digest"]
        if not digest or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digest.items()
        ):
            raise MalformedSignatureError(f"subject[{index}].digest must map names to hex text")
        name = item.get("name", "")
        result.append(
            (name if isinstance(name, str) else "", {k: v.lower() for k, v in digest.items()})
        )
    return tuple(result)


def verify_attestation(
    bundle: bytes,
    trust: Trust,
    *,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> VerifiedAttestation:
    """Verify a bundle's DSSE signature against ``trust`` and parse its statement.

    Raises SignatureError when the signature or identity does not verify and
    MalformedSignatureError when the bundle or statement cannot be read (both exit 1:
    untrusted input under verification).
    """
    try:
        parsed = parse_bundle(bundle, limits)
    except MalformedDocumentError as e:
        raise MalformedSignatureError(e.message) from e
    when = now or datetime.now(timezone.utc)
    try:
        signer = trust.authenticate(
            parsed, now=when, limits=limits, record=lambda _name, _detail: None
        )
    except MalformedDocumentError as e:
        raise MalformedSignatureError(e.message) from e
    # Only now, with the signature verified, is the payload worth parsing.
    predicate_type, subjects, statement = _read_statement(parsed.envelope.payload, limits)
    return VerifiedAttestation(
        signer=signer,
        predicate_type=predicate_type,
        subjects=subjects,
        statement=statement,
        payload=parsed.envelope.payload,
    )


def _read_statement(
    payload: bytes, limits: Limits
) -> tuple[str, tuple[tuple[str, dict[str, str]], ...], dict[str, Any]]:
    try:
        statement = parse_json_object(payload, "in-toto statement", limits)
    except MalformedDocumentError as e:
        raise MalformedSignatureError(e.message) from e
    statement_type = statement.get("_type")
    if statement_type not in IN_TOTO_STATEMENT_TYPES:
        raise MalformedSignatureError(
            f"the payload is not an in-toto statement (_type {str(statement_type)[:80]!r})"
        )
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise MalformedSignatureError("the attestation's statement has no predicateType")
    return predicate_type, _subjects(statement), statement


def inspect_attestation(bundle: bytes, *, limits: Limits = DEFAULT_LIMITS) -> InspectedAttestation:
    """Parse a bundle and its statement and check the signature's integrity with the key
    or certificate the bundle carries (:func:`~mlprov.signing._trust.check_carried_signature`),
    with no trust given: who it *says* signed, never who is trusted.

    Raises SignatureError when the carried material does not verify the signature and
    MalformedSignatureError when the bundle or statement cannot be read (both exit 1).
    """
    try:
        parsed = parse_bundle(bundle, limits)
        carried = check_carried_signature(parsed)
    except MalformedDocumentError as e:
        raise MalformedSignatureError(e.message) from e
    predicate_type, subjects, statement = _read_statement(parsed.envelope.payload, limits)
    return InspectedAttestation(
        carried=carried,
        predicate_type=predicate_type,
        subjects=subjects,
        statement=statement,
        payload=parsed.envelope.payload,
    )
