"""A registering process killed with SIGKILL leaves no half version, on SQLite and PostgreSQL:
no version row, no file rows, no audit entry, no partial blob; ``audit verify`` passes and
the same registration succeeds when run again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from mlprov.hashing import hash_model
from support.registry_env import RegistryEnv, make_model

FILE_SIZE = 100 * 1024 * 1024
CHUNK = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Three files of 100 MiB of random bytes (incompressible, no sparse shortcuts), and the
    manifest digest they must be registered with."""
    folder = tmp_path_factory.mktemp("big")
    for index in range(3):
        with open(folder / f"shard-{index}.bin", "wb") as handle:
            for _ in range(FILE_SIZE // CHUNK):
                handle.write(os.urandom(CHUNK))
    yield folder, str(hash_model(folder).digest)
    shutil.rmtree(folder, ignore_errors=True)


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Poll an observable condition (files appearing, a lock wait) while the process runs."""
    deadline = time.monotonic() + 120
    while not condition():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the process ended (exit {process.returncode}) before {what}: {err}")
        if time.monotonic() > deadline:
            process.kill()
            process.communicate()  # closes its pipes: no ResourceWarning in a later test
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def _assert_no_partial_blob(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        for key in registry.artifacts.digests():
            for _ in registry.artifacts.read_chunks(key):  # raises on a digest mismatch
                pass
    finally:
        registry.close()


def test_sigkill_while_storing_a_large_version_leaves_no_half_version(
    reg: RegistryEnv, tmp_path: Path, big_model: tuple[Path, str]
) -> None:
    folder, digest = big_model
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "small"), "other")
    finally:
        registry.close()
    before = reg.snapshot()
    blobs = reg.home / "blobs" / "sha256"
    tmp = reg.home / "blobs" / "tmp"

    def mid_store() -> bool:
        # At least one big file fully stored and the next one being copied.
        stored = len(list(blobs.glob("*/*"))) > len(before["blobs"])
        return stored and tmp.is_dir() and any(tmp.iterdir())

    process = subprocess.Popen(
        [sys.executable, "-m", "mlprov", "register", str(folder), "--name", "big", "-q"],
        env=reg.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(mid_store, process, "a blob was stored and the next one started")
        process.send_signal(signal.SIGKILL)
    finally:
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL

    after = reg.snapshot()
    assert after["rows"] == before["rows"]  # no model, version or file rows
    assert after["audit_head"] == before["audit_head"]
    assert after["aliases"] == before["aliases"]
    _assert_no_partial_blob(reg)  # only whole blobs under their digest (orphans allowed)
    verified = reg.cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr

    again = reg.cli("register", str(folder), "--name", "big", "-q", timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split()[1:] == ["big/1", digest]
    final = reg.snapshot()
    assert final["rows"]["versions"] == before["rows"]["versions"] + 1
    assert final["rows"]["version_files"] == before["rows"]["version_files"] + 3
    _assert_no_partial_blob(reg)
    shutil.rmtree(reg.home / "blobs", ignore_errors=True)  # 300 MiB: do not keep it around


def _register_killed_while_blocked(
    reg: RegistryEnv, model: Path, table: str, statement: str
) -> int:
    """Hold a lock on ``table`` so the registering process waits on ``statement`` there,
    inside its transaction, and kill it there; the pid of its server session. (A
    message of several statements is one query in ``pg_stat_activity``.)"""
    with psycopg.connect(reg.metadata_uri) as blocker:
        blocker.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        process = subprocess.Popen(
            [sys.executable, "-m", "mlprov", "register", str(model), "--name", "m", "-q"],
            env=reg.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with psycopg.connect(reg.metadata_uri, autocommit=True) as observer:
                waiting: list[int] = []

                def waiting_on_table() -> bool:
                    rows = observer.execute(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE %s",
                        (f"%{statement} %",),
                    ).fetchall()
                    waiting[:] = [int(row[0]) for row in rows]
                    return bool(waiting)

                _wait_for(waiting_on_table, process, "the writer blocked inside its transaction")
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        blocker.rollback()
    assert process.returncode == -signal.SIGKILL
    return waiting[0]


def test_sigkill_inside_the_metadata_transaction_commits_nothing(
    tmp_path: Path, pg_schema_uri: str
) -> None:
    """PostgreSQL only: the test holds a lock on models so the registering process stops
    inside its transaction, after taking the writer lock, at the model's next number
    (sent in one message with the BEGIN and the lock: docs/adr/0049), and is killed
    there.
    (SQLite offers no external way to pause a writer inside its transaction.)"""
    reg = RegistryEnv(home=tmp_path / "home", metadata_uri=pg_schema_uri)

    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "v1", {"w.bin": b"one"}), "m")
    finally:
        registry.close()
    before = reg.snapshot()
    model = make_model(tmp_path / "v2", {"w.bin": b"two", "x.bin": b"extra"})

    _register_killed_while_blocked(reg, model, "models", "UPDATE models")

    after = reg.snapshot()
    assert after["rows"] == before["rows"]
    assert after["audit_head"] == before["audit_head"]
    again = reg.cli("register", str(model), "--name", "m", "-q")
    assert again.returncode == 0, again.stderr
    # The version counter moved only inside the killed transaction: 2 is not skipped.
    assert again.stdout.split()[1] == "m/2"
    assert reg.cli("audit", "verify").returncode == 0


def test_sigkill_after_the_commit_was_sent_leaves_all_or_nothing(
    tmp_path: Path, pg_schema_uri: str
) -> None:
    """PostgreSQL only: the version, file, audit entry, head and outbox rows go to the
    server in one message with the COMMIT (docs/adr/0049). A writer killed while that
    message waits (here on a lock on versions, its first statement) leaves either the
    whole registration (the server reached the COMMIT) or none of it (the server found
    the connection gone first and rolled the transaction back): never a part, and the
    chain verifies either way."""
    reg = RegistryEnv(home=tmp_path / "home", metadata_uri=pg_schema_uri)

    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "v1", {"w.bin": b"one"}), "m")
    finally:
        registry.close()
    before = reg.snapshot()
    model = make_model(tmp_path / "v2", {"w.bin": b"two", "x.bin": b"extra"})

    session = _register_killed_while_blocked(reg, model, "versions", "INSERT INTO versions")

    # The server finishes (or abandons) the message on its own once the lock is gone;
    # the killed writer's session then ends: wait for that.
    deadline = time.monotonic() + 60
    with psycopg.connect(pg_schema_uri, autocommit=True) as observer:
        while observer.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (session,)
        ).fetchone():
            assert time.monotonic() < deadline, "the killed writer's session never ended"
            time.sleep(0.05)
    after = reg.snapshot()
    committed = after["rows"]["versions"] != before["rows"]["versions"]
    if committed:
        grew = {name: after["rows"][name] - n for name, n in before["rows"].items()}
        assert grew["versions"] == 1
        assert grew["version_files"] == 2
        assert grew["audit_log"] == 1
        assert grew["outbox_events"] == 1
    else:  # rolled back: not one row of it
        assert after["rows"] == before["rows"]
        assert after["audit_head"] == before["audit_head"]
    assert reg.cli("audit", "verify").returncode == 0
    again = reg.cli("register", str(model), "--name", "m", "-q")
    assert again.returncode == 0, again.stderr
    # The next number: 3 after a committed kill, 2 after a rolled-back one.
    assert again.stdout.split()[1] == ("m/3" if committed else "m/2")
