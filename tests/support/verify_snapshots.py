"""Version snapshots for the verification engine's tests, made with REAL signatures.

Keys are made with ``cryptography`` and sign through :class:`mlprov.signing.KeySigner`;
a small PKI (root -> leaf, code signing) signs through
:class:`mlprov.signing.CertificateSigner`. Documents are the ones the registry makes
(:func:`mlprov.registry.evidence.documents_for_new_version` does the same thing):
SLSA provenance, the ML-BOM statement and the model-card statement built by
:mod:`mlprov.provenance` from the version's record, each signed into a Sigstore bundle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlprov import provenance, signing
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.records import DatasetRef, Evidence, LineageEdge, ModelVersion, Stage
from mlprov.verification import (
    EVALUATION_PREDICATE_TYPE,
    StoredEvidence,
    TrustedSigner,
    TrustSet,
    VersionSnapshot,
)

TRAINER_ID = "https://ci.example.com/runners/gpu-pool@v2"
CI_BUILDER_ID = "https://github.com/actions/runner/github-hosted"
CI_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
CREATED_AT = "2026-11-30T12:00:00Z"


@dataclass(frozen=True)
class Party:
    """Someone who signs: a signer, the trust that verifies it, and its key hint."""

    name: str
    signer: signing.Signer
    trust: signing.Trust
    hint: str

    def trusted(self, *roles: str, builder_ids: Sequence[str] = ()) -> TrustedSigner:
        return TrustedSigner(self.name, frozenset(roles), self.trust, tuple(builder_ids))


def _public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@cache
def key_party(name: str) -> Party:
    """A P-256 key made for ``name`` (the same key for the same name in one session)."""
    key = ec.generate_private_key(ec.SECP256R1())
    trust = signing.KeyTrust(_public_pem(key))
    return Party(name, signing.KeySigner(key), trust, trust.hint)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@cache
def certificate_party(name: str) -> Party:
    """A leaf certificate (code signing) under a root made for ``name``; trusted by the root."""
    now = datetime.now(timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} root"))
        .issuer_name(_name(f"{name} root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    signer = signing.CertificateSigner(leaf_key, leaf)
    trust = signing.CertificateTrust([root.public_bytes(serialization.Encoding.PEM)])
    return Party(name, signer, trust, signer.identity.fingerprint or "")


def trust_of(*signers: TrustedSigner) -> TrustSet:
    return TrustSet(tuple(signers))


def manifest_of(files: Mapping[str, bytes]) -> Manifest:
    return Manifest.of(
        "sha256",
        (FileEntry(path, Digest.of_bytes(data), len(data)) for path, data in files.items()),
    )


def model_files(seed: str) -> dict[str, bytes]:
    return {
        "config.json": f'{{"seed": "{seed}"}}\n'.encode(),
        "weights/model.safetensors": hashlib.sha256(seed.encode()).digest() * 64,
    }


def record_for(
    name: str,
    number: int,
    manifest: Manifest,
    *,
    datasets: Iterable[DatasetRef] = (),
    lineage: Iterable[LineageEdge] = (),
    metrics: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    builder_id: str | None = TRAINER_ID,
    card: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """A version's record as the registry returns it, for ``manifest``."""
    return ModelVersion(
        name=name,
        version=number,
        digest=str(manifest.digest),
        hash_algorithm=manifest.algorithm,
        size=manifest.total_size,
        file_count=len(manifest),
        single_file=False,
        artifact_name=name,
        stage=Stage.NONE,
        params=dict(params if params is not None else {"lr": 0.05, "trees": 400}),
        metrics=dict(metrics if metrics is not None else {"auc": 0.93, "auc[segment=retail]": 0.9}),
        tags={},
        description="",
        datasets=list(datasets),
        lineage=list(lineage),
        source_uri=None,
        run_id="run-1",
        code_repo=None,
        code_commit=None,
        builder_id=builder_id,
        card=dict(card) if card is not None else None,
        created_at=CREATED_AT,
        created_by="ci@example.com",
    )


_ids = iter(range(1, 1_000_000))


def stored(kind: str, predicate_type: str, bundle: bytes, signer: str = "") -> StoredEvidence:
    """Evidence as the registry stores it: its record (digest of the exact bytes) and bytes."""
    record = Evidence(
        id=next(_ids),
        kind=kind,
        media_type=signing.BUNDLE_MEDIA_TYPE,
        predicate_type=predicate_type,
        digest="sha256:" + hashlib.sha256(bundle).hexdigest(),
        signer=signer,
        created_at=CREATED_AT,
        created_by="ci@example.com",
    )
    return StoredEvidence(record, bundle)


def oms_signature(manifest: Manifest, party: Party, model_name: str = "model") -> StoredEvidence:
    signed = signing.sign_manifest(manifest, model_name, party.signer)
    return stored("signature", signing.PREDICATE_TYPE, signed, party.name)


