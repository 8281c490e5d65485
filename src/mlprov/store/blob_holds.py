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
SQLite and PostgreSQL), so they are atomic without the writer lock: on PostgreSQL a
registration's leases are one statement of their own that waits for no other writer
(:meth:`mlprov.store.MetadataStore.lease_blobs`).

Every claim is also recorded in ``blob_removals``, numbered in commit order (claims are
taken in write transactions, under the writer lock). A registration from stored blobs
does not lease them: it reads the highest number (:meth:`BlobHoldRows.watch`) before it
reads the blobs, and its commit checks that no claim on them came after
(:meth:`BlobHoldRows.check_unremoved`), a read where a lease would be a write.

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


_REMOVED = t.blob_removals.c
#: The claims on the digests given numbered above ``mark``, for a commit's check on
#: PostgreSQL (a constant statement, as what is sent together must be).
_REMOVALS_OF_ANY = (
    sa.select(_REMOVED.digest)
    .where(
        _REMOVED.id > sa.bindparam("mark", type_=sa.Integer),
        _REMOVED.digest == sa.any_(sa.bindparam("digests", type_=postgresql.ARRAY(sa.String))),
    )
    .distinct()
)


# The same queries elsewhere (SQLite), with an expanding IN; and a registration's watch.
# Each is a constant statement: SQLAlchemy builds its cache key and compiles it once.
_DIGESTS_IN: sa.BindParameter[str] = sa.bindparam("digests", expanding=True)
_HOLDS_IN = sa.select(_HELD.digest, _HELD.state, _HELD.holder).where(_HELD.digest.in_(_DIGESTS_IN))
_REMOVALS_IN = (
    sa.select(_REMOVED.digest)
    .where(_REMOVED.id > sa.bindparam("mark", type_=sa.Integer), _REMOVED.digest.in_(_DIGESTS_IN))
    .distinct()
)
_WATCH = sa.select(
    sa.select(sa.func.coalesce(sa.func.max(_REMOVED.id), 0)).scalar_subquery(),
    sa.select(sa.func.count())
    .select_from(t.blob_holds)
    .where(
        _HELD.digest.in_(_DIGESTS_IN),
        _HELD.state == CLAIM,
        _HELD.expires_at > sa.bindparam("now", type_=sa.String),
    )
    .scalar_subquery(),
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

        query = _HOLDS_OF_ANY if self.later.deferring else _HOLDS_IN
        self.later.check(query, {"digests": sorted(leases)}, consume)

    def claim(self, digest: str, holder: str, expires_at: str, now: str) -> bool:
        """Claim a blob for removal, in one statement, and record the claim in
        ``blob_removals``; False while a live lease or claim holds it."""
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
        if self.connection.execute(statement).first() is None:
            return False
        self._record_removal(digest, now)
        return True

    def claim_own_lease(self, digest: str, token: str, expires_at: str, now: str) -> bool:
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
        if result.rowcount != 1:
            return False
        self._record_removal(digest, now)
        return True

    def _record_removal(self, digest: str, now: str) -> None:
        self.connection.execute(sa.insert(t.blob_removals).values(digest=digest, at=now))

    def watch(self, digests: Sequence[str], now: str) -> tuple[int, int]:
        """Before a registration reads stored blobs: the highest claim number so far, and
        how many of ``digests`` a live claim holds now (gc is removing them: wait), in
        one statement."""
        row = self.connection.execute(_WATCH, {"digests": sorted(set(digests)), "now": now}).one()
        return int(row[0]), int(row[1])

    def check_unremoved(
        self, digests: Sequence[str], mark: int, lost: Callable[[list[str]], None]
    ) -> None:
        """A commit's check that no claim on ``digests`` was numbered above ``mark`` (none
        was taken since the registration looked): ``lost(digests)`` is called with those
        claimed since, and raises. On PostgreSQL the query goes with the transaction's
        next statement (:meth:`LaterWrites.check`)."""
        wanted = sorted(set(digests))
        if not wanted:
            return

        def consume(rows: Sequence[Sequence[Any]]) -> None:
            if rows:
                lost(sorted(str(r[0]) for r in rows))

        query = _REMOVALS_OF_ANY if self.later.deferring else _REMOVALS_IN
        self.later.check(query, {"mark": mark, "digests": wanted}, consume)

    def prune_removals(self, before: str) -> int:
        """Forget claims recorded before ``before`` (no registration watches that long)."""
        result = self.connection.execute(sa.delete(t.blob_removals).where(_REMOVED.at < before))
        return int(result.rowcount or 0)

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
