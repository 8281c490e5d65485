"""Writes a transaction sends later (mlprov.store._rows.LaterWrites): on PostgreSQL the
audit entry, the audit head, the outbox row and a version's files are queued and sent
with the COMMIT in one pipeline. The transaction still reads what it wrote, a failing
queued write rolls everything back with the usual error, a rolled-back savepoint takes
its audit entries with it, and a registration makes only three statements of its own
under the writer lock on PostgreSQL."""

from __future__ import annotations

import hashlib
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


def test_a_registration_makes_three_statements_under_the_lock_on_postgresql(
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
        seen: list[str] = []

        def count(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
            seen.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            version = registry.register_uploaded(
                "demo", [UploadedFile("weights.bin", digest, len(data))]
            )
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert version.version == 2
        # Lock (and head read), number found and claimed, version row; the audit
        # entry, head, outbox row and file rows go with the COMMIT, outside this count.
        lock = next(i for i, s in enumerate(seen) if "FOR UPDATE" in s and "audit_head" in s)
        kinds = [s.split(None, 1)[0].upper() for s in seen[lock:]]
        # No read-back afterwards: the record the write stored is the one returned.
        assert kinds == ["SELECT", "UPDATE", "INSERT"]
        assert "models" in seen[lock + 1]
        assert "versions" in seen[lock + 2]
        assert registry.verify_audit() == len(registry.audit_log())
        assert [e.type for e in registry.outbox()][-1:] == ["version.registered"]
    finally:
        registry.close()
