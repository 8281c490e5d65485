"""Model versions: rows of ``versions``, ``version_files`` and ``version_tags`` as records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mlprov.records import (
    DatasetRef,
    Evidence,
    FileFormat,
    LineageEdge,
    ModelVersion,
    Stage,
    StoredFile,
)
from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows
from mlprov.store.lineage import LineageRows, StoredEdge
from mlprov.store.models import ModelKey

__all__ = ["StoredFile", "VersionKey", "VersionRows"]

#: Built once, values bound at execution (building it cost more than running it: ADR 0049).
_INSERT_VERSION = sa.insert(t.versions).returning(t.versions.c.id)
_INSERT_VERSION_ROW = sa.insert(t.versions)  # with its id, drawn before (NumberTaken)
_INSERT_FILES = sa.insert(t.version_files)


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
        *,
        version_id: int | None = None,
    ) -> VersionKey:
        """Insert a version with its files, tags and lineage. The unique (model, number)
        constraint refuses a second version with the same number even without a lock.
        With ``version_id`` (drawn from the sequence beforehand, on PostgreSQL) the row
        is queued with the transaction's later writes; without, it is inserted at once
        and its id read back."""
        values = {
            "model_id": model.id,
            "number": draft.version,
            "digest": draft.digest,
            "hash_algorithm": draft.hash_algorithm,
            "size": draft.size,
            "file_count": draft.file_count,
            "single_file": draft.single_file,
            "artifact_name": draft.artifact_name,
            "params": _document(draft.params),
            "metrics": _document(draft.metrics),
            "datasets": json.dumps([d.to_json() for d in draft.datasets], sort_keys=True),
            "description": draft.description,
            "source_uri": draft.source_uri,
            "run_id": draft.run_id,
            "code_repo": draft.code_repo,
            "code_commit": draft.code_commit,
            "stage": draft.stage.value,
            "created_at": draft.created_at,
            "created_by": draft.created_by,
            "code_dirty": draft.code_dirty,
            "builder_id": draft.builder_id,
            "started_at": draft.started_at,
            "finished_at": draft.finished_at,
            "environment": (
                json.dumps(sorted(set(draft.environment)))
                if draft.environment is not None
                else None
            ),
            "card": json.dumps(draft.card, sort_keys=True) if draft.card is not None else None,
            "formats": (
                json.dumps([f.to_json() for f in draft.formats], sort_keys=True)
                if draft.formats is not None
                else None
            ),
        }
        if version_id is not None:
            self.later.add(_INSERT_VERSION_ROW, {"id": version_id, **values})
        else:
            version_id = int(self.connection.execute(_INSERT_VERSION, values).scalar_one())
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
            self.later.add(_INSERT_FILES, rows)
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
        row = self._record_row("id", id=key.id)
        if row is None:  # pragma: no cover - keys come from committed rows
            raise LookupError(f"version {key.ref} vanished")
        return _version(row)

    def resolve_record(
        self, name: str, *, number: int | None = None, alias: str | None = None
    ) -> ModelVersion | None:
        """The record of ``name``'s version ``number``, the one ``alias`` points at, or
        (neither given) its latest, in one query; None when any part is missing (the
        caller's step-by-step resolve then says which)."""
        if number is not None:
            row = self._record_row("number", name=name, number=number)
        elif alias is not None:
            row = self._record_row("alias", name=name, alias=alias)
        else:
            row = self._record_row("latest", name=name)
        return _version(row) if row is not None else None

    def _record_row(self, lookup: str, **values: Any) -> Row | None:
        return self.connection.execute(
            _record_query(self.connection.dialect.name, lookup), values
        ).first()

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

    def blobs_in_use(self, blobs: Iterable[str]) -> set[str]:
        """Which of these blob keys some version's files reference (gc keeps those)."""
        wanted = sorted(set(blobs))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):  # bounded IN lists on both backends
            batch = wanted[start : start + 500]
            rows = self._all(
                sa.select(t.version_files.c.blob)
                .where(t.version_files.c.blob.in_(batch))
                .distinct()
            )
            found.update(str(r.blob) for r in rows)
        return found

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


# -- a version's whole record in one query -------------------------------------------
#
# Resolving a reference is the hottest read of a serving fleet (GET /api/v1/resolve). A
# record has four kinds of child rows (tags, the aliases pointing at it, lineage edges,
# evidence); each is gathered by a correlated subquery into one JSON array, so the record
# is one statement and one round trip. The arrays carry each row's id (or name) and are
# sorted here, not in SQL: neither backend promises the order of an aggregate's input.


def _json_rows(
    dialect: str,
    fields: dict[str, sa.ColumnElement[Any]],
    source: sa.FromClause,
    where: sa.ColumnElement[bool],
) -> sa.ScalarSelect[Any]:
    # Field names are this module's constants, rendered as SQL string literals (a bound
    # parameter of unknown type is refused by PostgreSQL's variadic json_build_object).
    pairs: list[sa.ColumnElement[Any]] = []
    for name, column in fields.items():
        assert name.isidentifier()
        pairs += [sa.literal_column(f"'{name}'"), column]
    aggregate: sa.ColumnElement[Any]
    if dialect == "postgresql":
        aggregate = sa.func.coalesce(
            sa.func.json_agg(sa.func.json_build_object(*pairs)), sa.text("'[]'::json")
        )
    else:
        aggregate = sa.func.json_group_array(sa.func.json_object(*pairs))
    return (
        sa.select(aggregate)
        .select_from(source)
        .where(where)
        .correlate(t.versions)
        .scalar_subquery()
    )


