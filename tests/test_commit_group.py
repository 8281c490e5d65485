"""Group commit (mlprov.store._commit_group): concurrent registrations in one process
share write transactions, each in its own savepoint. Racing threads get distinct
numbers, every version has its audit entry and outbox event and the chain verifies;
a work that fails inside a group rolls back alone while the rest of its group commits.
On PostgreSQL each work has its own transaction; the same outcomes must hold."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from mlprov.errors import ConflictError
from mlprov.registry.uploads import UploadedFile
from mlprov.store import StoreTransaction
from support.registry_env import RegistryEnv, make_model

THREADS = 12


def _racing(count: int, run: Any) -> list[Any]:
    """``run(index)`` on ``count`` threads released together; each result or error."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = run(index)
        except Exception as e:  # the test inspects each outcome
            results[index] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _outbox_rows(registry: Any) -> int:
    with registry.metadata.read() as tx:
        return int(tx.counts()["outbox_events"])


def test_racing_uploaded_registrations_get_distinct_numbers_and_audited(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "m"), "bench")
        blobs = []
        for index in range(THREADS):
            data = f"weights {index}\n".encode()
            digest = hashlib.sha256(data).hexdigest()
            registry.store_blob([data], digest)
            blobs.append(UploadedFile("w.bin", digest, len(data)))
        audit_before = len(registry.audit_log())
        events_before = _outbox_rows(registry)

        results = _racing(THREADS, lambda i: registry.register_uploaded("bench", [blobs[i]]))

        assert all(not isinstance(r, BaseException) for r in results), results
        assert sorted(r.version for r in results) == list(range(2, THREADS + 2))
        by_number = {r.version: r for r in results}
        for index, blob in enumerate(blobs):
            files = registry.version_files(f"bench/{results[index].version}")
            assert [f.blob for f in files] == [blob.sha256]
        assert len(by_number) == THREADS
        entries = registry.audit_log()[audit_before:]
        assert sorted(e.subject for e in entries if e.action == "version.register") == sorted(
            f"bench/{n}" for n in by_number
        )
        assert _outbox_rows(registry) == events_before + THREADS
        registry.verify_audit()
    finally:
        registry.close()


def test_a_failing_work_rolls_back_alone_and_its_group_commits(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        metadata = registry.metadata
        with metadata.read() as tx:
            head_before = tx.audit_head()
        first_inside = threading.Event()

        def work(index: int) -> int:
            def inside(tx: StoreTransaction) -> int:
                if index == 0:
                    # Hold the first transaction open so that the others queue behind it
                    # and run as one group on SQLite.
                    first_inside.set()
                    time.sleep(0.3)
                entry = tx.audit.append(
                    at="2026-12-01T00:00:00Z",
                    actor="test",
                    action="test.work",
                    subject=f"work/{index}",
                    details={"index": index},
                    reason="",
                )
                if index == 3:
                    raise ConflictError("work 3 fails after writing its entry")
                return entry.seq

            if index != 0:
                first_inside.wait(timeout=30)
            return metadata.write_together(inside)

        results = _racing(6, work)

        assert isinstance(results[3], ConflictError)
        committed = [r for i, r in enumerate(results) if i != 3]
        assert all(isinstance(r, int) for r in committed), results
        # The entries of the works that committed, in one unbroken chain without work 3's.
        assert sorted(committed) == list(range(head_before[0] + 1, head_before[0] + 6))
        subjects = {e.subject for e in registry.audit_log() if e.action == "test.work"}
        assert subjects == {f"work/{i}" for i in (0, 1, 2, 4, 5)}
        registry.verify_audit()
    finally:
        registry.close()
