"""Bearer tokens: rows of ``tokens`` as :class:`~mlprov.records.TokenRecord`.

The secret itself is never stored. The ``secret_sha256`` column holds the hex SHA-256 of
the whole secret, read back only by :meth:`TokenRows.credentials` for authentication; no
record carries it.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from mlprov.audit import TokenState
from mlprov.canonical import canonical_json
from mlprov.records import TokenRecord
from mlprov.store import _schema as t
from mlprov.store._rows import Rows

__all__ = ["TokenRows"]


class TokenRows(Rows):
    def find(self, token_id: str) -> TokenRecord | None:
        row = self._one(sa.select(t.tokens).where(t.tokens.c.id == token_id))
        return _record(row) if row is not None else None

    def credentials(self, token_id: str) -> tuple[TokenRecord, str] | None:
        """The token and the SHA-256 (hex) of its secret, to compare a presented one with."""
        row = self._one(sa.select(t.tokens).where(t.tokens.c.id == token_id))
        return (_record(row), str(row.secret_sha256)) if row is not None else None

    def all(self) -> list[TokenRecord]:
        rows = self._all(sa.select(t.tokens).order_by(t.tokens.c.created_at, t.tokens.c.id))
        return [_record(r) for r in rows]

    def states(self) -> dict[str, TokenState]:
        """Every token as audit verification compares it with the chain, digest included."""
        found: dict[str, TokenState] = {}
        for row in self._all(sa.select(t.tokens)):
            record = _record(row)
            found[record.id] = TokenState(
                record.id,
                record.name,
                record.role,
                record.models,
                str(row.secret_sha256),
                record.created_at,
                record.created_by,
                record.expires_at,
                record.revoked_at,
                record.revoked_by,
                record.revoke_reason,
            )
        return found

    def insert(self, token: TokenRecord, secret_sha256: str) -> None:
        self.connection.execute(
            sa.insert(t.tokens).values(
                id=token.id,
                name=token.name,
                role=token.role,
                models=canonical_json(list(token.models), "model patterns").decode("utf-8"),
                secret_sha256=secret_sha256,
                created_at=token.created_at,
                created_by=token.created_by,
                expires_at=token.expires_at,
                revoked_at=None,
                revoked_by=None,
                revoke_reason=None,
            )
        )

    def revoke(self, token_id: str, *, at: str, actor: str, reason: str) -> bool:
        """Mark a token revoked; False when there is no such token or it already was
        (a compare-and-set: two revocations racing, one wins)."""
        result = self.connection.execute(
            sa.update(t.tokens)
            .where(t.tokens.c.id == token_id, t.tokens.c.revoked_at.is_(None))
            .values(revoked_at=at, revoked_by=actor, revoke_reason=reason)
        )
        return result.rowcount == 1


def _record(row: sa.Row[Any]) -> TokenRecord:
    return TokenRecord(
        id=str(row.id),
        name=str(row.name),
        role=str(row.role),
        models=tuple(str(p) for p in json.loads(row.models)),
        created_at=str(row.created_at),
        created_by=str(row.created_by),
        expires_at=None if row.expires_at is None else str(row.expires_at),
        revoked_at=None if row.revoked_at is None else str(row.revoked_at),
        revoked_by=None if row.revoked_by is None else str(row.revoked_by),
        revoke_reason=None if row.revoke_reason is None else str(row.revoke_reason),
    )
