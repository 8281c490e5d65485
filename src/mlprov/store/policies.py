"""Applied policy sets: rows of ``policy_sets`` and ``policy_files`` as records."""

from __future__ import annotations

import sqlalchemy as sa

from mlprov.records import StoredPolicySet
from mlprov.store import _schema as t
from mlprov.store._rows import Rows

__all__ = ["PolicyRows", "StoredPolicySet"]


class PolicyRows(Rows):
    def active_digest(self) -> str | None:
        """The digest of the active (newest) policy set, or None when none was applied."""
        row = self._one(
            sa.select(t.policy_sets.c.digest).order_by(t.policy_sets.c.version.desc()).limit(1)
        )
        return str(row.digest) if row is not None else None

    def active(self) -> StoredPolicySet | None:
        row = self._one(sa.select(t.policy_sets).order_by(t.policy_sets.c.version.desc()).limit(1))
        return self._with_files(row) if row is not None else None

    def version(self, number: int) -> StoredPolicySet | None:
        row = self._one(sa.select(t.policy_sets).where(t.policy_sets.c.version == number))
        return self._with_files(row) if row is not None else None

    def _with_files(self, row: sa.Row[object]) -> StoredPolicySet:
        files = {
            str(f.name): bytes(f.content)
            for f in self._all(
                sa.select(t.policy_files)
                .where(t.policy_files.c.version == row.version)
                .order_by(t.policy_files.c.name)
            )
        }
        return StoredPolicySet(
            int(row.version),
            str(row.digest),
            str(row.applied_at),
            str(row.applied_by),
            str(row.reason),
            files,
        )

    def insert(
        self, *, digest: str, files: dict[str, bytes], at: str, actor: str, reason: str
    ) -> int:
        """Apply a new version (the next number; the caller holds the writer lock)."""
        latest = self._one(sa.select(sa.func.max(t.policy_sets.c.version).label("v")))
        number = int(latest.v or 0) + 1 if latest is not None else 1
        self.connection.execute(
            sa.insert(t.policy_sets).values(
                version=number, digest=digest, applied_at=at, applied_by=actor, reason=reason
            )
        )
        rows = [{"version": number, "name": name, "content": files[name]} for name in sorted(files)]
        if rows:
            self.connection.execute(sa.insert(t.policy_files), rows)
        return number
