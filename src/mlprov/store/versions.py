"""Model versions: rows of ``versions``, ``version_files`` and ``version_tags`` as records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mlprov.records import DatasetRef, FileFormat, ModelVersion, Stage
from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows
from mlprov.store.evidence import EvidenceRows
from mlprov.store.lineage import LineageRows, StoredEdge
from mlprov.store.models import ModelKey

__all__ = ["StoredFile", "VersionKey", "VersionRows"]


@dataclass(frozen=True)
class VersionKey:
    """A version's identity in this store and what resolving a reference needs."""

    id: int
    model_id: int
    name: str
    number: int
    digest: str
    hash_algorithm: str
    stage: Stage
    artifact_name: str

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.number}"


@dataclass(frozen=True)
class StoredFile:
    """One manifest entry of a version and the blob (SHA-256 key) holding its bytes."""

    path: str
    size: int
    digest: str
    blob: str


_KEY_COLUMNS = (
    t.versions.c.id,
    t.versions.c.model_id,
    t.models.c.name,
    t.versions.c.number,
    t.versions.c.digest,
    t.versions.c.hash_algorithm,
    t.versions.c.stage,
    t.versions.c.artifact_name,
)


def _key(row: Row) -> VersionKey:
    return VersionKey(
        id=int(row.id),
        model_id=int(row.model_id),
        name=str(row.name),
        number=int(row.number),
        digest=str(row.digest),
        hash_algorithm=str(row.hash_algorithm),
        stage=Stage(row.stage),
        artifact_name=str(row.artifact_name),
    )


