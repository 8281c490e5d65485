"""Every SQL statement of mlprov, as methods of one transaction object.

The registry service composes these inside :meth:`MetadataStore.write`, so a whole
operation (a version with its files, lineage and audit entry; an alias move with its
history and audit entry) commits together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from mlprov.audit import GENESIS_HASH, canonical_json, entry_hash
from mlprov.errors import ConflictError, MlprovError, StorageError
from mlprov.records import AuditEntry
from mlprov.store import _schema as t

__all__ = ["StoreTransaction", "translate_db_error"]


def translate_db_error(error: exc.SQLAlchemyError) -> MlprovError:
    """Map a database failure to the most specific mlprov error."""
    if isinstance(error, exc.IntegrityError):
        return ConflictError(f"conflicting change: {_first_line(error.orig or error)}")
    text = _first_line(error.orig if isinstance(error, exc.DBAPIError) and error.orig else error)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        return StorageError(f"metadata store is read-only: {text}")
    if "disk is full" in lowered or "no space" in lowered or "database or disk is full" in lowered:
        return StorageError(f"metadata store is full: {text}")
    if "unable to open database" in lowered:
        return StorageError(f"cannot open the metadata store: {text}")
    if isinstance(error, exc.OperationalError):
        return StorageError(f"metadata store unavailable: {text}")
    return StorageError(f"metadata store error: {text}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


Row = sa.Row[Any]


class StoreTransaction:
    """One open transaction. Methods return plain rows; the service builds records."""

    def __init__(self, connection: sa.Connection, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect

    def _one(self, statement: sa.Executable) -> Row | None:
        return self.connection.execute(statement).first()

    def _all(self, statement: sa.Executable) -> Sequence[Row]:
        return self.connection.execute(statement).all()

    # -- serialisation of writers ------------------------------------------------------

    def lock_writers(self) -> None:
        """Take the global writer lock: the audit head row (a no-op clause on SQLite,
        whose BEGIN IMMEDIATE already holds the database's write lock)."""
        self._one(sa.select(t.audit_head.c.seq).where(t.audit_head.c.id == 1).with_for_update())

    # -- models ------------------------------------------------------------------------

    def model_by_name(self, name: str) -> Row | None:
        return self._one(sa.select(t.models).where(t.models.c.name == name))

    def insert_model(self, *, name: str, description: str, at: str, actor: str) -> int:
        result = self.connection.execute(
            sa.insert(t.models)
            .values(name=name, description=description, created_at=at, created_by=actor)
            .returning(t.models.c.id)
        )
        return int(result.scalar_one())

    def list_models(self, prefix: str | None) -> Sequence[Row]:
        query = sa.select(t.models).order_by(t.models.c.name)
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(t.models.c.name.like(escaped + "%", escape="\\"))
        return self._all(query)

    def model_tags(self, model_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        ids = list(model_ids)
        tags: dict[int, dict[str, str]] = {i: {} for i in ids}
        if ids:
            for row in self._all(sa.select(t.model_tags).where(t.model_tags.c.model_id.in_(ids))):
                tags[row.model_id][row.key] = row.value
        return tags

    def set_model_tag(self, model_id: int, key: str, value: str | None) -> None:
        self.connection.execute(
            sa.delete(t.model_tags).where(
                t.model_tags.c.model_id == model_id, t.model_tags.c.key == key
            )
        )
        if value is not None:
            self.connection.execute(
                sa.insert(t.model_tags).values(model_id=model_id, key=key, value=value)
            )

    def set_model_description(self, model_id: int, description: str) -> None:
        self.connection.execute(
            sa.update(t.models).where(t.models.c.id == model_id).values(description=description)
        )

    def allocate_version_number(self, model_id: int) -> int:
        """The model's next version number; numbers are never reused, even after a failure
        that rolls back, because the counter moves only when the version commits."""
        self.connection.execute(
            sa.update(t.models)
            .where(t.models.c.id == model_id)
            .values(next_version=t.models.c.next_version + 1)
        )
        number = self.connection.execute(
            sa.select(t.models.c.next_version).where(t.models.c.id == model_id)
        ).scalar_one()
        return int(number) - 1

    def latest_numbers(self, model_ids: Iterable[int]) -> dict[int, int]:
        ids = list(model_ids)
        if not ids:
            return {}
        rows = self._all(
            sa.select(t.versions.c.model_id, sa.func.max(t.versions.c.number).label("latest"))
            .where(t.versions.c.model_id.in_(ids))
            .group_by(t.versions.c.model_id)
        )
        return {int(row.model_id): int(row.latest) for row in rows}

    # -- versions ------------------------------------------------------------------------

    def insert_version(self, values: dict[str, Any]) -> int:
        result = self.connection.execute(
            sa.insert(t.versions).values(**values).returning(t.versions.c.id)
        )
        return int(result.scalar_one())

    def insert_files(self, version_id: int, files: Iterable[dict[str, Any]]) -> None:
        rows = [{"version_id": version_id, **f} for f in files]
        if rows:
            self.connection.execute(sa.insert(t.version_files), rows)

    def insert_lineage(self, version_id: int, edges: Iterable[dict[str, Any]]) -> None:
        rows = [{"version_id": version_id, **e} for e in edges]
        if rows:
            self.connection.execute(sa.insert(t.lineage_edges), rows)

    def set_version_tag(self, version_id: int, key: str, value: str | None) -> None:
        self.connection.execute(
            sa.delete(t.version_tags).where(
                t.version_tags.c.version_id == version_id, t.version_tags.c.key == key
            )
        )
        if value is not None:
            self.connection.execute(
                sa.insert(t.version_tags).values(version_id=version_id, key=key, value=value)
            )

    def set_version_description(self, version_id: int, description: str) -> None:
        self.connection.execute(
            sa.update(t.versions)
            .where(t.versions.c.id == version_id)
            .values(description=description)
        )

    def version(self, model_id: int, number: int) -> Row | None:
        return self._one(
            sa.select(t.versions).where(
                t.versions.c.model_id == model_id, t.versions.c.number == number
            )
        )

    def version_by_id(self, version_id: int) -> Row | None:
        return self._one(sa.select(t.versions).where(t.versions.c.id == version_id))

    def latest_version(self, model_id: int) -> Row | None:
        return self._one(
            sa.select(t.versions)
            .where(t.versions.c.model_id == model_id)
            .order_by(t.versions.c.number.desc())
            .limit(1)
        )

    def versions(self, model_id: int) -> Sequence[Row]:
        return self._all(
            sa.select(t.versions)
            .where(t.versions.c.model_id == model_id)
            .order_by(t.versions.c.number)
        )

    def versions_by_ids(self, ids: Iterable[int]) -> dict[int, Row]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        return {
            int(row.id): row
            for row in self._all(sa.select(t.versions).where(t.versions.c.id.in_(wanted)))
        }

    def files(self, version_id: int) -> Sequence[Row]:
        return self._all(
            sa.select(t.version_files)
            .where(t.version_files.c.version_id == version_id)
            .order_by(t.version_files.c.path)
        )

    def version_tags(self, version_id: int) -> dict[str, str]:
        rows = self._all(sa.select(t.version_tags).where(t.version_tags.c.version_id == version_id))
        return {row.key: row.value for row in rows}

    def lineage(self, version_id: int) -> Sequence[Row]:
        return self._all(
            sa.select(t.lineage_edges)
            .where(t.lineage_edges.c.version_id == version_id)
            .order_by(t.lineage_edges.c.id)
        )

    def lineage_into(self, target_version_id: int) -> Sequence[Row]:
        """Edges whose target is this version (its children)."""
        return self._all(
            sa.select(t.lineage_edges)
            .where(t.lineage_edges.c.target_version_id == target_version_id)
            .order_by(t.lineage_edges.c.id)
        )

    def model_names(self, model_ids: Iterable[int]) -> dict[int, str]:
        ids = list(set(model_ids))
        if not ids:
            return {}
        rows = self._all(sa.select(t.models.c.id, t.models.c.name).where(t.models.c.id.in_(ids)))
        return {int(row.id): str(row.name) for row in rows}

    def set_stage(self, version_id: int, stage: str) -> None:
        self.connection.execute(
            sa.update(t.versions).where(t.versions.c.id == version_id).values(stage=stage)
        )

    def versions_in_stage(self, model_id: int, stage: str) -> Sequence[Row]:
        return self._all(
            sa.select(t.versions).where(
                t.versions.c.model_id == model_id, t.versions.c.stage == stage
            )
        )

    def insert_stage_event(self, values: dict[str, Any]) -> None:
        self.connection.execute(sa.insert(t.stage_history).values(**values))

    def stage_history(self, model_id: int) -> Sequence[Row]:
        return self._all(
            sa.select(t.stage_history, t.versions.c.number)
            .join(t.versions, t.versions.c.id == t.stage_history.c.version_id)
            .where(t.versions.c.model_id == model_id)
            .order_by(t.stage_history.c.id)
        )

    # -- aliases -----------------------------------------------------------------------

    def alias(self, model_id: int, name: str) -> Row | None:
        return self._one(
            sa.select(t.aliases).where(t.aliases.c.model_id == model_id, t.aliases.c.name == name)
        )

    def aliases_of_model(self, model_id: int) -> Sequence[Row]:
        return self._all(
            sa.select(t.aliases, t.versions.c.number)
            .join(t.versions, t.versions.c.id == t.aliases.c.version_id)
            .where(t.aliases.c.model_id == model_id)
            .order_by(t.aliases.c.name)
        )

    def aliases_of_version(self, version_id: int) -> list[str]:
        rows = self._all(
            sa.select(t.aliases.c.name)
            .where(t.aliases.c.version_id == version_id)
            .order_by(t.aliases.c.name)
        )
        return [str(row.name) for row in rows]

    def move_alias(
        self, *, model_id: int, name: str, version_id: int | None, expected_generation: int
    ) -> int:
        """Compare-and-set: move only if the generation is still ``expected_generation``.

        Generation 0 means "the alias does not exist yet". Returns the new generation;
        raises ConflictError when someone else moved it first.
        """
        new_generation = expected_generation + 1
        if expected_generation == 0:
            try:
                with self.connection.begin_nested():
                    self.connection.execute(
                        sa.insert(t.aliases).values(
                            model_id=model_id,
                            name=name,
                            version_id=version_id,
                            generation=new_generation,
                        )
                    )
            except exc.IntegrityError as e:
                raise ConflictError(
                    f"alias {name!r} was created concurrently; re-read it and retry"
                ) from e
            return new_generation
        result = self.connection.execute(
            sa.update(t.aliases)
            .where(
                t.aliases.c.model_id == model_id,
                t.aliases.c.name == name,
                t.aliases.c.generation == expected_generation,
            )
            .values(version_id=version_id, generation=new_generation)
        )
        if result.rowcount != 1:
            raise ConflictError(
                f"alias {name!r} changed concurrently (expected generation "
                f"{expected_generation}); re-read it and retry"
            )
        return new_generation

    def insert_alias_event(self, values: dict[str, Any]) -> None:
        self.connection.execute(sa.insert(t.alias_history).values(**values))

    def alias_history(self, model_id: int, name: str | None) -> Sequence[Row]:
        query = sa.select(t.alias_history).where(t.alias_history.c.model_id == model_id)
        if name is not None:
            query = query.where(t.alias_history.c.alias == name)
        return self._all(query.order_by(t.alias_history.c.id))

    # -- evidence ------------------------------------------------------------------------

    def insert_evidence(self, values: dict[str, Any]) -> int:
        result = self.connection.execute(
            sa.insert(t.evidence).values(**values).returning(t.evidence.c.id)
        )
        return int(result.scalar_one())

    def evidence(self, version_id: int, *, with_content: bool = False) -> Sequence[Row]:
        columns = [c for c in t.evidence.c if with_content or c.name != "content"]
        return self._all(
            sa.select(*columns)
            .where(t.evidence.c.version_id == version_id)
            .order_by(t.evidence.c.id)
        )

    def evidence_by_digest(self, version_id: int, digest: str) -> Row | None:
        return self._one(
            sa.select(t.evidence).where(
                t.evidence.c.version_id == version_id, t.evidence.c.digest == digest
            )
        )

    # -- audit ---------------------------------------------------------------------------

    def append_audit(
        self,
        *,
        at: str,
        actor: str,
        action: str,
        subject: str,
        details: dict[str, Any],
        reason: str,
    ) -> AuditEntry:
        """Append one entry to the hash chain and move the head (caller holds the lock)."""
        head = self._one(
            sa.select(t.audit_head.c.seq, t.audit_head.c.hash).where(t.audit_head.c.id == 1)
        )
        prev_seq, prev_hash = (int(head.seq), str(head.hash)) if head else (0, GENESIS_HASH)
        seq = prev_seq + 1
        details_text = canonical_json(details)
        digest = entry_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=details_text,
            reason=reason,
            prev_hash=prev_hash,
        )
        values = {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details_text,
            "reason": reason,
            "prev_hash": prev_hash,
            "hash": digest,
        }
        self.connection.execute(sa.insert(t.audit_log).values(**values))
        self.connection.execute(
            sa.update(t.audit_head).where(t.audit_head.c.id == 1).values(seq=seq, hash=digest)
        )
        return AuditEntry.model_validate(values)

    def audit_head(self) -> tuple[int, str]:
        row = self._one(
            sa.select(t.audit_head.c.seq, t.audit_head.c.hash).where(t.audit_head.c.id == 1)
        )
        return (int(row.seq), str(row.hash)) if row else (0, GENESIS_HASH)

    def audit_entries(
        self, *, subject_prefix: str | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        query = sa.select(t.audit_log).order_by(t.audit_log.c.seq)
        if subject_prefix:
            query = query.where(
                sa.or_(
                    t.audit_log.c.subject == subject_prefix,
                    t.audit_log.c.subject.like(subject_prefix + "/%"),
                    t.audit_log.c.subject.like(subject_prefix + "@%"),
                )
            )
        if limit is not None:
            query = query.order_by(None).order_by(t.audit_log.c.seq.desc()).limit(limit)
        rows = self._all(query)
        entries = [AuditEntry.model_validate(dict(row._mapping)) for row in rows]
        return sorted(entries, key=lambda e: e.seq)

    # -- counts (for tests and `audit verify` summaries) --------------------------------

    def counts(self) -> dict[str, int]:
        tables = (
            t.models,
            t.versions,
            t.version_files,
            t.aliases,
            t.alias_history,
            t.stage_history,
            t.audit_log,
            t.evidence,
        )
        return {
            table.name: int(
                self.connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
            for table in tables
        }


def loads(text: str) -> Any:
    return json.loads(text)
