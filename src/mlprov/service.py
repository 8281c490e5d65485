"""The registry service: the one place where IO and decisions meet.

The CLI and (later) the server are thin layers over :class:`Registry`; they never touch
the stores directly, so every rule (validation, immutability, compare-and-set, audit)
is enforced here and cannot be bypassed.

Every mutation follows the same order, so a failure at any step changes nothing:

1. validate every input (names, references, documents, paths) before any write;
2. hash and store artefact bytes (content-addressed, crash-safe; blobs created by this
   operation are removed again if a later step fails);
3. one metadata transaction: the rows, the history and the audit entry commit together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov import _registry_attestations, _registry_signing
from mlprov.artifacts import ArtifactStore, open_artifact_store
from mlprov.audit import verify_chain
from mlprov.config import Limits, RegistryConfig, current_actor
from mlprov.errors import (
    ConflictError,
    DigestMismatchError,
    InvalidInputError,
    MlprovError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from mlprov.hashing import ModelFile, hash_files, list_model_files
from mlprov.lineage import LineageEdgeView, LineageGraph, LineageNode
from mlprov.manifest import SINGLE_FILE_NAME, Digest, FileEntry, Manifest, check_relative_path
from mlprov.records import (
    AliasEvent,
    AliasState,
    AuditEntry,
    DatasetRef,
    Evidence,
    LineageEdge,
    ModelVersion,
    RegisteredModel,
    Stage,
    StageEvent,
)
from mlprov.refs import LATEST, ModelRef, validate_alias, validate_model_name
from mlprov.store import MetadataStore, StoreTransaction, open_metadata_store

if TYPE_CHECKING:
    from mlprov._registry_attestations import StoredDocument
    from mlprov._registry_signing import SignedVersion
    from mlprov.signing import Signer, Trust, VerificationReport

__all__ = [
    "LINEAGE_RELATIONS",
    "DatasetInput",
    "LineageInput",
    "Registry",
    "VersionInput",
    "open_registry",
]

#: Relations a lineage edge may name (DESIGN.md, "Lineage edge").
LINEAGE_RELATIONS = (
    "parent",
    "base",
    "teacher",
    "adapter-of",
    "merged-from",
    "quantized-from",
)

ProgressCallback = Callable[[int], None]


def utc_now() -> str:
    """Now as ISO-8601 UTC text with microseconds: the registry's one time format."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class DatasetInput:
    """A dataset named at registration: ``NAME=URI@sha256:HEX``."""

    name: str
    uri: str
    digest: str

    @classmethod
    def parse(cls, text: str) -> DatasetInput:
        name, sep, rest = text.partition("=")
        uri, at, digest = rest.rpartition("@")
        if not sep or not at or not name.strip() or not uri:
            raise InvalidInputError(f"invalid dataset {text[:120]!r}: use NAME=URI@sha256:HEX")
        return cls(name.strip(), uri, str(Digest.parse(digest)))


@dataclass(frozen=True)
class LineageInput:
    """A lineage edge named at registration: a registered ``NAME@VERSION`` (or NAME/3,
    NAME@alias) or an external artefact ``URI@ALGORITHM:HEX``."""

    relation: str
    target: str

    def __post_init__(self) -> None:
        if self.relation not in LINEAGE_RELATIONS:
            raise InvalidInputError(
                f"unknown lineage relation {self.relation!r}: use one of "
                f"{', '.join(LINEAGE_RELATIONS)}"
            )


@dataclass
class VersionInput:
    """Everything recorded with a new version besides its files."""

    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    datasets: list[DatasetInput] = field(default_factory=list)
    lineage: list[LineageInput] = field(default_factory=list)
    source_uri: str | None = None
    run_id: str | None = None
    code_repo: str | None = None
    code_commit: str | None = None
    code_dirty: bool | None = None
    builder_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    environment: list[str] | None = None
    card: dict[str, Any] | None = None


_COMMIT = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")


def _normalised(info: VersionInput) -> VersionInput:
    """The canonical form of what a version records, so that every document made from it
    later (provenance, ML-BOM, card) accepts it: subgroup metrics in one flat shape, a
    full commit id, a repository URL without credentials, a sorted environment lock and
    a validated model card."""
    from mlprov import provenance  # noqa: PLC0415 - only when registering

    if info.code_commit is not None and not _COMMIT.match(info.code_commit):
        raise InvalidInputError(
            f"invalid commit {info.code_commit[:80]!r}: give the full lower-case hex "
            "commit id (40 or 64 characters), which provenance binds to"
        )
    environment = (
        provenance.Environment.from_lock(info.environment).lock_lines
        if info.environment is not None
        else None
    )
    card = provenance.ModelCardSpec.parse(info.card).to_json() if info.card is not None else None
    return dataclasses.replace(
        info,
        metrics=provenance.normalize_metrics(info.metrics, numbers_only=False),
        code_repo=provenance.normalize_repo_url(info.code_repo) or None if info.code_repo else None,
        environment=environment,
        card=card,
    )


