"""``mlprov gc``: remove blobs no version references, without racing a registration.

Blobs are shared (the same bytes are stored once for every version and model that has
them) and a failed registration never deletes what it stored, because a concurrent one
may have found those bytes already stored and be about to commit a version naming them
(docs/registry.md, "Registration, step by step"). Such blobs are removed here, by a
protocol of *holds* on blobs (ADR 0045, table ``blob_holds``):

1. a registration *leases* every blob it stores or finds stored, in a short transaction
   of its own, after hashing the file and BEFORE the store looks whether the blob exists
   (:func:`lease_blob`, the ``hold`` hook of :meth:`ArtifactStore.put_file`); a blob
   under a live gc *claim* is waited for (gc removes it, then the registration stores the
   bytes again). Its version commit checks that every lease it took is still the blob's
   row, so no claim came in between (:func:`check_leases`): the commit is what makes the
   reference. A registration over HTTP, which reads back blobs it did not store, *watches*
   instead: every claim is recorded, numbered in commit order (``blob_removals``); it
   reads the highest number before reading the blobs (:func:`watch_blobs`), and its
   commit checks that no claim on them came after (:func:`check_unremoved`). A blob
   upload leases what it stores, as above;
2. gc lists the blobs (outside any transaction), keeps those younger than the grace
   period, and for each other one, in one transaction, checks that no version references
   it and that no live lease holds it, and inserts a *claim* (one row per digest: a lease
   and a claim exclude each other on SQLite and PostgreSQL alike). Only then, outside the
   transaction, it deletes the blob, and finally removes its claims. Expired leases and
   claims (of a registration or a gc that died), and claim records older than
   :data:`REMOVAL_RECORDS_KEPT`, are removed at the end of a run.

Blobs the registry reads (evidence, policies) are kept in the metadata store, not the
artefact store, so version files are the only references.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from mlprov.artifacts import BlobInfo
from mlprov.errors import BlobRemovedError, ConflictError, InvalidInputError, MlprovError
from mlprov.registry._context import RegistryContext
from mlprov.registry._unit import Mutation, mutation
from mlprov.registry.types import BlobWatch

__all__ = [
    "CLAIM_TTL",
    "DEFAULT_GRACE",
    "LEASE_TTL",
    "GcReport",
    "check_leases",
    "check_unremoved",
    "collect_garbage",
    "lease_blob",
    "new_holder",
    "parse_grace",
    "watch_blobs",
]

#: How long gc leaves a blob alone after it was written (``--grace``).
DEFAULT_GRACE = timedelta(hours=24)
#: How long a registration's lease protects a blob. A registration that runs longer can
#: still commit unless gc claimed the blob meanwhile (then it fails, exit 3, and says so).
LEASE_TTL = timedelta(hours=24)
#: A gc claim lasts while gc deletes one batch (seconds); an older one is a dead gc's.
CLAIM_TTL = timedelta(hours=1)
#: gc deletes a claimed blob only if its claim still has this long to live.
_CLAIM_MARGIN = timedelta(minutes=10)
#: Staging copies (uploads in progress) are removed only when at least this old, whatever
#: the grace: an upload writes its staging copy until just before it is renamed or copied.
MIN_STAGING_AGE = timedelta(hours=1)
#: How long a record of a claim (``blob_removals``) is kept: a registration from stored
#: blobs compares its watch with the records at commit (:func:`check_unremoved`).
REMOVAL_RECORDS_KEPT = timedelta(hours=24)
#: How long a registration waits for gc to finish with a blob it claimed.
LEASE_WAIT_SECONDS = 120.0
_BATCH = 100


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_holder(kind: str) -> str:
    """A hold's holder: who took it, unique per registration or gc run."""
    return f"{kind}:{uuid.uuid4().hex}"


def parse_grace(text: str) -> timedelta:
    """``--grace``: ``24h``, ``7d``, ``1h30m``, ``90s``, or ``0`` (every unreferenced blob)."""
    from mlprov.durations import parse_duration  # noqa: PLC0415

    if re.fullmatch(r"0+[dhms]?", text.strip()):
        return timedelta(0)
    try:
        return parse_duration(text)
    except InvalidInputError as e:
        raise InvalidInputError(f"--grace: {e.message}") from e


# -- the registration side -------------------------------------------------------------


def lease_blob(context: RegistryContext, digest: str, holder: str) -> str:
    """Lease one blob for a registration, committed before this returns (one statement
    of its own: :meth:`mlprov.store.MetadataStore.lease_blobs`); the lease's token for
    :func:`check_leases`. Waits while gc holds a claim on it."""
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    delay = 0.01
    while True:
        now = _now()
        leases = context.metadata.lease_blobs([digest], holder, _iso(now + LEASE_TTL), _iso(now))
        if digest in leases:
            return leases[digest]
        if time.monotonic() > deadline:
            raise ConflictError(
                f"blob {digest} is being removed by mlprov gc and was not released within "
                f"{LEASE_WAIT_SECONDS:.0f} s; retry"
            )
        time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter
        delay = min(delay * 2, 0.5)


