"""Writes a transaction sends later (mlprov.store._rows.LaterWrites): on PostgreSQL the
writer lock goes with the transaction's first statement, and the audit entry, the audit
head, the outbox row and a version with its files are queued and sent with the COMMIT
in one message. The transaction still reads what it wrote, a failing queued write rolls
everything back with the usual error, a rolled-back savepoint takes its audit entries
with it, and a registration on PostgreSQL is two round trips, as the server sees them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from mlprov.audit import GENESIS_HASH, entry_hash
from mlprov.errors import ConflictError
from mlprov.registry.uploads import UploadedFile
from mlprov.store import MetadataStore, open_metadata_store
from support.registry_env import RegistryEnv, make_model


@pytest.fixture
def store(backend: str) -> Any:
    opened = open_metadata_store(backend)
    yield opened
    opened.dispose()


def _append(store_tx: Any, subject: str) -> Any:
    return store_tx.audit.append(
        at="2026-12-01T00:00:00Z",
        actor="tester",
        action="model.create",
        subject=subject,
        details={},
        reason="",
    )


def test_a_transaction_reads_its_queued_writes(store: MetadataStore) -> None:
    with store.write() as tx:
        entry = _append(tx, "first")
        # A read after the queued writes: they are sent before it.
        assert tx.audit_head() == (entry.seq, entry.hash)
        assert [e.subject for e in tx.audit.entries()] == ["first"]
    with store.read() as tx:
        assert tx.audit_head() == (entry.seq, entry.hash)


def test_a_failing_queued_write_rolls_back_all_with_a_conflict(store: MetadataStore) -> None:
    with store.read() as tx:
        before = tx.counts()

    def clashing() -> None:
        with store.write() as tx:
            tx.models.insert(name="kept-out", description="", at="t", actor="tester")
            first = _append(tx, "one")
            tx.audit.known_head = (first.seq - 1, first.prev_hash)  # the same seq again
            _append(tx, "two")

    with pytest.raises(ConflictError):
        clashing()
    with store.read() as tx:
        assert tx.counts() == before
        assert tx.models.find("kept-out") is None


def test_a_failing_check_rolls_back_even_with_only_the_commit_left(
    store: MetadataStore,
) -> None:
    """A check (LaterWrites.check) is never sent with the COMMIT: when the only statement
    left is the COMMIT, it goes first, so what it decides rolls everything back."""
    now = "2026-12-01T00:00:00.000000Z"
    with store.write() as tx:
        leases = tx.blob_holds.lease(["a" * 64], "register:mine", "2099-01-01T00:00:00Z", now)
    assert leases == {"a" * 64: "register:mine"}
    with store.read() as tx:
        before = tx.counts()

    def lost(digests: list[str]) -> None:
        raise ConflictError(f"lost {digests}")

    def checked_last() -> None:
        with store.write() as tx:
            _append(tx, "never")
            tx.blob_holds.check_leased({"a" * 64: "register:mine", "b" * 64: "register:mine"}, lost)

    with pytest.raises(ConflictError, match=r"lost \['b{64}'\]"):
        checked_last()
    with store.read() as tx:
        assert tx.counts() == before
    with store.write() as tx:
        _append(tx, "kept")
        tx.blob_holds.check_leased({"a" * 64: "register:mine"}, lost)
    with store.read() as tx:
        assert [e.subject for e in tx.audit.entries()] == ["kept"]


def test_a_rolled_back_savepoint_takes_its_audit_entry_with_it(store: MetadataStore) -> None:
    with store.write() as tx:
        _append(tx, "kept")

        def failing_part() -> None:
            with tx.savepoint():
                _append(tx, "undone")
                raise RuntimeError("this part fails")

        with pytest.raises(RuntimeError):
            failing_part()
        _append(tx, "after")
    with store.read() as tx:
        subjects = [e.subject for e in tx.audit.entries()]
    assert subjects == ["kept", "after"]
    with store.read() as tx:
        previous = GENESIS_HASH
        for e in tx.audit.entries():
            assert e.prev_hash == previous
            values = e.model_dump()
            digest = values.pop("hash")
            assert entry_hash(**values) == digest
            previous = digest


def _protocol_trace(engine: Any, path: Path) -> Any:
    """Trace every message of the engine's connections to ``path`` (libpq's PQtrace): what
    the database server saw, not what mlprov meant to send."""
    from psycopg import pq

    out = path.open("w")

    def on_checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.pgconn.trace(out.fileno())
        dbapi_connection.pgconn.set_trace_flags(
            pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE
        )

    def on_checkin(dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None:
            dbapi_connection.pgconn.untrace()

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
    return out, on_checkout, on_checkin


def test_a_registration_is_two_round_trips_one_under_the_lock_on_postgresql(
    pg_schema_uri: str, tmp_path: Path
) -> None:
    # PostgreSQL only (its round trips are what is counted): the fixture gives a fresh
    # schema, and fails in CI rather than skipping when the server is unreachable.
    home = tmp_path / "home"
    home.mkdir()
    reg = RegistryEnv(home=home, metadata_uri=pg_schema_uri)
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "m"), "demo")
        data = b"second weights\n"
        digest = hashlib.sha256(data).hexdigest()
        registry.store_blob([data], digest)
        engine = registry._context.metadata.engine
        engine.dispose()  # every connection from here on is checked out (and traced) anew
        trace = tmp_path / "trace.txt"
        out, on_checkout, on_checkin = _protocol_trace(engine, trace)
        try:
            version = registry.register_uploaded(
                "demo", [UploadedFile("weights.bin", digest, len(data))]
            )
        finally:
            event.remove(engine, "checkout", on_checkout)
            event.remove(engine, "checkin", on_checkin)
            out.close()
        assert version.version == 2
        # One entry per message (a query's text may span lines).
        lines = re.split(r"\n(?=[FB]\t\d+\t)", trace.read_text().strip())
        # The write transaction opens with one message: BEGIN, the writer lock and the
        # number (with the version id) together.
        first = next(i for i, line in enumerate(lines) if "FOR UPDATE" in line)
        assert lines[first].split("\t", 3)[2] == "Query"
        assert lines[first].split("\t", 3)[3].startswith(' "BEGIN;')
        assert "UPDATE models" in lines[first]
        assert "nextval" in lines[first]
        # The check that gc claimed none of the blobs since the registration looked goes
        # in it too, under the lock; the look itself was one read before, outside any
        # transaction, and nothing before the transaction wrote.
        assert "FROM blob_removals" in lines[first]
        [look] = [i for i, line in enumerate(lines[:first]) if "FROM blob_removals" in line]
        look_ready = next(line for line in lines[look:] if "\tReadyForQuery" in line)
        assert look_ready.rsplit(None, 1)[-1] == "I"
        assert not [line for line in lines[:first] if "INSERT" in line or "UPDATE" in line]
        # Then one more: the version, its file, the audit entry and head, the outbox
        # row and the COMMIT. Round trips are counted by the server's ReadyForQuery.
        ready = [line for line in lines[first:] if line.split("\t")[2].startswith("ReadyForQuery")]
        assert [line.rsplit(None, 1)[-1] for line in ready] == ["T", "I"]
        second = [line for line in lines[first + 1 :] if line.startswith("F\t")]
        assert len(second) == 1
        assert second[0].split("\t")[2] == "Query"
        for table in ("versions", "version_files", "audit_log", "audit_head", "outbox_events"):
            assert f"INTO {table}" in second[0] or f"UPDATE {table}" in second[0]
        assert second[0].endswith('COMMIT"')
        assert registry.verify_audit() == len(registry.audit_log())
        assert [e.type for e in registry.outbox()][-1:] == ["version.registered"]
        assert [f.path for f in registry.version_files("demo/2")] == ["weights.bin"]
    finally:
        registry.close()