def _json_document(value: Mapping[str, Any], what: str) -> str:
    """Canonical JSON for params/metrics; NaN, infinities and non-JSON values are refused."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping of names to values")

    def check(item: Any, where: str) -> None:
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidInputError(f"{what}: {where} is {item}, which JSON cannot represent")
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(f"{what}: key {key!r} under {where} is not a string")
                check(sub, f"{where}.{key}" if where else key)
        elif isinstance(item, list | tuple):
            for index, sub in enumerate(item):
                check(sub, f"{where}[{index}]")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise InvalidInputError(f"{what}: {where} has unsupported type {type(item).__name__}")

    check(value, "")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_tag(key: str, value: str | None) -> None:
    if not key or len(key) > 256 or any(ch in key for ch in "\x00\n\r"):
        raise InvalidInputError(f"invalid tag key {key[:60]!r}: 1-256 characters, one line")
    if value is not None and (len(value) > 4096 or "\x00" in value):
        raise InvalidInputError(f"tag {key!r}: value too long or contains NUL")


def _check_tag_changes(changes: Mapping[str, str | None]) -> None:
    if not changes:
        raise InvalidInputError("nothing to do: give tags to set or remove")
    for key, value in changes.items():
        _check_tag(key, value)


class Registry:
    """Registered models, versions, aliases, stages and the audit log."""

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        *,
        actor: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.metadata = metadata
        self.artifacts = artifacts
        self._actor = actor
        self.limits = limits or Limits()

    @property
    def actor(self) -> str:
        return self._actor or current_actor()

    def close(self) -> None:
        self.metadata.dispose()

    # -- models --------------------------------------------------------------------------

    def create_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        validate_model_name(name)
        tags = dict(tags or {})
        for key, value in tags.items():
            _check_tag(key, value)
        with self.metadata.write() as tx:
            if tx.model_by_name(name) is not None:
                raise ConflictError(f"model {name!r} already exists")
            self._create_model(tx, name, description, tags)
        return self.get_model(name)

    def _create_model(
        self, tx: StoreTransaction, name: str, description: str, tags: Mapping[str, str]
    ) -> int:
        at = utc_now()
        model_id = tx.insert_model(name=name, description=description, at=at, actor=self.actor)
        for key, value in sorted(tags.items()):
            tx.set_model_tag(model_id, key, value)
        tx.append_audit(
            at=at,
            actor=self.actor,
            action="model.create",
            subject=name,
            details={"description": description, "tags": dict(tags)},
            reason="",
        )
        return model_id

    def get_model(self, name: str) -> RegisteredModel:
        validate_model_name(name)
        with self.metadata.read() as tx:
            row = tx.model_by_name(name)
            if row is None:
                raise NotFoundError(f"model {name!r} not found")
            return self._model_record(tx, [row])[0]

    def list_models(
        self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None
    ) -> list[RegisteredModel]:
        with self.metadata.read() as tx:
            records = self._model_record(tx, tx.list_models(prefix))
        wanted = dict(tags or {})
        return [
            record
            for record in records
            if all(record.tags.get(key) == value for key, value in wanted.items())
        ]

    def _model_record(self, tx: StoreTransaction, rows: Sequence[Any]) -> list[RegisteredModel]:
        ids = [int(row.id) for row in rows]
        tags = tx.model_tags(ids)
        latest = tx.latest_numbers(ids)
        records = []
        for row in rows:
            aliases = {
                str(alias.name): int(alias.number) for alias in tx.aliases_of_model(int(row.id))
            }
            records.append(
                RegisteredModel(
                    name=row.name,
                    description=row.description,
                    tags=tags[int(row.id)],
                    created_at=row.created_at,
                    created_by=row.created_by,
                    latest_version=latest.get(int(row.id)),
                    aliases=aliases,
                )
            )
        return records

    def tag_model(
        self, name: str, changes: Mapping[str, str | None], *, reason: str = ""
    ) -> RegisteredModel:
        """Set tags (a value) or remove them (None), all in one audited transaction."""
        validate_model_name(name)
        _check_tag_changes(changes)
        with self.metadata.write() as tx:
            row = self._require_model(tx, name)
            for key, value in sorted(changes.items()):
                tx.set_model_tag(int(row.id), key, value)
            tx.append_audit(
                at=utc_now(),
                actor=self.actor,
                action="model.tag",
                subject=name,
                details={"tags": dict(changes)},
                reason=reason,
            )
        return self.get_model(name)

    def describe_model(self, name: str, description: str) -> RegisteredModel:
        validate_model_name(name)
        with self.metadata.write() as tx:
            row = self._require_model(tx, name)
            tx.set_model_description(int(row.id), description)
            tx.append_audit(
                at=utc_now(),
                actor=self.actor,
                action="model.describe",
                subject=name,
                details={"description": description},
                reason="",
            )
        return self.get_model(name)

    @staticmethod
    def _require_model(tx: StoreTransaction, name: str) -> Any:
        row = tx.model_by_name(name)
        if row is None:
            raise NotFoundError(f"model {name!r} not found")
        return row

    # -- versions: registration ----------------------------------------------------------

    def register(
        self,
        path: Path,
        name: str,
        info: VersionInput | None = None,
        *,
        hash_algorithm: str = "sha256",
        ignore_paths: Sequence[str | Path] = (),
        allow_symlinks: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ModelVersion:
        """Register a file or folder as the model's next version (the model is created
        if it does not exist yet). Either everything is recorded or nothing is."""
        prepared = self.prepare_version(
            path,
            name,
            info,
            hash_algorithm=hash_algorithm,
            ignore_paths=ignore_paths,
            allow_symlinks=allow_symlinks,
        )
        with self.stored_files(prepared, progress=progress) as blobs:
            return self.commit_version(prepared, blobs)

    def prepare_version(
        self,
        path: Path,
        name: str,
        info: VersionInput | None = None,
        *,
        hash_algorithm: str = "sha256",
        ignore_paths: Sequence[str | Path] = (),
        allow_symlinks: bool = False,
    ) -> PreparedVersion:
        """Step 1: validate everything and list the files. Nothing is written."""
        validate_model_name(name)
        info = info or VersionInput()
        if hash_algorithm not in self.limits.hash_algorithms:
            raise InvalidInputError(
                f"unsupported hash algorithm {hash_algorithm!r}: use one of "
                f"{', '.join(self.limits.hash_algorithms)}"
            )
        info = _normalised(info)
        params = _json_document(info.params, "params")
        metrics = _json_document(info.metrics, "metrics")
        for key, value in info.tags.items():
            _check_tag(key, value)
        datasets = [DatasetRef(name=d.name, uri=d.uri, digest=d.digest) for d in info.datasets]
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInputError(f"dataset {twice[0]!r} is named twice; names must be unique")
        with self.metadata.read() as tx:
            lineage = [self._resolve_lineage(tx, edge) for edge in info.lineage]
        files = list_model_files(
            Path(path), ignore_paths=ignore_paths, allow_symlinks=allow_symlinks
        )
        if not files:
            raise InvalidInputError(f"{path}: the model folder has no files to register")
        if len(files) > self.limits.max_manifest_files:
            raise InvalidInputError(
                f"{path}: {len(files)} files exceed the limit of {self.limits.max_manifest_files}"
            )
        return PreparedVersion(
            name=name,
            path=Path(path),
            files=files,
            hash_algorithm=hash_algorithm,
            params=params,
            metrics=metrics,
            info=info,
            datasets=datasets,
            lineage=lineage,
        )

    @contextlib.contextmanager
    def stored_files(
        self, prepared: PreparedVersion, *, progress: ProgressCallback | None = None
    ) -> Iterator[StoredFiles]:
        """Step 2: hash the files and store their bytes. If the block raises, blobs this
        operation created are removed again, so a failed registration leaves no bytes.

        ``progress`` receives byte counts for both passes (hashing, then storing): twice
        the total size in all."""
        manifest = hash_files(prepared.files, prepared.hash_algorithm, progress=progress)
        created: list[str] = []
        blobs: dict[str, str] = {}
        try:
            for item in prepared.files:
                stored = self.artifacts.put_file(item.path, progress=progress)
                if stored.created:
                    created.append(stored.sha256)
                blobs[item.name] = stored.sha256
            self._check_unchanged(manifest, blobs, prepared.files)
            yield StoredFiles(manifest=manifest, blobs=blobs)
        except BaseException:
            for key in created:
                with contextlib.suppress(MlprovError):
                    self.artifacts.delete(key)
            raise

    @staticmethod
    def _check_unchanged(manifest: Manifest, blobs: dict[str, str], files: list[ModelFile]) -> None:
        """A file that changed between hashing and storing would make the manifest lie."""
        by_path = manifest.by_path()
        for item in files:
            entry = by_path[item.name]
            if manifest.algorithm == "sha256" and entry.digest.hex != blobs[item.name]:
                raise VerificationError(
                    f"{item.name}: changed while being registered "
                    f"(hashed {entry.digest.hex}, stored {blobs[item.name]})"
                )

    def commit_version(
        self,
        prepared: PreparedVersion,
        stored: StoredFiles,
        *,
        on_commit: Callable[[StoreTransaction, int, int], None] | None = None,
    ) -> ModelVersion:
        """Step 3: one transaction records the version, its files, lineage and audit entry.

        ``on_commit(tx, version_id, number)`` lets a caller (signing, attestations) add
        its rows in the same transaction.
        """
        manifest = stored.manifest
        at = utc_now()
        with self.metadata.write() as tx:
            model = tx.model_by_name(prepared.name)
            model_id = (
                int(model.id)
                if model is not None
                else self._create_model(tx, prepared.name, "", {})
            )
            # Lineage targets are re-checked under the writer lock: they cannot vanish
            # (versions are never deleted), but this keeps the rule in one place.
            lineage_rows = [self._lineage_row(tx, edge) for edge in prepared.lineage]
            number = tx.allocate_version_number(model_id)
            version_id = tx.insert_version(
                {
                    "model_id": model_id,
                    "number": number,
                    "digest": str(manifest.digest),
                    "hash_algorithm": manifest.algorithm,
                    "size": manifest.total_size,
                    "file_count": len(manifest),
                    "single_file": manifest.is_single_file,
                    "artifact_name": prepared.path.resolve().name or prepared.name,
                    "params": prepared.params,
                    "metrics": prepared.metrics,
                    "datasets": json.dumps(
                        [d.to_json() for d in prepared.datasets], sort_keys=True
                    ),
                    "description": prepared.info.description,
                    "source_uri": prepared.info.source_uri,
                    "run_id": prepared.info.run_id,
                    "code_repo": prepared.info.code_repo,
                    "code_commit": prepared.info.code_commit,
                    "stage": Stage.NONE.value,
                    "created_at": at,
                    "created_by": self.actor,
                    "code_dirty": prepared.info.code_dirty,
                    "builder_id": prepared.info.builder_id,
                    "started_at": prepared.info.started_at,
                    "finished_at": prepared.info.finished_at,
                    "environment": (
                        json.dumps(sorted(set(prepared.info.environment)))
                        if prepared.info.environment is not None
                        else None
                    ),
                    "card": (
                        json.dumps(prepared.info.card, sort_keys=True)
                        if prepared.info.card is not None
                        else None
                    ),
                }
            )
            tx.insert_files(
                version_id,
                (
                    {
                        "path": entry.path,
                        "size": entry.size or 0,
                        "digest": str(entry.digest),
                        "blob": stored.blobs[entry.path],
                    }
                    for entry in manifest
                ),
            )
            for key, value in sorted(prepared.info.tags.items()):
                tx.set_version_tag(version_id, key, value)
            tx.insert_lineage(version_id, lineage_rows)
            if on_commit is not None:
                on_commit(tx, version_id, number)
            tx.append_audit(
                at=at,
                actor=self.actor,
                action="version.register",
                subject=f"{prepared.name}/{number}",
                details={
                    "digest": str(manifest.digest),
                    "files": len(manifest),
                    "size": manifest.total_size,
                    "lineage": [
                        {"relation": e.relation, "target": e.target, "digest": e.digest}
                        for e in prepared.lineage
                    ],
                },
                reason="",
            )
        return self.get_version(ModelRef(prepared.name, version=number))

    def check_lineage(self, edges: Sequence[LineageInput]) -> list[LineageEdge]:
        """Resolve lineage targets now (each must exist); the edges as they would be stored."""
        with self.metadata.read() as tx:
            return [self._resolve_lineage(tx, edge) for edge in edges]

    def _resolve_lineage(self, tx: StoreTransaction, edge: LineageInput) -> LineageEdge:
        target = edge.target
        if "://" not in target or target.startswith("models:/"):
            ref = ModelRef.parse(target)
            row = self._resolve_row(tx, ref)
            model_name = tx.model_names([int(row.model_id)])[int(row.model_id)]
            return LineageEdge(
                relation=edge.relation,
                target=f"{model_name}/{int(row.number)}",
                digest=str(row.digest),
                registered=True,
            )
        uri, at, digest = target.rpartition("@")
        if not at or not uri:
            raise InvalidInputError(
                f"invalid lineage target {target[:120]!r}: use NAME@VERSION, NAME/VERSION "
                "or URI@ALGORITHM:HEX for an external artefact"
            )
        return LineageEdge(
            relation=edge.relation, target=uri, digest=str(Digest.parse(digest)), registered=False
        )

    def _lineage_row(self, tx: StoreTransaction, edge: LineageEdge) -> dict[str, Any]:
        if not edge.registered:
            return {
                "relation": edge.relation,
                "target_version_id": None,
                "target_uri": edge.target,
                "target_digest": edge.digest,
            }
        row = self._resolve_row(tx, ModelRef.parse(edge.target))
        return {
            "relation": edge.relation,
            "target_version_id": int(row.id),
            "target_uri": None,
            "target_digest": str(row.digest),
        }

    # -- versions: reading -----------------------------------------------------------------

    def _resolve_row(self, tx: StoreTransaction, ref: ModelRef) -> Any:
        model = tx.model_by_name(ref.name)
        if model is None:
            raise NotFoundError(f"model {ref.name!r} not found")
        model_id = int(model.id)
        if ref.version is not None:
            row = tx.version(model_id, ref.version)
            if row is None:
                raise NotFoundError(f"version {ref.name}/{ref.version} not found")
            return row
        if ref.alias == LATEST:
            row = tx.latest_version(model_id)
            if row is None:
                raise NotFoundError(f"model {ref.name!r} has no versions")
            return row
        alias = tx.alias(model_id, ref.alias or "")
        if alias is None or alias.version_id is None:
            raise NotFoundError(f"alias {ref.name}@{ref.alias} not found")
        row = tx.version_by_id(int(alias.version_id))
        if row is None:  # pragma: no cover - foreign keys forbid it
            raise NotFoundError(f"alias {ref.name}@{ref.alias} points at a missing version")
        return row

    def _version_record(self, tx: StoreTransaction, name: str, row: Any) -> ModelVersion:
        version_id = int(row.id)
        edges = tx.lineage(version_id)
        targets = tx.versions_by_ids(
            int(e.target_version_id) for e in edges if e.target_version_id is not None
        )
        names = tx.model_names(int(r.model_id) for r in targets.values())
        lineage = []
        for edge in edges:
            if edge.target_version_id is not None:
                target = targets[int(edge.target_version_id)]
                lineage.append(
                    LineageEdge(
                        relation=edge.relation,
                        target=f"{names[int(target.model_id)]}/{int(target.number)}",
                        digest=str(edge.target_digest),
                        registered=True,
                    )
                )
            else:
                lineage.append(
                    LineageEdge(
                        relation=edge.relation,
                        target=str(edge.target_uri),
                        digest=str(edge.target_digest),
                        registered=False,
                    )
                )
        return ModelVersion(
            name=name,
            version=int(row.number),
            digest=row.digest,
            hash_algorithm=row.hash_algorithm,
            size=int(row.size),
            file_count=int(row.file_count),
            single_file=bool(row.single_file),
            artifact_name=row.artifact_name,
            stage=Stage(row.stage),
            params=json.loads(row.params),
            metrics=json.loads(row.metrics),
            tags=tx.version_tags(version_id),
            description=row.description,
            datasets=[DatasetRef(**d) for d in json.loads(row.datasets)],
            lineage=lineage,
            source_uri=row.source_uri,
            run_id=row.run_id,
            code_repo=row.code_repo,
            code_commit=row.code_commit,
            code_dirty=row.code_dirty,
            builder_id=row.builder_id,
            started_at=row.started_at,
            finished_at=row.finished_at,
            environment=json.loads(row.environment) if row.environment else None,
            card=json.loads(row.card) if row.card else None,
            created_at=row.created_at,
            created_by=row.created_by,
            aliases=tx.aliases_of_version(version_id),
            evidence=[_evidence_record(e) for e in tx.evidence(version_id)],
        )

    def get_version(self, ref: ModelRef | str) -> ModelVersion:
        """Resolve a reference (number or alias) to its version."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        with self.metadata.read() as tx:
            row = self._resolve_row(tx, parsed)
            return self._version_record(tx, parsed.name, row)

    resolve = get_version

    def list_versions(self, name: str) -> list[ModelVersion]:
        validate_model_name(name)
        with self.metadata.read() as tx:
            model = self._require_model(tx, name)
            return [self._version_record(tx, name, row) for row in tx.versions(int(model.id))]

    def manifest(self, ref: ModelRef | str) -> Manifest:
        """The version's manifest as recorded (paths, sizes, digests)."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        with self.metadata.read() as tx:
            row = self._resolve_row(tx, parsed)
            files = tx.files(int(row.id))
        return Manifest.of(
            str(row.hash_algorithm),
            (FileEntry(f.path, Digest.parse(f.digest), int(f.size)) for f in files),
        )

    def _blob_map(self, ref: ModelRef) -> tuple[ModelVersion, list[tuple[str, str, str, int]]]:
        with self.metadata.read() as tx:
            row = self._resolve_row(tx, ref)
            record = self._version_record(tx, ref.name, row)
            files = [(f.path, f.blob, f.digest, int(f.size)) for f in tx.files(int(row.id))]
        return record, files

    def tag_version(
        self, ref: ModelRef | str, changes: Mapping[str, str | None], *, reason: str = ""
    ) -> ModelVersion:
        """Tags and the description are the only things that change on a version; audited."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        _check_tag_changes(changes)
        with self.metadata.write() as tx:
            row = self._resolve_row(tx, parsed)
            for key, value in sorted(changes.items()):
                tx.set_version_tag(int(row.id), key, value)
            tx.append_audit(
                at=utc_now(),
                actor=self.actor,
                action="version.tag",
                subject=f"{parsed.name}/{int(row.number)}",
                details={"tags": dict(changes)},
                reason=reason,
            )
        return self.get_version(ModelRef(parsed.name, version=int(row.number)))

    def describe_version(self, ref: ModelRef | str, description: str) -> ModelVersion:
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        with self.metadata.write() as tx:
            row = self._resolve_row(tx, parsed)
            tx.set_version_description(int(row.id), description)
            tx.append_audit(
                at=utc_now(),
                actor=self.actor,
                action="version.describe",
                subject=f"{parsed.name}/{int(row.number)}",
                details={"description": description},
                reason="",
            )
        return self.get_version(ModelRef(parsed.name, version=int(row.number)))

    # -- signing (implemented in _registry_signing) ----------------------------------------

    def sign_and_register(
        self,
        path: Path,
        name: str,
        signer: Signer,
        info: VersionInput | None = None,
        *,
        with_documents: bool = True,
        **options: Any,
    ) -> SignedVersion:
        """Hash, store, sign and register in one step; with ``with_documents`` also make,
        sign and store SLSA provenance, the ML-BOM and the model card in the same
        transaction. See :func:`mlprov._registry_signing.sign_and_register` for options."""
        if not with_documents:
            return _registry_signing.sign_and_register(self, path, name, signer, info, **options)
        from mlprov.provenance import LOCAL_BUILDER_ID  # noqa: PLC0415

        info = info or VersionInput()
        if info.builder_id is None:
            # SLSA needs a builder id; "this host said so" unless the job names its builder.
            builder = os.environ.get("MLPROV_BUILDER_ID", "").strip() or LOCAL_BUILDER_ID
            info = dataclasses.replace(info, builder_id=builder)

        def documents(
            tx: StoreTransaction, version_id: int, _number: int, _manifest: Any, _who: Any
        ) -> None:
            _registry_attestations.attest_new_version(self, tx, version_id, name, signer)

        return _registry_signing.sign_and_register(
            self, path, name, signer, info, on_commit=documents, **options
        )

    def attest(
        self, ref: ModelRef | str, predicate_type: str, predicate: dict[str, Any], signer: Signer
    ) -> Evidence:
        """Sign a statement about a version (e.g. evaluation results) and store it."""
        return _registry_attestations.attest(self, ref, predicate_type, predicate, signer)

    def attach(self, ref: ModelRef | str, bundle: bytes, trust: Trust, **options: Any) -> Evidence:
        """Store an attestation signed elsewhere, after verifying its signature against
        ``trust`` and that its subject is this version (model or one of its files)."""
        return _registry_attestations.attach(self, ref, bundle, trust, **options)

    def document(self, ref: ModelRef | str, kind: str) -> StoredDocument:
        """The newest stored evidence of a kind (provenance, bom, model-card, attestation)."""
        return _registry_attestations.document(self, ref, kind)

    def signature_of(self, ref: ModelRef | str) -> bytes:
        """The newest stored OMS signature of a version, as the exact bytes written."""
        return _registry_signing.signature_of(self, ref)

    def verify_version(
        self, ref: ModelRef | str, trust: Trust, *, path: Path | None = None, **options: Any
    ) -> VerificationReport:
        """Verify a registered version's signature, manifest and bytes against ``trust``."""
        return _registry_signing.verify_version(self, ref, trust, path=path, **options)

    # -- lineage ---------------------------------------------------------------------------

    def lineage(
        self, ref: ModelRef | str, *, descendants: bool = False, max_depth: int | None = None
    ) -> LineageGraph:
        """Walk ancestors (or descendants) through every relation, bounded in depth."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        bound = min(max_depth or self.limits.max_lineage_depth, self.limits.max_lineage_depth)
        with self.metadata.read() as tx:
            root = self._resolve_row(tx, parsed)
            graph = LineageGraph(
                root=self._node_key(tx, root),
                direction="descendants" if descendants else "ancestors",
            )
            graph.nodes[graph.root] = self._lineage_node(tx, root)
            frontier = [root]
            for _depth in range(bound):
                next_frontier = []
                for row in frontier:
                    key = self._node_key(tx, row)
                    edges = tx.lineage_into(int(row.id)) if descendants else tx.lineage(int(row.id))
                    for edge in edges:
                        if descendants:
                            other = tx.version_by_id(int(edge.version_id))
                            other_key = self._node_key(tx, other)
                            graph.edges.append(LineageEdgeView(other_key, edge.relation, key))
                        elif edge.target_version_id is None:
                            other = None
                            other_key = str(edge.target_uri)
                            graph.edges.append(LineageEdgeView(key, edge.relation, other_key))
                            graph.nodes.setdefault(
                                other_key,
                                LineageNode(other_key, str(edge.target_digest), registered=False),
                            )
                        else:
                            other = tx.version_by_id(int(edge.target_version_id))
                            other_key = self._node_key(tx, other)
                            graph.edges.append(LineageEdgeView(key, edge.relation, other_key))
                        if other is not None and other_key not in graph.nodes:
                            graph.nodes[other_key] = self._lineage_node(tx, other)
                            next_frontier.append(other)
                frontier = next_frontier
                if not frontier:
                    break
            else:
                graph.truncated = bool(frontier) and any(
                    (tx.lineage_into(int(r.id)) if descendants else tx.lineage(int(r.id)))
                    for r in frontier
                )
        return graph

    @staticmethod
    def _node_key(tx: StoreTransaction, row: Any) -> str:
        name = tx.model_names([int(row.model_id)])[int(row.model_id)]
        return f"{name}/{int(row.number)}"

    @staticmethod
    def _lineage_node(tx: StoreTransaction, row: Any) -> LineageNode:
        datasets = tuple(
            (str(d["name"]), str(d["uri"]), str(d["digest"])) for d in json.loads(row.datasets)
        )
        return LineageNode(
            key=Registry._node_key(tx, row),
            digest=str(row.digest),
            registered=True,
            datasets=datasets,
            code_repo=row.code_repo,
            code_commit=row.code_commit,
        )

    # -- evidence --------------------------------------------------------------------------

    def add_evidence(
        self,
        tx: StoreTransaction,
        version_id: int,
        *,
        kind: str,
        media_type: str,
        predicate_type: str,
        content: bytes,
        signer: str,
        subject: str,
    ) -> Evidence:
        """Store a signature or attestation with a version, as the exact bytes given,
        inside the caller's transaction (audited there too)."""
        digest = str(Digest.of_bytes(content))
        if tx.evidence_by_digest(version_id, digest) is not None:
            raise ConflictError(f"{subject} already has this {kind} ({digest})")
        at = utc_now()
        evidence_id = tx.insert_evidence(
            {
                "version_id": version_id,
                "kind": kind,
                "media_type": media_type,
                "predicate_type": predicate_type,
                "content": content,
                "digest": digest,
                "signer": signer,
                "created_at": at,
                "created_by": self.actor,
            }
        )
        tx.append_audit(
            at=at,
            actor=self.actor,
            action="evidence.add",
            subject=subject,
            details={
                "kind": kind,
                "predicate_type": predicate_type,
                "digest": digest,
                "signer": signer,
            },
            reason="",
        )
        return Evidence(
            id=evidence_id,
            kind=kind,
            media_type=media_type,
            predicate_type=predicate_type,
            digest=digest,
            signer=signer,
            created_at=at,
            created_by=self.actor,
        )

    def evidence(self, ref: ModelRef | str, *, kind: str | None = None) -> list[Evidence]:
        """The signatures and attestations stored with a version, oldest first."""
        return [e for e in self.get_version(ref).evidence if kind is None or e.kind == kind]

    def evidence_content(self, ref: ModelRef | str, digest: str) -> bytes:
        """The exact stored bytes of one piece of evidence (checked against its digest)."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        with self.metadata.read() as tx:
            row = self._resolve_row(tx, parsed)
            found = tx.evidence_by_digest(int(row.id), digest)
        if found is None:
            raise NotFoundError(f"{parsed}: no evidence with digest {digest}")
        content = bytes(found.content)
        if str(Digest.of_bytes(content)) != digest:
            raise DigestMismatchError(f"{parsed}: stored evidence {digest} is corrupt")
        return content

    # -- aliases ---------------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> AliasEvent | None:
        """Point ``name@alias`` at ``version``. Returns the move, or None when the alias
        already pointed there (a no-op). With ``expected_generation`` the move is a
        compare-and-set: a lost race is a ConflictError and nothing changes."""
        validate_model_name(name)
        validate_alias(alias)
        if alias == LATEST:
            raise InvalidInputError(
                "alias 'latest' is built in (the highest version) and cannot be set"
            )
        with self.metadata.write() as tx:
            model = self._require_model(tx, name)
            model_id = int(model.id)
            target = tx.version(model_id, version)
            if target is None:
                raise NotFoundError(f"version {name}/{version} not found")
            current = tx.alias(model_id, alias)
            generation = int(current.generation) if current is not None else 0
            if expected_generation is not None and expected_generation != generation:
                raise ConflictError(
                    f"alias {name}@{alias} is at generation {generation}, "
                    f"not {expected_generation}; re-read it and retry"
                )
            from_version: int | None = None
            if current is not None and current.version_id is not None:
                previous = tx.version_by_id(int(current.version_id))
                from_version = int(previous.number) if previous is not None else None
            if from_version == version:
                return None
            kind = "rollback" if from_version is not None and version < from_version else "set"
            new_generation = tx.move_alias(
                model_id=model_id,
                name=alias,
                version_id=int(target.id),
                expected_generation=generation,
            )
            at = utc_now()
            event = {
                "model_id": model_id,
                "alias": alias,
                "kind": kind,
                "from_version": from_version,
                "to_version": version,
                "generation": new_generation,
                "actor": self.actor,
                "at": at,
                "reason": reason,
            }
            tx.insert_alias_event(event)
            tx.append_audit(
                at=at,
                actor=self.actor,
                action=f"alias.{kind}",
                subject=f"{name}@{alias}",
                details={
                    "from": from_version,
                    "to": version,
                    "generation": new_generation,
                    "digest": str(target.digest),
                },
                reason=reason,
            )
        return AliasEvent.model_validate(
            {"name": name, **{k: v for k, v in event.items() if k != "model_id"}}
        )

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> AliasEvent:
        validate_model_name(name)
        validate_alias(alias)
        if alias == LATEST:
            raise InvalidInputError(
                "alias 'latest' is built in (the highest version): cannot delete"
            )
        with self.metadata.write() as tx:
            model = self._require_model(tx, name)
            model_id = int(model.id)
            current = tx.alias(model_id, alias)
            if current is None or current.version_id is None:
                raise NotFoundError(f"alias {name}@{alias} not found")
            generation = int(current.generation)
            if expected_generation is not None and expected_generation != generation:
                raise ConflictError(
                    f"alias {name}@{alias} is at generation {generation}, "
                    f"not {expected_generation}; re-read it and retry"
                )
            previous = tx.version_by_id(int(current.version_id))
            from_version = int(previous.number) if previous is not None else None
            # A deleted alias keeps its row (version NULL) so its generation never resets
            # and a stale compare-and-set can never succeed after delete and re-create.
            new_generation = tx.move_alias(
                model_id=model_id, name=alias, version_id=None, expected_generation=generation
            )
            at = utc_now()
            event = {
                "model_id": model_id,
                "alias": alias,
                "kind": "delete",
                "from_version": from_version,
                "to_version": None,
                "generation": new_generation,
                "actor": self.actor,
                "at": at,
                "reason": reason,
            }
            tx.insert_alias_event(event)
            tx.append_audit(
                at=at,
                actor=self.actor,
                action="alias.delete",
                subject=f"{name}@{alias}",
                details={"from": from_version, "generation": new_generation},
                reason=reason,
            )
        return AliasEvent.model_validate(
            {"name": name, **{k: v for k, v in event.items() if k != "model_id"}}
        )

    def get_alias(self, name: str, alias: str) -> AliasState:
        validate_model_name(name)
        validate_alias(alias)
        with self.metadata.read() as tx:
            model = self._require_model(tx, name)
            current = tx.alias(int(model.id), alias)
            if current is None:
                raise NotFoundError(f"alias {name}@{alias} not found")
            version = None
            if current.version_id is not None:
                row = tx.version_by_id(int(current.version_id))
                version = int(row.number) if row is not None else None
            return AliasState(
                name=name, alias=alias, version=version, generation=int(current.generation)
            )

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        validate_model_name(name)
        if alias is not None:
            validate_alias(alias)
        with self.metadata.read() as tx:
            model = self._require_model(tx, name)
            rows = tx.alias_history(int(model.id), alias)
        return [
            AliasEvent(
                name=name,
                alias=row.alias,
                kind=row.kind,
                from_version=row.from_version,
                to_version=row.to_version,
                generation=int(row.generation),
                actor=row.actor,
                at=row.at,
                reason=row.reason,
            )
            for row in rows
        ]

    # -- stages ----------------------------------------------------------------------------

    def set_stage(
        self, name: str, version: int, stage: Stage | str, *, reason: str = ""
    ) -> list[StageEvent]:
        """Move a version to a stage. At most one version per model is in Production: the
        previous one moves to Archived, recorded. Returns the transitions made."""
        validate_model_name(name)
        target_stage = stage if isinstance(stage, Stage) else Stage.parse(stage)
        events: list[StageEvent] = []
        with self.metadata.write() as tx:
            model = self._require_model(tx, name)
            model_id = int(model.id)
            row = tx.version(model_id, version)
            if row is None:
                raise NotFoundError(f"version {name}/{version} not found")
            current = Stage(row.stage)
            if current == target_stage:
                return []
            at = utc_now()
            moves: list[tuple[Any, Stage, Stage]] = []
            if target_stage == Stage.PRODUCTION:
                moves.extend(
                    (other, Stage.PRODUCTION, Stage.ARCHIVED)
                    for other in tx.versions_in_stage(model_id, Stage.PRODUCTION.value)
                    if int(other.id) != int(row.id)
                )
            moves.append((row, current, target_stage))
            for moved, before, after in moves:
                why = reason if moved is row else f"replaced in Production by {name}/{version}"
                tx.set_stage(int(moved.id), after.value)
                tx.insert_stage_event(
                    {
                        "version_id": int(moved.id),
                        "from_stage": before.value,
                        "to_stage": after.value,
                        "actor": self.actor,
                        "at": at,
                        "reason": why,
                    }
                )
                tx.append_audit(
                    at=at,
                    actor=self.actor,
                    action="stage.set",
                    subject=f"{name}/{int(moved.number)}",
                    details={"from": before.value, "to": after.value},
                    reason=why,
                )
                events.append(
                    StageEvent(
                        name=name,
                        version=int(moved.number),
                        from_stage=before,
                        to_stage=after,
                        actor=self.actor,
                        at=at,
                        reason=why,
                    )
                )
        return events

    def stage_history(self, name: str) -> list[StageEvent]:
        validate_model_name(name)
        with self.metadata.read() as tx:
            model = self._require_model(tx, name)
            rows = tx.stage_history(int(model.id))
        return [
            StageEvent(
                name=name,
                version=int(row.number),
                from_stage=Stage(row.from_stage),
                to_stage=Stage(row.to_stage),
                actor=row.actor,
                at=row.at,
                reason=row.reason,
            )
            for row in rows
        ]

    # -- download --------------------------------------------------------------------------

    def download(
        self, ref: ModelRef | str, to: Path, *, progress: ProgressCallback | None = None
    ) -> ModelVersion:
        """Write a version's files to ``to``, checking every digest while writing.

        Files go to a temporary folder beside ``to`` that is renamed into place only when
        every file matched; on any mismatch or error nothing is left at ``to``.
        """
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        record, files = self._blob_map(parsed)
        to = Path(to)
        if to.exists() and (not to.is_dir() or any(to.iterdir())):
            raise ConflictError(f"{to}: already exists and is not an empty folder")
        parent = to.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{to.name}.mlprov-", dir=parent))
        except OSError as e:
            raise StorageError(f"{to}: cannot create the target folder: {e.strerror}") from e
        try:
            for path, blob, digest, _size in files:
                name = record.artifact_name if path == SINGLE_FILE_NAME else path
                check_relative_path(name)
                self._write_checked(staging / name, blob, Digest.parse(digest), progress)
            if to.exists():
                to.rmdir()
            os.replace(staging, to)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return record

    def _write_checked(
        self, target: Path, blob: str, digest: Digest, progress: ProgressCallback | None
    ) -> None:
        from mlprov.manifest import new_hasher  # noqa: PLC0415

        target.parent.mkdir(parents=True, exist_ok=True)
        hasher = new_hasher(digest.algorithm)
        try:
            with open(target, "xb") as handle:
                for chunk in self.artifacts.read_chunks(blob):
                    hasher.update(chunk)
                    handle.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as e:
            raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e
        actual = hasher.hexdigest()
        if actual != digest.hex:
            raise DigestMismatchError(
                f"{target.name}: digest mismatch, expected {digest.hex} got {actual}"
            )

    # -- audit -----------------------------------------------------------------------------

    def audit_log(
        self, *, subject: str | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        with self.metadata.read() as tx:
            return tx.audit_entries(subject_prefix=subject, limit=limit)

    def verify_audit(self) -> int:
        """Recompute the hash chain; return the number of entries or raise AuditChainError."""
        with self.metadata.read() as tx:
            head_seq, head_hash = tx.audit_head()
            entries = tx.audit_entries()
        return verify_chain(entries, head_seq=head_seq, head_hash=head_hash)


def _evidence_record(row: Any) -> Evidence:
    return Evidence(
        id=int(row.id),
        kind=row.kind,
        media_type=row.media_type,
        predicate_type=row.predicate_type,
        digest=row.digest,
        signer=row.signer,
        created_at=row.created_at,
        created_by=row.created_by,
    )


@dataclass(frozen=True)
class PreparedVersion:
    """A validated registration, not yet written anywhere."""

    name: str
    path: Path
    files: list[ModelFile]
    hash_algorithm: str
    params: str
    metrics: str
    info: VersionInput
    datasets: list[DatasetRef]
    lineage: list[LineageEdge]


@dataclass(frozen=True)
class StoredFiles:
    """The manifest of a prepared version and the blob key of each of its files."""

    manifest: Manifest
    blobs: dict[str, str]


def open_registry(config: RegistryConfig | None = None, *, actor: str | None = None) -> Registry:
    """Open the registry a config names (default: ``$MLPROV_HOME``, SQLite and a folder)."""
    config = config or RegistryConfig.from_environment()
    metadata = open_metadata_store(config.resolved_metadata_uri)
    artifacts = open_artifact_store(config.resolved_artifact_uri)
    return Registry(metadata, artifacts, actor=actor, limits=config.limits)
