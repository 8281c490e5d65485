"""Signed evidence about registered versions: provenance, ML-BOM, model card, attestations.

The registry service delegates here (one concern per file; CLI and server still call
:class:`~mlprov.service.Registry` only):

* :func:`attest_new_version` runs inside the transaction that registers a signed
  version: it builds SLSA provenance, the ML-BOM statement and the model-card statement
  from the version's record, signs each with the model's signer, and stores each as the
  exact bundle bytes, so a version never exists without its evidence;
* :func:`attest` adds evidence later (an evaluation job's results), signed by the caller;
* :func:`attach` stores evidence signed elsewhere (a CI system's keyless SLSA
  provenance) after verifying its signature against the identity the caller names and
  checking that its subject is this version: the model's digest, or the SHA-256 of one
  of its files (a CI system attests the files it produced).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlprov.errors import MalformedDocumentError, NotFoundError, VerificationError
from mlprov.records import Evidence, ModelVersion
from mlprov.refs import ModelRef

if TYPE_CHECKING:
    from mlprov.service import Registry
    from mlprov.signing import Signer, SignerIdentity, Trust
    from mlprov.store import StoreTransaction

__all__ = [
    "DOCUMENT_KINDS",
    "StoredDocument",
    "attach",
    "attest",
    "attest_new_version",
    "document",
]

#: Evidence kind -> what it is; every kind is an in-toto statement in a Sigstore bundle.
DOCUMENT_KINDS = {
    "provenance": "SLSA Provenance v1",
    "bom": "CycloneDX 1.6 ML-BOM",
    "model-card": "model card",
    "attestation": "attestation",
}


@dataclass(frozen=True)
class StoredDocument:
    """One piece of evidence: its record, the exact stored bundle, and its statement."""

    evidence: Evidence
    bundle: bytes = field(repr=False)
    payload: bytes = field(repr=False)
    statement: dict[str, Any] = field(repr=False)


def _version_in_tx(
    registry: Registry, tx: StoreTransaction, name: str, version_id: int
) -> ModelVersion:
    row = tx.version_by_id(version_id)
    if row is None:  # pragma: no cover - called with the id just inserted
        raise NotFoundError(f"version id {version_id} not found")
    return registry._version_record(tx, name, row)


def attest_new_version(
    registry: Registry,
    tx: StoreTransaction,
    version_id: int,
    name: str,
    signer: Signer,
) -> list[Evidence]:
    """Build, sign and store provenance, ML-BOM and model card for a version being
    registered (inside its transaction)."""
    from mlprov import provenance  # noqa: PLC0415

    version = _version_in_tx(registry, tx, name, version_id)
    inputs = provenance.ProvenanceInputs.from_version(version)
    documents = [
        ("provenance", provenance.SLSA_PREDICATE_TYPE, provenance.slsa_provenance(inputs)),
        ("bom", provenance.CYCLONEDX_PREDICATE_TYPE, provenance.statement_for_bom(inputs)),
        (
            "model-card",
            provenance.MODEL_CARD_PREDICATE_TYPE,
            provenance.model_card_statement(inputs),
        ),
    ]
    stored = []
    for kind, predicate_type, statement in documents:
        signed = signer.sign(statement)
        stored.append(
            _store(registry, tx, version, kind, predicate_type, signed.bundle, signed.signer)
        )
    return stored


def _store(
    registry: Registry,
    tx: StoreTransaction,
    version: ModelVersion,
    kind: str,
    predicate_type: str,
    bundle: bytes,
    signer: SignerIdentity,
) -> Evidence:
    from mlprov import signing  # noqa: PLC0415

    row = registry._resolve_row(tx, ModelRef(version.name, version=version.version))
    return registry.add_evidence(
        tx,
        int(row.id),
        kind=kind,
        media_type=signing.BUNDLE_MEDIA_TYPE,
        predicate_type=predicate_type,
        content=bundle,
        signer=str(signer),
        subject=version.ref,
    )


def attest(
    registry: Registry,
    ref: ModelRef | str,
    predicate_type: str,
    predicate: dict[str, Any],
    signer: Signer,
) -> Evidence:
    """Sign a statement about a version (subject: the model digest) and store it."""
    from mlprov import provenance  # noqa: PLC0415

    if not predicate_type or "://" not in predicate_type:
        raise MalformedDocumentError(
            f"predicate type {predicate_type[:80]!r} must be a URI (e.g. https://example.com/eval/v1)"
        )
    if not isinstance(predicate, dict):
        raise MalformedDocumentError("the predicate must be a JSON object")
    version = registry.get_version(ref)
    statement = provenance.Statement(
        subject=(
            provenance.ResourceDescriptor(
                name=version.name, digest={"sha256": version.digest.partition(":")[2]}
            ),
        ),
        predicate_type=predicate_type,
        predicate=predicate,
    ).to_bytes()
    signed = signer.sign(statement)
    with registry.metadata.write() as tx:
        return _store(
            registry, tx, version, "attestation", predicate_type, signed.bundle, signed.signer
        )


def attach(
    registry: Registry,
    ref: ModelRef | str,
    bundle: bytes,
    trust: Trust,
    *,
    now: datetime | None = None,
) -> Evidence:
    """Verify an attestation signed elsewhere against ``trust``, check that it is about
    this version, and store it as the exact bytes given."""
    from mlprov import signing  # noqa: PLC0415

    version = registry.get_version(ref)
    verified = signing.verify_attestation(bundle, trust, limits=registry.limits, now=now)
    _check_subject(registry, version, verified.subjects)
    with registry.metadata.write() as tx:
        return _store(
            registry,
            tx,
            version,
            "attestation",
            verified.predicate_type,
            bundle,
            verified.signer,
        )


def _check_subject(
    registry: Registry, version: ModelVersion, subjects: tuple[tuple[str, dict[str, str]], ...]
) -> None:
    """SLSA verifying-artifacts, step "check subject": the attestation must name this
    artefact by digest: the model's OMS digest, or the SHA-256 of one of its files."""
    model_hex = version.digest.partition(":")[2]
    file_hexes = {
        blob
        for _path, blob, _digest, _size in registry._blob_map(
            ModelRef(version.name, version=version.version)
        )[1]
    }
    for _name, digest in subjects:
        value = digest.get("sha256")
        if value is not None and (value == model_hex or value in file_hexes):
            return
    named = ", ".join(
        f"{name or '?'} ({', '.join(f'{k}:{v[:16]}...' for k, v in digest.items())})"
        for name, digest in subjects[:3]
    )
    raise VerificationError(
        f"the attestation is not about {version.ref}: its subjects ({named}) match neither "
        f"the model digest {version.digest} nor any of its files' SHA-256"
    )


def document(registry: Registry, ref: ModelRef | str, kind: str) -> StoredDocument:
    """The newest stored evidence of a kind, with its statement decoded (not verified:
    use ``mlprov verify`` for that)."""
    from mlprov import signing  # noqa: PLC0415

    if kind not in DOCUMENT_KINDS:
        raise MalformedDocumentError(
            f"unknown evidence kind {kind!r}: use one of {', '.join(DOCUMENT_KINDS)}"
        )
    version = registry.get_version(ref)
    found = [e for e in version.evidence if e.kind == kind]
    if not found:
        raise NotFoundError(f"{version.ref} has no {DOCUMENT_KINDS[kind]}")
    evidence = found[-1]
    bundle = registry.evidence_content(version.ref, evidence.digest)
    parsed = signing.parse_bundle(bundle, registry.limits)
    statement = json.loads(parsed.envelope.payload)
    return StoredDocument(evidence, bundle, parsed.envelope.payload, statement)
