"""Idempotency keys of registrations: rows of ``registration_keys`` as records."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from mlprov.store import _schema as t
from mlprov.store._rows import Rows
from mlprov.store.models import ModelKey

__all__ = ["RegistrationKey", "RegistrationKeyRows"]


@dataclass(frozen=True)
class RegistrationKey:
    """The version a registration made under an idempotency key, and the digest of the
    request it was made from."""

    key: str
    version_id: int
    request_digest: str
    created_at: str
    created_by: str


class RegistrationKeyRows(Rows):
    def find(self, model: ModelKey, key: str) -> RegistrationKey | None:
        row = self._one(
            sa.select(t.registration_keys).where(
                t.registration_keys.c.model_id == model.id, t.registration_keys.c.key == key
            )
        )
        if row is None:
            return None
        return RegistrationKey(
            str(row.key),
            int(row.version_id),
            str(row.request_digest),
            str(row.created_at),
            str(row.created_by),
        )

    def insert(self, model: ModelKey, record: RegistrationKey) -> None:
        self.connection.execute(
            sa.insert(t.registration_keys).values(
                model_id=model.id,
                key=record.key,
                version_id=record.version_id,
                request_digest=record.request_digest,
                created_at=record.created_at,
                created_by=record.created_by,
            )
        )