def watch_blobs(context: RegistryContext, digests: Iterable[str]) -> BlobWatch:
    """Before a registration reads blobs it did not store itself (one read, no write):
    the claim number it will compare with at commit (:func:`check_unremoved`). Waits
    while gc holds a live claim on any of them, so a blob gc is removing is looked at
    only once it is gone (then found missing, or stored again)."""
    wanted = tuple(sorted(set(digests)))
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    delay = 0.01
    while True:
        started = time.monotonic()
        with context.metadata.read_statements() as tx:
            mark, claimed = tx.blob_holds.watch(wanted, _iso(_now()))
        if not claimed:
            return BlobWatch(wanted, mark, started)
        if time.monotonic() > deadline:
            raise ConflictError(
                f"a blob of this version is being removed by mlprov gc and was not "
                f"released within {LEASE_WAIT_SECONDS:.0f} s; retry"
            )
        time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter
        delay = min(delay * 2, 0.5)


def check_unremoved(unit: Mutation, name: str, watch: BlobWatch) -> None:
    """Inside a version's commit: no claim on a watched blob came after the watch began,
    so gc (or an import undoing its blobs) has removed none of them since they were read.
    Otherwise nothing is committed (exit 3). Claim records are kept for
    :data:`REMOVAL_RECORDS_KEPT`, so a registration older than half of that is refused
    too, whatever it saw."""
    if time.monotonic() - watch.started > REMOVAL_RECORDS_KEPT.total_seconds() / 2:
        raise ConflictError(
            f"{name}: the registration took longer than {REMOVAL_RECORDS_KEPT / 2} since it "
            "read its blobs; nothing was registered: register again"
        )

    def lost(digests: list[str]) -> None:
        raise BlobRemovedError(
            f"{name}: blob {digests[0]} was claimed by mlprov gc after this registration "
            "read it; nothing was registered: upload it again and register again",
            digests,
        )

    unit.tx.blob_holds.check_unremoved(watch.digests, watch.mark, lost)


def check_leases(unit: Mutation, name: str, leases: Mapping[str, str]) -> None:
    """Inside a version's commit: every lease taken while storing is still the blob's
    row, so gc cannot have removed the blob. Otherwise nothing is committed (exit 3).
    One query for all of them, sent with the transaction's next statement."""

    def lost(digests: list[str]) -> None:
        raise ConflictError(
            f"{name}: blob {digests[0]} was claimed by mlprov gc while this registration "
            f"ran (its lease expired after {LEASE_TTL}); nothing was registered: "
            "register again"
        )

    unit.tx.blob_holds.check_leased(leases, lost)


# -- the collector ---------------------------------------------------------------------


@dataclass(frozen=True)
class GcReport:
    """What one gc run found and did (or, with ``dry_run``, would do)."""

    dry_run: bool
    grace: timedelta
    store: str
    #: Blobs stored when the run started.
    blobs: int
    #: Kept: written within the grace period.
    young: int
    #: Kept: some version references them.
    referenced: int
    #: Kept: a registration holds a lease on them (or another gc a claim).
    held: int
    #: Removed (or, in a dry run, that would be), each with its size.
    removed: tuple[BlobInfo, ...]
    #: Staging copies of unfinished uploads removed (none in a dry run).
    staging_removed: int = 0

    @property
    def bytes_freed(self) -> int:
        return sum(blob.size for blob in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "grace_seconds": int(self.grace.total_seconds()),
            "store": self.store,
            "blobs": self.blobs,
            "young": self.young,
            "referenced": self.referenced,
            "held": self.held,
            "removed": [{"sha256": b.sha256, "size": b.size} for b in self.removed],
            "bytes_freed": self.bytes_freed,
            "staging_removed": self.staging_removed,
        }