def _records(dialect: str) -> sa.Select[Any]:
    """Every column of a version, its model's name and its child rows as JSON arrays."""
    version_id = t.versions.c.id
    target = t.versions.alias("target_version")
    target_model = t.models.alias("target_model")
    return sa.select(
        t.versions,
        t.models.c.name.label("model_name"),
        _json_rows(
            dialect,
            {"key": t.version_tags.c.key, "value": t.version_tags.c.value},
            t.version_tags,
            t.version_tags.c.version_id == version_id,
        ).label("tag_rows"),
        _json_rows(
            dialect,
            {"name": t.aliases.c.name},
            t.aliases,
            t.aliases.c.version_id == version_id,
        ).label("alias_rows"),
        _json_rows(
            dialect,
            {
                "id": t.lineage_edges.c.id,
                "relation": t.lineage_edges.c.relation,
                "target_version_id": t.lineage_edges.c.target_version_id,
                "target_uri": t.lineage_edges.c.target_uri,
                "target_digest": t.lineage_edges.c.target_digest,
                "target_name": target_model.c.name,
                "target_number": target.c.number,
            },
            t.lineage_edges.outerjoin(
                target, target.c.id == t.lineage_edges.c.target_version_id
            ).outerjoin(target_model, target_model.c.id == target.c.model_id),
            t.lineage_edges.c.version_id == version_id,
        ).label("lineage_rows"),
        _json_rows(
            dialect,
            {
                "id": t.evidence.c.id,
                "kind": t.evidence.c.kind,
                "media_type": t.evidence.c.media_type,
                "predicate_type": t.evidence.c.predicate_type,
                "digest": t.evidence.c.digest,
                "signer": t.evidence.c.signer,
                "created_at": t.evidence.c.created_at,
                "created_by": t.evidence.c.created_by,
            },
            t.evidence,
            t.evidence.c.version_id == version_id,
        ).label("evidence_rows"),
    ).select_from(t.versions.join(t.models, t.models.c.id == t.versions.c.model_id))


#: Built once per backend and lookup: building a statement this size costs more than
#: running it, and SQLAlchemy's compiled cache still needs the statement object.
_RECORD_QUERIES: dict[tuple[str, str], sa.Select[Any]] = {}


def _record_query(dialect: str, lookup: str) -> sa.Select[Any]:
    """The record query finding a version by ``id``, or by model ``name`` and its
    ``number``, ``alias`` or ``latest`` version (bound parameters of those names)."""
    found = _RECORD_QUERIES.get((dialect, lookup))
    if found is not None:
        return found
    query = _records(dialect)
    if lookup == "id":
        query = query.where(t.versions.c.id == sa.bindparam("id"))
    else:
        query = query.where(t.models.c.name == sa.bindparam("name"))
    if lookup == "number":
        query = query.where(t.versions.c.number == sa.bindparam("number"))
    elif lookup == "alias":
        pointer = t.aliases.alias("pointer")
        query = query.join(
            pointer,
            sa.and_(pointer.c.model_id == t.models.c.id, pointer.c.version_id == t.versions.c.id),
        ).where(pointer.c.name == sa.bindparam("alias"))
    elif lookup == "latest":
        newest = t.versions.alias("newest")
        query = query.where(
            t.versions.c.number
            == sa.select(sa.func.max(newest.c.number))
            .where(newest.c.model_id == t.models.c.id)
            .scalar_subquery()
        )
    _RECORD_QUERIES[(dialect, lookup)] = query
    return query


def _array(value: Any) -> list[dict[str, Any]]:
    # SQLite returns the array as JSON text; psycopg has already decoded PostgreSQL's json.
    rows = json.loads(value) if isinstance(value, (str, bytes)) else value
    return list(rows or [])


def _version(row: Row) -> ModelVersion:
    lineage = sorted(_array(row.lineage_rows), key=lambda e: int(e["id"]))
    evidence = sorted(_array(row.evidence_rows), key=lambda e: int(e["id"]))
    return ModelVersion(
        name=str(row.model_name),
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
        tags={str(r["key"]): str(r["value"]) for r in _array(row.tag_rows)},
        description=str(row.description),
        datasets=[DatasetRef(**d) for d in json.loads(row.datasets)],
        lineage=[
            LineageEdge(
                relation=str(e["relation"]),
                target=(
                    f"{e['target_name']}/{int(e['target_number'])}"
                    if e["target_version_id"] is not None
                    else str(e["target_uri"])
                ),
                digest=str(e["target_digest"]),
                registered=e["target_version_id"] is not None,
            )
            for e in lineage
        ],
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
            [FileFormat(**f) for f in json.loads(row.formats)] if row.formats is not None else None
        ),
        created_at=str(row.created_at),
        created_by=str(row.created_by),
        aliases=sorted(str(r["name"]) for r in _array(row.alias_rows)),
        evidence=[
            Evidence(
                id=int(e["id"]),
                kind=str(e["kind"]),
                media_type=str(e["media_type"]),
                predicate_type=str(e["predicate_type"]),
                digest=str(e["digest"]),
                signer=str(e["signer"]),
                created_at=str(e["created_at"]),
                created_by=str(e["created_by"]),
            )
            for e in evidence
        ],
    )