def documents(
    record: ModelVersion,
    party: Party,
    *,
    kinds: Sequence[str] = ("provenance", "bom", "model-card"),
) -> list[StoredEvidence]:
    """The registry's own documents for ``record``, signed by ``party``."""
    inputs = provenance.ProvenanceInputs.from_version(record)
    made = {
        "provenance": (provenance.SLSA_PREDICATE_TYPE, provenance.slsa_provenance),
        "bom": (provenance.CYCLONEDX_PREDICATE_TYPE, provenance.statement_for_bom),
        "model-card": (provenance.MODEL_CARD_PREDICATE_TYPE, provenance.model_card_statement),
    }
    result = []
    for kind in kinds:
        predicate_type, build = made[kind]
        bundle = party.signer.sign(build(inputs)).bundle
        result.append(stored(kind, predicate_type, bundle, party.name))
    return result


def statement(
    record: ModelVersion,
    predicate_type: str,
    predicate: dict[str, Any],
    *,
    subject: str | None = None,
) -> bytes:
    """An in-toto statement about ``record`` (or about the SHA-256 ``subject`` given)."""
    digest = {"sha256": subject or record.digest.partition(":")[2]}
    return provenance.Statement(
        subject=(provenance.ResourceDescriptor(name=record.name, digest=digest),),
        predicate_type=predicate_type,
        predicate=predicate,
    ).to_bytes()


def attestation(
    record: ModelVersion,
    party: Party,
    predicate_type: str,
    predicate: dict[str, Any],
    *,
    subject: str | None = None,
) -> StoredEvidence:
    bundle = party.signer.sign(statement(record, predicate_type, predicate, subject=subject)).bundle
    return stored("attestation", predicate_type, bundle, party.name)


def ci_provenance(
    record: ModelVersion,
    party: Party,
    *,
    builder_id: str = CI_BUILDER_ID,
    subject: str | None = None,
) -> StoredEvidence:
    """A CI system's SLSA provenance about the model, attached later."""
    predicate = {
        "buildDefinition": {
            "buildType": CI_BUILD_TYPE,
            "externalParameters": {"workflow": {"ref": "refs/heads/main", "path": "train.yml"}},
        },
        "runDetails": {"builder": {"id": builder_id}},
    }
    return attestation(record, party, provenance.SLSA_PREDICATE_TYPE, predicate, subject=subject)


def evaluation(record: ModelVersion, party: Party, metrics: dict[str, Any]) -> StoredEvidence:
    return attestation(record, party, EVALUATION_PREDICATE_TYPE, {"metrics": metrics})


@dataclass
class VersionMaker:
    """Builds signed versions: ``make("name", 1)``; a parent first, then its children."""

    signer: Party
    made: dict[str, VersionSnapshot] = field(default_factory=dict)

    def make(
        self,
        name: str,
        number: int,
        *,
        parents: Sequence[tuple[str, VersionSnapshot]] = (),
        external: Sequence[LineageEdge] = (),
        datasets: Sequence[DatasetRef] = (),
        metrics: Mapping[str, Any] | None = None,
        with_documents: bool = True,
        extra: Sequence[StoredEvidence] = (),
        depth: int = 64,
        bind: Mapping[str, str] | None = None,
    ) -> VersionSnapshot:
        """A version signed by ``signer`` with its documents; ``parents`` are
        (relation, snapshot) pairs, bound by their digests (or by ``bind[ref]``, a claim
        signed as made) and loaded as ancestors."""
        manifest = manifest_of(model_files(f"{name}/{number}"))
        bound = bind or {}
        lineage = [
            LineageEdge(
                relation=rel,
                target=p.ref,
                digest=bound.get(p.ref, p.record.digest),
                registered=True,
            )
            for rel, p in parents
        ] + list(external)
        record = record_for(
            name, number, manifest, datasets=datasets, lineage=lineage, metrics=metrics
        )
        evidence = [oms_signature(manifest, self.signer, name)]
        if with_documents:
            evidence += documents(record, self.signer)
        evidence += list(extra)
        ancestors: dict[str, VersionSnapshot | None] = {
            p.ref: (p if depth > 0 else None) for _, p in parents
        }
        snapshot = VersionSnapshot(record, manifest, tuple(evidence), ancestors)
        self.made[snapshot.ref] = snapshot
        return snapshot


def edited(snapshot: VersionSnapshot, **changes: Any) -> VersionSnapshot:
    """The snapshot with its registry record changed after signing (a row edited)."""
    return replace(snapshot, record=snapshot.record.model_copy(update=changes))


def with_evidence(snapshot: VersionSnapshot, *added: StoredEvidence) -> VersionSnapshot:
    return replace(snapshot, evidence=(*snapshot.evidence, *added))


def without_kind(snapshot: VersionSnapshot, kind: str) -> VersionSnapshot:
    return replace(snapshot, evidence=tuple(e for e in snapshot.evidence if e.record.kind != kind))


def replace_kind(snapshot: VersionSnapshot, kind: str, new: StoredEvidence) -> VersionSnapshot:
    return replace(
        snapshot,
        evidence=tuple(new if e.record.kind == kind else e for e in snapshot.evidence),
    )