def collect_garbage(
    context: RegistryContext,
    grace: timedelta = DEFAULT_GRACE,
    *,
    dry_run: bool = False,
    staging_grace: timedelta | None = None,
) -> GcReport:
    """Remove every blob older than ``grace`` that no version references and nothing
    holds, and staging copies of unfinished uploads older than ``staging_grace`` (default:
    ``grace``, at least :data:`MIN_STAGING_AGE`); audited as ``gc.run``. ``dry_run``
    reports what would go and changes nothing."""
    if grace < timedelta(0) or (staging_grace is not None and staging_grace < timedelta(0)):
        raise InvalidInputError("--grace must not be negative")
    started = _now()
    cutoff = started - grace
    listing = context.artifacts.blobs()  # IO first, outside any transaction
    old = [blob for blob in listing if blob.modified < cutoff]
    young = len(listing) - len(old)
    if dry_run:
        with context.metadata.read() as tx:
            in_use = tx.versions.blobs_in_use(b.sha256 for b in old)
            held_now = tx.blob_holds.live_digests(_iso(started))
        unreferenced = [b for b in old if b.sha256 not in in_use]
        removable = tuple(b for b in unreferenced if b.sha256 not in held_now)
        return GcReport(
            dry_run=True,
            grace=grace,
            store=context.artifacts.uri,
            blobs=len(listing),
            young=young,
            referenced=len(old) - len(unreferenced),
            held=len(unreferenced) - len(removable),
            removed=removable,
        )
    holder = new_holder("gc")
    # Most old blobs are referenced: leave those out with one read first, so the write
    # transactions below (which check again) only see candidates.
    with context.metadata.read() as tx:
        in_use = tx.versions.blobs_in_use(b.sha256 for b in old)
    candidates = [blob for blob in old if blob.sha256 not in in_use]
    referenced, held = len(old) - len(candidates), 0
    removed: list[BlobInfo] = []
    staging = 0
    try:
        for start in range(0, len(candidates), _BATCH):
            batch = candidates[start : start + _BATCH]
            claimed, in_use_count = _claim(context, batch, holder)
            referenced += in_use_count
            held += len(batch) - in_use_count - len(claimed)
            try:
                _remove_claimed(context, claimed, holder, removed)
            finally:
                with mutation(context) as unit:
                    unit.tx.blob_holds.release_claims((b.sha256 for b in claimed), holder)
        if staging_grace is None:
            staging_grace = max(grace, MIN_STAGING_AGE)
        staging = context.artifacts.remove_staging(started - staging_grace)
    except MlprovError as e:
        # What was removed before the failure is audited too, with the failure.
        _audit_run(
            context,
            _report(context, grace, listing, young, referenced, held, removed, staging),
            str(e),
        )
        raise
    report = _report(context, grace, listing, young, referenced, held, removed, staging)
    _audit_run(context, report, None)
    return report


def _report(
    context: RegistryContext,
    grace: timedelta,
    listing: Sequence[BlobInfo],
    young: int,
    referenced: int,
    held: int,
    removed: Sequence[BlobInfo],
    staging: int,
) -> GcReport:
    return GcReport(
        dry_run=False,
        grace=grace,
        store=context.artifacts.uri,
        blobs=len(listing),
        young=young,
        referenced=referenced,
        held=held,
        removed=tuple(removed),
        staging_removed=staging,
    )


def _audit_run(context: RegistryContext, report: GcReport, failure: str | None) -> None:
    """The run's ``gc.run`` entry; expired holds are removed in the same transaction."""
    with mutation(context) as unit:
        now = _now()
        stale = unit.tx.blob_holds.remove_stale(_iso(now))
        unit.tx.blob_holds.prune_removals(_iso(now - REMOVAL_RECORDS_KEPT))
        details = report.to_json()
        details["removed"] = len(report.removed)
        details["stale_holds_removed"] = stale
        if failure is not None:
            details["failed"] = failure
        unit.audit("gc.run", "artifacts", details)


def _claim(
    context: RegistryContext, batch: Sequence[BlobInfo], holder: str
) -> tuple[list[BlobInfo], int]:
    """One transaction: claim each blob of the batch that no version references and no
    live hold protects. Returns the claimed blobs and how many were referenced."""
    now = _now()
    with mutation(context) as unit:
        in_use = unit.tx.versions.blobs_in_use(b.sha256 for b in batch)
        claimed = [
            blob
            for blob in batch
            if blob.sha256 not in in_use
            and unit.tx.blob_holds.claim(blob.sha256, holder, _iso(now + CLAIM_TTL), _iso(now))
        ]
    return claimed, len(in_use)


def _remove_claimed(
    context: RegistryContext, claimed: Iterable[BlobInfo], holder: str, removed: list[BlobInfo]
) -> None:
    """Delete the blobs still claimed by this run, outside any transaction, adding each
    to ``removed`` as it goes (a failure half way is audited with what went before)."""
    claimed = list(claimed)
    if not claimed:
        return
    # A claim that went stale (this process stalled for CLAIM_TTL) may have been replaced
    # by a registration's lease: look again, with a margin, just before deleting.
    safe_until = _iso(_now() + _CLAIM_MARGIN)
    with context.metadata.read() as tx:
        ours = []
        for blob in claimed:
            hold = tx.blob_holds.find(blob.sha256)
            if (
                hold is not None
                and hold.state == "claim"
                and hold.holder == holder
                and hold.expires_at > safe_until
            ):
                ours.append(blob)
    for blob in ours:
        context.artifacts.delete(blob.sha256)
        removed.append(blob)
