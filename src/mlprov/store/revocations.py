"""Revocations: rows of ``revocations`` as records."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mlprov.records import Revocation
from mlprov.store import _schema as t
from mlprov.store._rows import Rows

__all__ = ["Revocation", "RevocationRows"]


class RevocationRows(Rows):
    def find(self, kind: str, value: str) -> Revocation | None:
        row = self._one(
            sa.select(t.revocations).where(
                t.revocations.c.kind == kind, t.revocations.c.value == value
            )
        )
        return _record(row) if row is not None else None

    def all(self) -> list[Revocation]:
        return [
            _record(r) for r in self._all(sa.select(t.revocations).order_by(t.revocations.c.id))
        ]

    def insert(self, revocation: Revocation) -> None:
        self.connection.execute(
            sa.insert(t.revocations).values(
                kind=revocation.kind,
                value=revocation.value,
                reason=revocation.reason,
                at=revocation.at,
                actor=revocation.actor,
                signer=revocation.signer,
                bundle=revocation.bundle,
            )
        )


def _record(row: sa.Row[Any]) -> Revocation:
    return Revocation(
        str(row.kind),
        str(row.value),
        str(row.reason),
        str(row.at),
        str(row.actor),
        str(row.signer),
        bytes(row.bundle),
    )
