"""Blob holds: rows of ``blob_holds`` (ADR 0045).

A *lease* says "a registration is storing or reusing this blob: do not remove it"; a
*claim* says "``mlprov gc`` is removing this blob: do not count on it". One row per
digest, so one excludes the other. A lease row is shared: a registration that finds a
lease on a blob joins it (extending its expiry) and keeps the row's ``holder`` as the
lease's token; the row is replaced only by a claim, and a claim is taken only on a blob
with no live lease. So a registration whose token is still the row's holder when it
commits knows no claim came between, and the blob it stored or found is still there.

Times are the registry's ISO-8601 UTC text, which compares in time order as text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from mlprov.store import _schema as t
from mlprov.store._rows import Rows

__all__ = ["BlobHold", "BlobHoldRows"]

LEASE = "lease"
CLAIM = "claim"


@dataclass(frozen=True)
class BlobHold:
    digest: str
    state: str  # "lease" or "claim"
    holder: str
    expires_at: str

    def live(self, now: str) -> bool:
        return self.expires_at > now


class BlobHoldRows(Rows):
    def find(self, digest: str) -> BlobHold | None:
        row = self._one(sa.select(t.blob_holds).where(t.blob_holds.c.digest == digest))
        if row is None:
            return None
        return BlobHold(str(row.digest), str(row.state), str(row.holder), str(row.expires_at))

    def lease(self, digest: str, holder: str, expires_at: str, now: str) -> str | None:
        """Lease a blob until ``expires_at``; the lease's token, or None while a live
        claim holds it. An existing lease is joined (its token kept, its expiry only ever
        extended); a stale claim is replaced."""
        found = self.find(digest)
        if found is None:
            self.connection.execute(
                sa.insert(t.blob_holds).values(
                    digest=digest, state=LEASE, holder=holder, expires_at=expires_at
                )
            )
            return holder
        if found.state == LEASE:
            if expires_at > found.expires_at:
                self._set(digest, LEASE, found.holder, expires_at)
            return found.holder
        if found.live(now):
            return None
        self._set(digest, LEASE, holder, expires_at)
        return holder

    def leased(self, digest: str, token: str) -> bool:
        """Whether the lease with this token is still the blob's row (no claim since)."""
        found = self.find(digest)
        return found is not None and found.state == LEASE and found.holder == token

    def claim(self, digest: str, holder: str, expires_at: str, now: str) -> bool:
        """Claim a blob for removal; False while a live lease or claim holds it."""
        found = self.find(digest)
        if found is None:
            self.connection.execute(
                sa.insert(t.blob_holds).values(
                    digest=digest, state=CLAIM, holder=holder, expires_at=expires_at
                )
            )
            return True
        if found.live(now):
            return False
        self._set(digest, CLAIM, holder, expires_at)
        return True

    def claim_own_lease(self, digest: str, token: str, expires_at: str) -> bool:
        """Turn the lease with ``token`` into a claim by the same holder (an import undoing
        a blob it added); False when the row is no longer that lease. A registration that
        joined the lease then fails its commit check, as it would after gc."""
        result = self.connection.execute(
            sa.update(t.blob_holds)
            .where(
                t.blob_holds.c.digest == digest,
                t.blob_holds.c.state == LEASE,
                t.blob_holds.c.holder == token,
            )
            .values(state=CLAIM, expires_at=expires_at)
        )
        return result.rowcount == 1

    def release_claims(self, digests: Iterable[str], holder: str) -> None:
        for digest in digests:
            self.connection.execute(
                sa.delete(t.blob_holds).where(
                    t.blob_holds.c.digest == digest,
                    t.blob_holds.c.state == CLAIM,
                    t.blob_holds.c.holder == holder,
                )
            )

    def live_digests(self, now: str) -> set[str]:
        rows = self._all(sa.select(t.blob_holds.c.digest).where(t.blob_holds.c.expires_at > now))
        return {str(r.digest) for r in rows}

    def remove_stale(self, now: str) -> int:
        """Remove expired holds (a lease nobody committed, a claim of a gc that died)."""
        result = self.connection.execute(
            sa.delete(t.blob_holds).where(t.blob_holds.c.expires_at <= now)
        )
        return int(result.rowcount or 0)

    def _set(self, digest: str, state: str, holder: str, expires_at: str) -> None:
        self.connection.execute(
            sa.update(t.blob_holds)
            .where(t.blob_holds.c.digest == digest)
            .values(state=state, holder=holder, expires_at=expires_at)
        )
