"""Idempotency keys of export records over HTTP: rows of ``export_keys`` as records."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from mlprov.store import _schema as t
from mlprov.store._rows import Rows

__all__ = ["ExportKey", "ExportKeyRows"]


@dataclass(frozen=True)
class ExportKey:
    """The audit entry an export record made under an idempotency key, the digest of the
    request it was made from and the answer it was given (the closure's JSON text)."""

    key: str
    request_digest: str
    audit_seq: int
    answer: str
    created_at: str
    created_by: str


class ExportKeyRows(Rows):
    def find(self, key: str) -> ExportKey | None:
        row = self._one(sa.select(t.export_keys).where(t.export_keys.c.key == key))
        if row is None:
            return None
        return ExportKey(
            str(row.key),
            str(row.request_digest),
            int(row.audit_seq),
            str(row.answer),
            str(row.created_at),
            str(row.created_by),
        )

    def insert(self, record: ExportKey) -> None:
        self.connection.execute(
            sa.insert(t.export_keys).values(
                key=record.key,
                request_digest=record.request_digest,
                audit_seq=record.audit_seq,
                answer=record.answer,
                created_at=record.created_at,
                created_by=record.created_by,
            )
        )
