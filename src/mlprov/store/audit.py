"""The audit log: rows of ``audit_log`` and its head, appended only under the writer lock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from mlprov.audit import GENESIS_HASH, details_text, entry_hash
from mlprov.records import AuditEntry
from mlprov.store import _schema as t
from mlprov.store._rows import Rows
from mlprov.store.models import like_literal

__all__ = ["AuditRows"]

# Built once: building a statement costs more than running it (ADR 0049). Values are
# bound at execution; an UPDATE without values() sets the columns its parameters name.
_LOCK_HEAD = (
    sa.select(t.audit_head.c.seq, t.audit_head.c.hash)
    .where(t.audit_head.c.id == 1)
    .with_for_update()
)
_HEAD = sa.select(t.audit_head.c.seq, t.audit_head.c.hash).where(t.audit_head.c.id == 1)
_INSERT_ENTRY = sa.insert(t.audit_log)
_MOVE_HEAD = sa.update(t.audit_head).where(t.audit_head.c.id == 1)


class AuditRows(Rows):
    #: The chain head as this transaction holds it (read with the lock, moved by each
    #: append; a rolled-back savepoint puts it back): the next entry chains to it
    #: without reading the head again.
    known_head: tuple[int, str] | None = None

    def lock_head(self) -> None:
        """Take the global writer lock: the audit head row (a no-op clause on SQLite,
        whose BEGIN IMMEDIATE already holds the database's write lock), and read the
        head with it, from the locked row. On PostgreSQL the lock is sent with the
        transaction's first statement (:meth:`LaterWrites.lead`)."""
        self.known_head = None
        self.later.lead(_LOCK_HEAD, self._locked)

    def _locked(self, rows: Sequence[Sequence[Any]]) -> None:
        self.known_head = (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS_HASH)

    def append(
        self,
        *,
        at: str,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any],
        reason: str,
    ) -> AuditEntry:
        """Append one entry to the hash chain and move the head (caller holds the lock).
        The entry and the head are written with the transaction's later writes (sent
        together on PostgreSQL: mlprov.store._rows.LaterWrites)."""
        if self.known_head is None and self.later.leading:
            self.later.send()  # the lock, which reads the head
        prev_seq, prev_hash = self.known_head if self.known_head is not None else self.head()
        seq = prev_seq + 1
        text = details_text(details)
        values = {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": text,
            "reason": reason,
            "prev_hash": prev_hash,
        }
        digest = entry_hash(**values)  # type: ignore[arg-type]
        self.later.add(_INSERT_ENTRY, {**values, "hash": digest})
        self.later.add(_MOVE_HEAD, {"seq": seq, "hash": digest})
        self.known_head = (seq, digest)
        return AuditEntry.model_validate({**values, "hash": digest})

    def head(self) -> tuple[int, str]:
        row = self._one(_HEAD)
        return (int(row.seq), str(row.hash)) if row else (0, GENESIS_HASH)

    def latest(self, subject: str, actions: tuple[str, ...]) -> AuditEntry | None:
        """The newest entry about exactly ``subject`` whose action is one of ``actions``."""
        row = self._one(
            sa.select(t.audit_log)
            .where(t.audit_log.c.subject == subject, t.audit_log.c.action.in_(actions))
            .order_by(t.audit_log.c.seq.desc())
            .limit(1)
        )
        return AuditEntry.model_validate(dict(row._mapping)) if row is not None else None

    def after_with(self, seq: int, subject: str, action: str) -> list[AuditEntry]:
        """Entries after ``seq`` about exactly ``subject`` with ``action``, oldest first."""
        query = (
            sa.select(t.audit_log)
            .where(
                t.audit_log.c.seq > seq,
                t.audit_log.c.subject == subject,
                t.audit_log.c.action == action,
            )
            .order_by(t.audit_log.c.seq)
        )
        return [AuditEntry.model_validate(dict(row._mapping)) for row in self._all(query)]

    def hash_at(self, seq: int) -> str | None:
        """The hash of entry ``seq`` (the genesis hash for 0), or None if it is missing."""
        if seq == 0:
            return GENESIS_HASH
        row = self._one(sa.select(t.audit_log.c.hash).where(t.audit_log.c.seq == seq))
        return str(row.hash) if row is not None else None

    def entries_after(self, after: int, limit: int) -> list[AuditEntry]:
        """At most ``limit`` entries with a sequence number above ``after``, oldest
        first (one page of the chain)."""
        query = (
            sa.select(t.audit_log)
            .where(t.audit_log.c.seq > after)
            .order_by(t.audit_log.c.seq)
            .limit(limit)
        )
        return [AuditEntry.model_validate(dict(row._mapping)) for row in self._all(query)]

    def entries(self, *, subject: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Entries oldest first; ``subject`` matches a model (and its versions and aliases)
        or one exact subject, literally (``_`` and ``%`` are not wildcards)."""
        query = sa.select(t.audit_log).order_by(t.audit_log.c.seq)
        if subject:
            escaped = like_literal(subject)
            query = query.where(
                sa.or_(
                    t.audit_log.c.subject == subject,
                    t.audit_log.c.subject.like(escaped + "/%", escape="\\"),
                    t.audit_log.c.subject.like(escaped + "@%", escape="\\"),
                )
            )
        if limit is not None:
            query = query.order_by(None).order_by(t.audit_log.c.seq.desc()).limit(limit)
        entries = [AuditEntry.model_validate(dict(row._mapping)) for row in self._all(query)]
        return sorted(entries, key=lambda e: e.seq)
