"""Blob holds: rows of ``blob_holds`` (ADR 0045).

A *lease* says "a registration is storing or reusing this blob: do not remove it"; a
*claim* says "``mlprov gc`` is removing this blob: do not count on it". One row per
digest, so one excludes the other. A lease row is shared: a registration that finds a
lease on a blob joins it (extending its expiry) and keeps the row's ``holder`` as the
lease's token; the row is replaced only by a claim, and a claim is taken only on a blob
with no live lease. So a registration whose token is still the row's holder when it
commits knows no claim came between, and the blob it stored or found is still there.

Leases and claims are each one statement (an insert that, on a digest already held,
updates only under the rule above: ``ON CONFLICT DO UPDATE ... WHERE``, the same on
SQLite and PostgreSQL), so they are atomic without the writer lock: a registration's
leases are taken in a short transaction of their own that waits for no other writer
(:meth:`mlprov.store.MetadataStore.lease_blobs`).

Times are the registry's ISO-8601 UTC text, which compares in time order as text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from mlprov.store import _schema as t
from mlprov.store._rows import Rows

__all__ = ["BlobHold", "BlobHoldRows"]

LEASE = "lease"
CLAIM = "claim"

_HELD = t.blob_holds.c
#: The holds of the digests given, for a commit's check of its leases on PostgreSQL (a
#: constant statement, as what is sent together must be: mlprov.store._rows).
_HOLDS_OF_ANY = sa.select(_HELD.digest, _HELD.state, _HELD.holder).where(
    _HELD.digest == sa.any_(sa.bindparam("digests", type_=postgresql.ARRAY(sa.String)))
)


def _insert(dialect: str) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t.blob_holds)


def _leasing(insert: Any, now: Any) -> Any:
    """``insert`` of lease rows, made a lease by the rules of the module docstring: on a
    digest already held, join a lease (its holder stays the token, its expiry only ever
    grows) or replace a stale claim; a live claim stays, and no row comes back for it."""
    return insert.on_conflict_do_update(
        index_elements=[_HELD.digest],
        set_={
            "state": LEASE,
            "holder": sa.case((_HELD.state == LEASE, _HELD.holder), else_=insert.excluded.holder),
            "expires_at": sa.case(
                (
                    sa.and_(_HELD.state == LEASE, _HELD.expires_at > insert.excluded.expires_at),
                    _HELD.expires_at,
                ),
                else_=insert.excluded.expires_at,
            ),
        },
        where=sa.or_(_HELD.state == LEASE, _HELD.expires_at <= now),
    ).returning(_HELD.digest, _HELD.holder)


#: The lease of one digest on SQLite (a constant statement: SQLAlchemy compiles it once).
_SQLITE_LEASE = _leasing(
    sqlite.insert(t.blob_holds).values(
        digest=sa.bindparam("digest", type_=sa.String),
        state=LEASE,
        holder=sa.bindparam("holder", type_=sa.String),
        expires_at=sa.bindparam("expires_at", type_=sa.String),
    ),
    sa.bindparam("now", type_=sa.String),
)
#: The lease of any number of digests on PostgreSQL, one constant statement (compiled
#: once: building and compiling an upsert costs more than running it).
_PG_LEASE = _leasing(
    postgresql.insert(t.blob_holds).from_select(
        ["digest", "state", "holder", "expires_at"],
        sa.select(
            sa.func.unnest(sa.bindparam("digests", type_=postgresql.ARRAY(sa.String))),
            sa.literal(LEASE, sa.String),
            sa.bindparam("holder", type_=sa.String),
            sa.bindparam("expires_at", type_=sa.String),
        ),
    ),
    sa.bindparam("now", type_=sa.String),
)


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

    def lease(
        self, digests: Sequence[str], holder: str, expires_at: str, now: str
    ) -> dict[str, str]:
        """Lease blobs until ``expires_at``, in one statement; each digest's lease token,
        leaving out those a live claim holds. An existing lease is joined (its token
        kept, its expiry only ever extended); a stale claim is replaced."""
        wanted = sorted(set(digests))
        if not wanted:
            return {}
        rows: Sequence[Sequence[Any]]
        if self.connection.dialect.name == "postgresql":
            values = {"digests": wanted, "holder": holder, "expires_at": expires_at, "now": now}
            rows = self.connection.execute(_PG_LEASE, values).all()
        else:
            # In-process: a statement per digest costs a function call, not a round trip.
            rows = []
            for digest in wanted:
                values = {"digest": digest, "holder": holder, "expires_at": expires_at}
                rows += self.connection.execute(_SQLITE_LEASE, values | {"now": now}).all()
        return {str(row[0]): str(row[1]) for row in rows}

    def check_leased(self, leases: Mapping[str, str], lost: Callable[[list[str]], None]) -> None:
        """A commit's check that every lease (digest to token) is still the blob's row, so
        no claim came in between: ``lost(digests)`` is called with those that are not,
        and raises. On PostgreSQL the query goes with the transaction's next statement
        (:meth:`LaterWrites.check`), not a round trip of its own under the writer lock."""
        if not leases:
            return

        def consume(rows: Sequence[Sequence[Any]]) -> None:
            found = {str(r[0]): (str(r[1]), str(r[2])) for r in rows}
            gone = sorted(d for d, token in leases.items() if found.get(d) != (LEASE, token))
            if gone:
                lost(gone)

        if self.later.deferring:
            self.later.check(_HOLDS_OF_ANY, {"digests": sorted(leases)}, consume)
        else:
            query = sa.select(_HELD.digest, _HELD.state, _HELD.holder).where(
                _HELD.digest.in_(sorted(leases))
            )
            self.later.check(query, {}, consume)

    def claim(self, digest: str, holder: str, expires_at: str, now: str) -> bool:
        """Claim a blob for removal, in one statement; False while a live lease or claim
        holds it."""
        insert = _insert(self.connection.dialect.name)
        statement = (
            insert.values(digest=digest, state=CLAIM, holder=holder, expires_at=expires_at)
            .on_conflict_do_update(
                index_elements=[_HELD.digest],
                set_={
                    "state": CLAIM,
                    "holder": insert.excluded.holder,
                    "expires_at": insert.excluded.expires_at,
                },
                where=_HELD.expires_at <= now,
            )
            .returning(_HELD.digest)
        )
        return self.connection.execute(statement).first() is not None

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
