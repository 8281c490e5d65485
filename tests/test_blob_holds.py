"""Blob holds (mlprov.store.blob_holds), each rule as one atomic statement on SQLite and
PostgreSQL alike: a lease is joined and only ever extended, a live claim keeps leases
out, a stale claim is replaced, and a claim is taken only on a blob no live hold has.
Every claim is recorded, numbered, for a registration's watch and its commit check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlprov.errors import ConflictError
from mlprov.store import MetadataStore, open_metadata_store

A, B, C = "a" * 64, "b" * 64, "c" * 64
NOW = "2026-12-01T12:00:00.000000Z"
PAST = "2026-12-01T11:00:00.000000Z"
SOON = "2026-12-01T13:00:00.000000Z"
LATER = "2026-12-02T12:00:00.000000Z"


@pytest.fixture
def store(backend: str) -> Iterator[MetadataStore]:
    opened = open_metadata_store(backend)
    yield opened
    opened.dispose()


def _rows(store: MetadataStore) -> dict[str, tuple[str, str, str]]:
    with store.read() as tx:
        found = {d: tx.blob_holds.find(d) for d in (A, B, C)}
    return {d: (h.state, h.holder, h.expires_at) for d, h in found.items() if h is not None}


def test_a_lease_is_joined_and_only_ever_extended(store: MetadataStore) -> None:
    assert store.lease_blobs([A, B, A], "register:one", LATER, NOW) == {
        A: "register:one",
        B: "register:one",
    }
    # A second registration joins: the first one's token, and the later expiry stays.
    assert store.lease_blobs([A], "register:two", SOON, NOW) == {A: "register:one"}
    assert _rows(store)[A] == ("lease", "register:one", LATER)
    assert store.lease_blobs([B], "register:two", "2026-12-03T00:00:00.000000Z", NOW) == {
        B: "register:one"
    }
    assert _rows(store)[B] == ("lease", "register:one", "2026-12-03T00:00:00.000000Z")


def test_a_live_claim_keeps_a_lease_out_and_a_stale_one_is_replaced(
    store: MetadataStore,
) -> None:
    with store.write() as tx:
        assert tx.blob_holds.claim(A, "gc:live", SOON, NOW)
        assert tx.blob_holds.claim(B, "gc:dead", PAST, PAST)
    assert store.lease_blobs([A, B, C], "register:one", LATER, NOW) == {
        B: "register:one",
        C: "register:one",
    }
    assert _rows(store) == {
        A: ("claim", "gc:live", SOON),
        B: ("lease", "register:one", LATER),
        C: ("lease", "register:one", LATER),
    }


def test_a_claim_waits_for_every_live_hold(store: MetadataStore) -> None:
    store.lease_blobs([A], "register:one", SOON, NOW)
    store.lease_blobs([B], "register:one", PAST, PAST)  # expired by NOW
    with store.write() as tx:
        assert not tx.blob_holds.claim(A, "gc:one", SOON, NOW)  # a live lease
        assert tx.blob_holds.claim(B, "gc:one", SOON, NOW)  # a stale lease
        assert tx.blob_holds.claim(C, "gc:one", SOON, NOW)  # no hold at all
        assert not tx.blob_holds.claim(C, "gc:two", SOON, NOW)  # a live claim
    assert _rows(store) == {
        A: ("lease", "register:one", SOON),
        B: ("claim", "gc:one", SOON),
        C: ("claim", "gc:one", SOON),
    }


def test_a_watch_sees_live_claims_and_a_commit_check_sees_claims_since(
    store: MetadataStore,
) -> None:
    with store.read_statements() as tx:
        assert tx.blob_holds.watch([A, B], NOW) == (0, 0)
    with store.write() as tx:
        assert tx.blob_holds.claim(A, "gc:one", SOON, NOW)
    with store.read_statements() as tx:
        mark, claimed = tx.blob_holds.watch([A, B], NOW)
    assert claimed == 1  # A is being removed: a registration waits
    with store.write() as tx:
        tx.blob_holds.release_claims([A], "gc:one")
        assert tx.blob_holds.claim(B, "gc:one", SOON, NOW)

    def lost(digests: list[str]) -> None:
        raise ConflictError(f"lost {digests}")

    def commit_checking(digests: list[str], since: int) -> None:
        with store.write() as tx:
            tx.blob_holds.check_unremoved(digests, since, lost)

    # B was claimed after the mark, A before it.
    commit_checking([A], mark)
    with pytest.raises(ConflictError, match=r"lost \['b{64}'\]"):
        commit_checking([A, B, C], mark)
    with store.write() as tx:
        assert tx.blob_holds.prune_removals("2026-12-01T12:00:00.000001Z") == 2
    with store.read_statements() as tx:
        assert tx.blob_holds.watch([A], NOW)[0] == 0
    # Numbers are never given twice, even once every record was pruned.
    with store.write() as tx:
        assert tx.blob_holds.claim(C, "gc:two", LATER, SOON)
    with store.read_statements() as tx:
        assert tx.blob_holds.watch([C], SOON) == (mark + 2, 1)


def test_an_import_undoing_its_blob_is_on_record_as_a_claim(store: MetadataStore) -> None:
    store.lease_blobs([A], "import:one", LATER, NOW)
    with store.read_statements() as tx:
        mark, _ = tx.blob_holds.watch([A], NOW)
    with store.write() as tx:
        assert not tx.blob_holds.claim_own_lease(A, "import:other", SOON, NOW)
        assert tx.blob_holds.claim_own_lease(A, "import:one", SOON, NOW)
    with store.read_statements() as tx:
        assert tx.blob_holds.watch([A], NOW) == (mark + 1, 1)
