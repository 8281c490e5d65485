"""Signed evidence about registered versions: provenance, ML-BOM, model card, attestations.

* :func:`documents_for_new_version` builds SLSA provenance, the ML-BOM statement and the
  model-card statement from a version's record and signs each with the model's signer,
  before the registration's write transaction, which then stores the exact bundle bytes
  with the version, so a version never exists without its evidence;
* :func:`attest` adds evidence later (an evaluation job's results), signed by the caller;
* :func:`attach` stores evidence signed elsewhere (a CI system's keyless SLSA
  provenance) after verifying its signature against the identity the caller names and
  checking that its subject is this version: the model's digest, or the SHA-256 of one
  of its files (a CI system attests the files it produced);
* :func:`verified_document` and :func:`verified_evidence` check stored envelopes before
  anyone is shown them: the statement names this version, the signer the registry
  recorded is the bundle's, and the signature verifies, against the trust the caller
  gives or, without one, with the key or certificate the bundle carries (integrity only:
  until the registry holds trust, only the caller can say whom to trust).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlprov.config import Limits
from mlprov.errors import (
    ConflictError,
    DigestMismatchError,
    MalformedDocumentError,
    NotFoundError,
    VerificationError,
)
from mlprov.manifest import Digest
from mlprov.records import Evidence, ModelVersion
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, resolve
from mlprov.registry._unit import Mutation, mutation
from mlprov.registry.types import (
    EvidenceCheck,
    NewEvidence,
    SignatureCheck,
    StoredDocument,
    VerifiedDocument,
)
from mlprov.store.versions import VersionKey

if TYPE_CHECKING:
    from mlprov.signing import Signer, Trust

__all__ = [
    "DOCUMENT_KINDS",
    "OWN_DOCUMENT_KINDS",
    "add_evidence_in",
    "attach",
    "attest",
    "attestation_statement",
    "check_envelope",
    "document",
    "documents_for_new_version",
    "evidence",
    "evidence_content",
    "store_attestation",
    "verified_document",
    "verified_evidence",
    "version_statements",
]

#: Evidence kind -> what it is; every kind is an in-toto statement in a Sigstore bundle.
DOCUMENT_KINDS = {
    "provenance": "SLSA Provenance v1",
    "bom": "CycloneDX 1.6 ML-BOM",
    "model-card": "model card",
    "attestation": "attestation",
}


def add_evidence_in(unit: Mutation, key: VersionKey, new: NewEvidence) -> Evidence:
    """Store a signature or attestation with a version, as the exact bytes given, inside
    an open mutation (audited there too)."""
    digest = str(Digest.of_bytes(new.content))
    if unit.tx.evidence.exists(key.id, digest):
        raise ConflictError(f"{key.ref} already has this {new.kind} ({digest})")
    stored = unit.tx.evidence.insert(
        key.id,
        kind=new.kind,
        media_type=new.media_type,
        predicate_type=new.predicate_type,
        content=new.content,
        digest=digest,
        signer=new.signer,
        at=unit.at,
        actor=unit.actor,
    )
    unit.audit(
        "evidence.add",
        key.ref,
        {
            "kind": new.kind,
            "predicate_type": new.predicate_type,
            "digest": digest,
            "signer": new.signer,
        },
    )
    return stored


def _bundle_evidence(kind: str, predicate_type: str, bundle: bytes, signer: Any) -> NewEvidence:
    from mlprov import signing  # noqa: PLC0415

    return NewEvidence(kind, signing.BUNDLE_MEDIA_TYPE, predicate_type, bundle, str(signer))


#: The documents mlprov makes about a version with the model's own signer, in order.
OWN_DOCUMENT_KINDS = ("provenance", "bom", "model-card")


def version_statements(version: ModelVersion) -> list[tuple[str, str, bytes]]:
    """The unsigned in-toto statements of a version's own documents (kind, predicate
    type, exact bytes), built deterministically from its record: the same record gives
    the same bytes, so a registry can check that a document signed elsewhere (a client
    over HTTP) is exactly the one it would have made."""
    from mlprov import provenance  # noqa: PLC0415

    inputs = provenance.ProvenanceInputs.from_version(version)
    return [
        ("provenance", provenance.SLSA_PREDICATE_TYPE, provenance.slsa_provenance(inputs)),
        ("bom", provenance.CYCLONEDX_PREDICATE_TYPE, provenance.statement_for_bom(inputs)),
        (
            "model-card",
            provenance.MODEL_CARD_PREDICATE_TYPE,
            provenance.model_card_statement(inputs),
        ),
    ]


def documents_for_new_version(signer: Signer) -> Callable[[ModelVersion], list[NewEvidence]]:
    """Provenance, ML-BOM and model card for a version about to be registered, each
    built from its record and signed by ``signer`` (outside any write transaction)."""

    def make(version: ModelVersion) -> list[NewEvidence]:
        made = []
        for kind, predicate_type, statement in version_statements(version):
            signed = signer.sign(statement)
            made.append(_bundle_evidence(kind, predicate_type, signed.bundle, signed.signer))
        return made

    return make


def _store(context: RegistryContext, version: ModelVersion, new: NewEvidence) -> Evidence:
    with mutation(context) as unit:
        key = resolve(unit.tx, ModelRef(version.name, version=version.version))
        return add_evidence_in(unit, key, new)


def attestation_statement(version: ModelVersion, predicate_type: str, predicate: Any) -> bytes:
    """The in-toto statement ``mlprov attest`` signs about ``version`` (subject: its model
    digest), checked first; deterministic, so a registry can check one signed elsewhere."""
    from mlprov import provenance  # noqa: PLC0415

    if not predicate_type or "://" not in predicate_type:
        raise MalformedDocumentError(
            f"predicate type {predicate_type[:80]!r} must be a URI (e.g. https://example.com/eval/v1)"
        )
    if not isinstance(predicate, dict):
        raise MalformedDocumentError("the predicate must be a JSON object")
    return provenance.Statement(
        subject=(
            provenance.ResourceDescriptor(
                name=version.name, digest={"sha256": version.digest.partition(":")[2]}
            ),
        ),
        predicate_type=predicate_type,
        predicate=predicate,
    ).to_bytes()


def attest(
    context: RegistryContext,
    ref: ModelRef | str,
    predicate_type: str,
    predicate: dict[str, Any],
    signer: Signer,
) -> Evidence:
    """Sign a statement about a version (subject: the model digest) and store it."""
    from mlprov.registry.versions import get_version  # noqa: PLC0415

    if not predicate_type or "://" not in predicate_type:
        raise MalformedDocumentError(
            f"predicate type {predicate_type[:80]!r} must be a URI (e.g. https://example.com/eval/v1)"
        )
    if not isinstance(predicate, dict):
        raise MalformedDocumentError("the predicate must be a JSON object")
    version = get_version(context, ref)
    statement = attestation_statement(version, predicate_type, predicate)
    signed = signer.sign(statement)
    return _store(
        context,
        version,
        _bundle_evidence("attestation", predicate_type, signed.bundle, signed.signer),
    )


def store_attestation(
    context: RegistryContext, version: ModelVersion, new: NewEvidence
) -> Evidence:
    """Store one attestation checked outside the transaction (audited)."""
    return _store(context, version, new)


def attach(
    context: RegistryContext,
    ref: ModelRef | str,
    bundle: bytes,
    trust: Trust,
    *,
    now: datetime | None = None,
) -> Evidence:
    """Verify an attestation signed elsewhere against ``trust``, check that it is about
    this version, and store it as the exact bytes given."""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.registry.versions import get_version, version_files  # noqa: PLC0415

    version = get_version(context, ref)
    verified = signing.verify_attestation(bundle, trust, limits=context.limits, now=now)
    # SLSA verifying-artifacts, step "check subject": the attestation must name this
    # artefact by digest: the model's OMS digest, or the SHA-256 of one of its files.
    file_hexes = {f.blob for f in version_files(context, ModelRef(version.name, version.version))}
    if _matching_subject(verified.subjects, version, file_hexes) is None:
        raise VerificationError(
            f"the attestation is not about {version.ref}: its subjects "
            f"({_describe_subjects(verified.subjects)}) match neither the model digest "
            f"{version.digest} nor any of its files' SHA-256"
        )
    return _store(
        context,
        version,
        _bundle_evidence("attestation", verified.predicate_type, bundle, verified.signer),
    )


Subjects = tuple[tuple[str, dict[str, str]], ...]


def _matching_subject(
    subjects: Subjects, version: ModelVersion, file_hexes: set[str]
) -> str | None:
    """The ``sha256:`` digest of the first subject naming ``version`` (its model digest,
    or one of ``file_hexes``), else None."""
    model_hex = version.digest.partition(":")[2]
    for _name, digest in subjects:
        value = digest.get("sha256")
        if value is not None and (value == model_hex or value in file_hexes):
            return f"sha256:{value}"
    return None


def _describe_subjects(subjects: Subjects) -> str:
    return ", ".join(
        f"{name or '?'} ({', '.join(f'{k}:{v[:16]}...' for k, v in digest.items())})"
        for name, digest in subjects[:3]
    )


def evidence(
    context: RegistryContext, ref: ModelRef | str, *, kind: str | None = None
) -> list[Evidence]:
    """The signatures and attestations stored with a version, oldest first."""
    with context.metadata.read() as tx:
        key = resolve(tx, coerce_ref(ref))
        found = tx.evidence.records(key.id)
    return [e for e in found if kind is None or e.kind == kind]


def evidence_content(context: RegistryContext, ref: ModelRef | str, digest: str) -> bytes:
    """The exact stored bytes of one piece of evidence (checked against its digest)."""
    parsed = coerce_ref(ref)
    with context.metadata.read() as tx:
        key = resolve(tx, parsed)
        content = tx.evidence.content(key.id, digest)
    if content is None:
        raise NotFoundError(f"{parsed}: no evidence with digest {digest}")
    if str(Digest.of_bytes(content)) != digest:
        raise DigestMismatchError(f"{parsed}: stored evidence {digest} is corrupt")
    return content


def document(context: RegistryContext, ref: ModelRef | str, kind: str) -> StoredDocument:
    """The newest stored evidence of a kind, with its statement decoded (not verified:
    use ``mlprov verify`` for that)."""
    from mlprov import signing  # noqa: PLC0415

    if kind not in DOCUMENT_KINDS:
        raise MalformedDocumentError(
            f"unknown evidence kind {kind!r}: use one of {', '.join(DOCUMENT_KINDS)}"
        )
    parsed = coerce_ref(ref)
    with context.metadata.read() as tx:
        key = resolve(tx, parsed)
        found = [e for e in tx.evidence.records(key.id) if e.kind == kind]
    if not found:
        raise NotFoundError(f"{key.ref} has no {DOCUMENT_KINDS[kind]}")
    latest = found[-1]
    bundle = evidence_content(context, ModelRef(key.name, version=key.number), latest.digest)
    parsed_bundle = signing.parse_bundle(bundle, context.limits)
    statement = json.loads(parsed_bundle.envelope.payload)
    return StoredDocument(latest, bundle, parsed_bundle.envelope.payload, statement)


def _check_envelope(
    context: RegistryContext,
    version: ModelVersion,
    item: Evidence,
    trust: Trust | None,
    now: datetime | None,
) -> VerifiedDocument:
    """Check one stored envelope before it is shown; raise (exit 1) on any failure."""
    from mlprov.registry.versions import version_files  # noqa: PLC0415

    bundle = evidence_content(context, ModelRef(version.name, version.version), item.digest)
    file_hexes = (
        {f.blob for f in version_files(context, ModelRef(version.name, version.version))}
        if item.kind == "attestation"
        else set()
    )
    return check_envelope(version, item, bundle, file_hexes, trust, limits=context.limits, now=now)


def check_envelope(
    version: ModelVersion,
    item: Evidence,
    bundle: bytes,
    file_hexes: set[str],
    trust: Trust | None,
    *,
    limits: Limits,
    now: datetime | None = None,
) -> VerifiedDocument:
    """Check one envelope of ``version`` (its exact ``bundle`` bytes, recorded as
    ``item``; ``file_hexes`` the SHA-256 of its files) before it is shown, wherever the
    bytes came from (this registry's stores or a server); raise (exit 1) on any failure."""
    from mlprov import signing  # noqa: PLC0415

    how: SignatureCheck
    what = f"{version.ref}: the stored {DOCUMENT_KINDS.get(item.kind, item.kind)}"
    if str(Digest.of_bytes(bundle)) != item.digest:
        raise DigestMismatchError(f"{what} is not the bytes recorded as {item.digest}")
    try:
        if trust is not None:
            verified = signing.verify_attestation(bundle, trust, limits=limits, now=now)
            signer, how = verified.signer, "trusted"
            predicate_type, subjects = verified.predicate_type, verified.subjects
            statement, payload = verified.statement, verified.payload
        else:
            inspected = signing.inspect_attestation(bundle, limits=limits)
            signer = inspected.carried.signer
            how = "integrity-only" if inspected.carried.verified else "unchecked"
            predicate_type, subjects = inspected.predicate_type, inspected.subjects
            statement, payload = inspected.statement, inspected.payload
    except VerificationError as e:
        raise type(e)(f"{what} ({item.digest[:19]}...) does not verify: {e.message}") from e
    # SLSA verifying-artifacts, "check subject": documents mlprov made (and the OMS
    # signature) name the model digest; attached attestations may name one of its files.
    subject = _matching_subject(
        subjects, version, file_hexes if item.kind == "attestation" else set()
    )
    if subject is None:
        raise VerificationError(
            f"{what} is not about this version: its subjects ({_describe_subjects(subjects)}) "
            f"do not name {version.digest}"
        )
    if predicate_type != item.predicate_type:
        raise VerificationError(
            f"{what} was recorded as {item.predicate_type[:80]!r} but its statement is "
            f"{predicate_type[:80]!r}"
        )
    if str(signer) != item.signer:
        raise VerificationError(
            f"{what} was recorded as signed by {item.signer[:120]} but its bundle is signed "
            f"by {str(signer)[:120]}"
        )
    return VerifiedDocument(
        EvidenceCheck(version.ref, item, signer, how, subject), bundle, payload, statement
    )


def verified_document(
    context: RegistryContext,
    ref: ModelRef | str,
    kind: str,
    trust: Trust | None = None,
    *,
    now: datetime | None = None,
) -> VerifiedDocument:
    """The newest stored evidence of a kind, checked before it is shown.

    Its statement must name this version's digest, the signer the registry recorded
    must be the bundle's, and its signature must verify: against ``trust`` when given
    (``signature == "trusted"``), else with the key or certificate the bundle carries
    (``"integrity-only"``), or, for a key-mode bundle that carries no key, not at all
    (``"unchecked"``). Any failure raises a VerificationError (exit 1).
    """
    from mlprov.registry.versions import get_version  # noqa: PLC0415

    if kind not in DOCUMENT_KINDS:
        raise MalformedDocumentError(
            f"unknown evidence kind {kind!r}: use one of {', '.join(DOCUMENT_KINDS)}"
        )
    version = get_version(context, ref)
    found = [e for e in version.evidence if e.kind == kind]
    if not found:
        raise NotFoundError(f"{version.ref} has no {DOCUMENT_KINDS[kind]}")
    return _check_envelope(context, version, found[-1], trust, now)


def verified_evidence(
    context: RegistryContext,
    ref: ModelRef | str,
    trust: Trust | None = None,
    *,
    now: datetime | None = None,
) -> list[EvidenceCheck]:
    """Every signature and attestation stored with a version, oldest first, each checked
    as :func:`verified_document` checks one; the first failure raises (exit 1)."""
    from mlprov.registry.versions import get_version  # noqa: PLC0415

    version = get_version(context, ref)
    return [_check_envelope(context, version, e, trust, now).check for e in version.evidence]
