"""SQLite writers of several processes queue on ``PATH.writers.lock``
(:mod:`mlprov.store._writer_queue`): a write waits while another process holds the lock
and goes on once it is released; a write that waits longer than the bound fails with one
StorageError (exit 5) and changes nothing; a lock file that cannot be made leaves SQLite's
own lock to decide. The other holder is a second open file description of the lock file,
which ``flock`` treats exactly as another process."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlprov.errors import EXIT_STORAGE, StorageError
from mlprov.store import _writer_queue
from support.registry_env import RegistryEnv, make_model


@pytest.fixture
def sqlite_reg(tmp_path: Path) -> RegistryEnv:
    home = tmp_path / "home"
    home.mkdir()
    env = RegistryEnv(home=home, metadata_uri=f"sqlite:///{home / 'registry.db'}")
    env.registry().close()
    return env


def _lock_file(reg: RegistryEnv) -> Path:
    return reg.home / "registry.db.writers.lock"


@contextmanager
def _held(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_a_write_waits_for_the_lock_and_then_commits(
    sqlite_reg: RegistryEnv, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "m")
    registry = sqlite_reg.registry()
    try:
        registry.create_model("warm")  # the lock file exists once a write has run
        assert _lock_file(sqlite_reg).is_file()
        done = threading.Event()
        versions: list[int] = []

        def register() -> None:
            versions.append(registry.register(model, "queued").version)
            done.set()

        with _held(_lock_file(sqlite_reg)):
            worker = threading.Thread(target=register)
            worker.start()
            assert not done.wait(0.5)  # queued behind the other holder
            assert versions == []
        worker.join(timeout=30)
        assert versions == [1]
    finally:
        registry.close()


def test_a_write_that_waits_too_long_fails_and_changes_nothing(
    sqlite_reg: RegistryEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_writer_queue, "WAIT_SECONDS", 0.3)
    model = make_model(tmp_path / "m")
    registry = sqlite_reg.registry()
    try:
        registry.create_model("warm")
        before = sqlite_reg.snapshot()
        with _held(_lock_file(sqlite_reg)):
            start = time.monotonic()
            with pytest.raises(StorageError) as raised:
                registry.create_model("late")
            assert time.monotonic() - start < 10
        assert raised.value.exit_code == EXIT_STORAGE
        assert raised.value.message == "the metadata store is busy: no write lock in 0.3 s"
        assert sqlite_reg.snapshot() == before
        assert registry.register(model, "after").version == 1  # released: writes go on
    finally:
        registry.close()


def test_without_a_lock_file_sqlite_decides(sqlite_reg: RegistryEnv, tmp_path: Path) -> None:
    # Something that is not a file is in the lock file's place: it cannot be opened.
    _lock_file(sqlite_reg).mkdir()
    registry = sqlite_reg.registry()
    try:
        assert registry.register(make_model(tmp_path / "m"), "free").version == 1
    finally:
        registry.close()