def _document(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class VersionRows(Rows):
    def _keys(self) -> sa.Select[Any]:
        return sa.select(*_KEY_COLUMNS).join(t.models, t.models.c.id == t.versions.c.model_id)

    def find(self, model: ModelKey, number: int) -> VersionKey | None:
        row = self._one(
            self._keys().where(t.versions.c.model_id == model.id, t.versions.c.number == number)
        )
        return _key(row) if row is not None else None

    def blob_size(self, blob: str) -> int | None:
        """The size of a blob as a version's file records it (None when no file uses it)."""
        row = self._one(
            sa.select(t.version_files.c.size).where(t.version_files.c.blob == blob).limit(1)
        )
        return int(row.size) if row is not None else None

    def models_using_blob(self, blob: str) -> list[str]:
        """Names of the models with a version whose files use ``blob``, sorted."""
        rows = self._all(
            sa.select(t.models.c.name)
            .distinct()
            .select_from(t.version_files)
            .join(t.versions, t.versions.c.id == t.version_files.c.version_id)
            .join(t.models, t.models.c.id == t.versions.c.model_id)
            .where(t.version_files.c.blob == blob)
            .order_by(t.models.c.name)
        )
        return [str(row.name) for row in rows]

    def by_id(self, version_id: int) -> VersionKey | None:
        row = self._one(self._keys().where(t.versions.c.id == version_id))
        return _key(row) if row is not None else None

    def by_ids(self, ids: Iterable[int]) -> dict[int, VersionKey]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        return {
            int(row.id): _key(row)
            for row in self._all(self._keys().where(t.versions.c.id.in_(wanted)))
        }

    def latest(self, model: ModelKey) -> VersionKey | None:
        row = self._one(
            self._keys()
            .where(t.versions.c.model_id == model.id)
            .order_by(t.versions.c.number.desc())
            .limit(1)
        )
        return _key(row) if row is not None else None

    def of_model(self, model: ModelKey) -> list[VersionKey]:
        return [
            _key(row)
            for row in self._all(
                self._keys().where(t.versions.c.model_id == model.id).order_by(t.versions.c.number)
            )
        ]

    def in_stage(self, model: ModelKey, stage: Stage) -> list[VersionKey]:
        return [
            _key(row)
            for row in self._all(
                self._keys().where(
                    t.versions.c.model_id == model.id, t.versions.c.stage == stage.value
                )
            )
        ]

    def insert(
        self,
        model: ModelKey,
        draft: ModelVersion,
        files: Sequence[StoredFile],
        edges: Sequence[StoredEdge],
    ) -> VersionKey:
        """Insert a version with its files, tags and lineage. The unique (model, number)
        constraint refuses a second version with the same number even without a lock."""
        result = self.connection.execute(
            sa.insert(t.versions)
            .values(
                model_id=model.id,
                number=draft.version,
                digest=draft.digest,
                hash_algorithm=draft.hash_algorithm,
                size=draft.size,
                file_count=draft.file_count,
                single_file=draft.single_file,
                artifact_name=draft.artifact_name,
                params=_document(draft.params),
                metrics=_document(draft.metrics),
                datasets=json.dumps([d.to_json() for d in draft.datasets], sort_keys=True),
                description=draft.description,
                source_uri=draft.source_uri,
                run_id=draft.run_id,
                code_repo=draft.code_repo,
                code_commit=draft.code_commit,
                stage=draft.stage.value,
                created_at=draft.created_at,
                created_by=draft.created_by,
                code_dirty=draft.code_dirty,
                builder_id=draft.builder_id,
                started_at=draft.started_at,
                finished_at=draft.finished_at,
                environment=(
                    json.dumps(sorted(set(draft.environment)))
                    if draft.environment is not None
                    else None
                ),
                card=json.dumps(draft.card, sort_keys=True) if draft.card is not None else None,
                formats=(
                    json.dumps([f.to_json() for f in draft.formats], sort_keys=True)
                    if draft.formats is not None
                    else None
                ),
            )
            .returning(t.versions.c.id)
        )
        version_id = int(result.scalar_one())
        rows = [
            {
                "version_id": version_id,
                "path": f.path,
                "size": f.size,
                "digest": f.digest,
                "blob": f.blob,
            }
            for f in files
        ]
        if rows:
            self.connection.execute(sa.insert(t.version_files), rows)
        for key, value in sorted(draft.tags.items()):
            self.set_tag(version_id, key, value)
        LineageRows(self.connection).insert(version_id, edges)
        return VersionKey(
            id=version_id,
            model_id=model.id,
            name=model.name,
            number=draft.version,
            digest=draft.digest,
            hash_algorithm=draft.hash_algorithm,
            stage=draft.stage,
            artifact_name=draft.artifact_name,
        )

    def record(self, key: VersionKey) -> ModelVersion:
        row = self._one(sa.select(t.versions).where(t.versions.c.id == key.id))
        if row is None:  # pragma: no cover - keys come from committed rows
            raise LookupError(f"version {key.ref} vanished")
        tags = {
            str(r.key): str(r.value)
            for r in self._all(
                sa.select(t.version_tags).where(t.version_tags.c.version_id == key.id)
            )
        }
        aliases = [
            str(r.name)
            for r in self._all(
                sa.select(t.aliases.c.name)
                .where(t.aliases.c.version_id == key.id)
                .order_by(t.aliases.c.name)
            )
        ]
        return ModelVersion(
            name=key.name,
            version=int(row.number),
            digest=str(row.digest),
            hash_algorithm=str(row.hash_algorithm),
            size=int(row.size),
            file_count=int(row.file_count),
            single_file=bool(row.single_file),
            artifact_name=str(row.artifact_name),
            stage=Stage(row.stage),
            params=json.loads(row.params),
            metrics=json.loads(row.metrics),
            tags=tags,
            description=str(row.description),
            datasets=[DatasetRef(**d) for d in json.loads(row.datasets)],
            lineage=LineageRows(self.connection).records(key.id),
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
            formats=(
                [FileFormat(**f) for f in json.loads(row.formats)]
                if row.formats is not None
                else None
            ),
            created_at=str(row.created_at),
            created_by=str(row.created_by),
            aliases=aliases,
            evidence=EvidenceRows(self.connection).records(key.id),
        )

    def datasets(self, key: VersionKey) -> list[DatasetRef]:
        row = self._one(sa.select(t.versions.c.datasets).where(t.versions.c.id == key.id))
        return [DatasetRef(**d) for d in json.loads(row.datasets)] if row is not None else []

    def code(self, key: VersionKey) -> tuple[str | None, str | None]:
        row = self._one(
            sa.select(t.versions.c.code_repo, t.versions.c.code_commit).where(
                t.versions.c.id == key.id
            )
        )
        return (row.code_repo, row.code_commit) if row is not None else (None, None)

    def files(self, key: VersionKey) -> list[StoredFile]:
        return [
            StoredFile(str(r.path), int(r.size), str(r.digest), str(r.blob))
            for r in self._all(
                sa.select(t.version_files)
                .where(t.version_files.c.version_id == key.id)
                .order_by(t.version_files.c.path)
            )
        ]

    def set_tag(self, version_id: int, key: str, value: str | None) -> None:
        self.connection.execute(
            sa.delete(t.version_tags).where(
                t.version_tags.c.version_id == version_id, t.version_tags.c.key == key
            )
        )
        if value is not None:
            self.connection.execute(
                sa.insert(t.version_tags).values(version_id=version_id, key=key, value=value)
            )

    def set_description(self, key: VersionKey, description: str) -> None:
        self.connection.execute(
            sa.update(t.versions).where(t.versions.c.id == key.id).values(description=description)
        )

    def move_stage(self, key: VersionKey, after: Stage) -> bool:
        """Compare-and-set on the stage read in ``key``: False if it changed meanwhile."""
        result = self.connection.execute(
            sa.update(t.versions)
            .where(t.versions.c.id == key.id, t.versions.c.stage == key.stage.value)
            .values(stage=after.value)
        )
        return result.rowcount == 1
