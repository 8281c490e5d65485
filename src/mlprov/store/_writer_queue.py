"""The queue SQLite writers of several processes wait in: a lock file next to the database.

SQLite lets one writer in at a time (``BEGIN IMMEDIATE``); a writer that finds the lock
taken is put to sleep by SQLite's busy handler for 1, 2, 5, 10, 15, 20, 25 ... ms between
attempts, however soon the lock is released. Within one process the commit group queues
writers on a thread lock (:mod:`mlprov.store._commit_group`), but the workers of
``mlprov serve --workers N`` are processes: under a registration load two workers spent
most of their waits asleep while the lock sat free, and about 40 % of the machine's CPU
idled (ADR 0049, amendment "the SQLite writer queue").

So every write transaction on a SQLite file first takes an exclusive ``flock`` on
``PATH.writers.lock``: a waiter polls it every 0.2 ms (sleeping in between, the GIL
released), so it starts within about 0.2 ms of the lock's release; after half a second
of waiting the polls slow down to one every 5 ms. The
wait is bounded as SQLite's busy timeout bounds it (60 s, then StorageError, exit 5). A
database whose folder cannot hold the lock file (a read-only mount: nothing can be
written there anyway) gets no queue, and SQLite's own lock decides, as before.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from mlprov.errors import StorageError

__all__ = ["WriterQueue"]

#: How long a writer waits for the lock before it gives up (SQLite's busy timeout).
WAIT_SECONDS = 60.0
#: Between two attempts a waiter sleeps this long, growing to _LONGEST after _FAST_SECONDS.
_SHORTEST = 0.0002
_LONGEST = 0.005
_FAST_SECONDS = 0.5

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no queue, SQLite's lock decides
    fcntl = None  # type: ignore[assignment]


class WriterQueue:
    """Serialises the write transactions on one SQLite file across processes (module
    docstring). Re-entrant on one thread (its outer hold keeps the lock)."""

    def __init__(self, database: Path | None) -> None:
        self._path = database.with_name(database.name + ".writers.lock") if database else None
        self._fd: int | None = None
        self._opened = False
        self._threads = threading.RLock()
        self._depth = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._path is None or fcntl is None:
            yield
            return
        if not self._threads.acquire(timeout=WAIT_SECONDS):
            raise StorageError(f"the metadata store is busy: no write lock in {WAIT_SECONDS:g} s")
        try:
            if self._depth == 0:
                fd = self._file()
                if fd is not None:
                    self._lock(fd)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _file(self) -> int | None:
        if not self._opened:
            self._opened = True
            assert self._path is not None
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                self._fd = None  # a read-only folder: SQLite's own lock decides
        return self._fd

    @staticmethod
    def _lock(fd: int) -> None:
        start = time.monotonic()
        delay = _SHORTEST
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise StorageError(f"cannot lock the metadata store for writing: {e}") from e
            else:
                return
            waited = time.monotonic() - start
            if waited > WAIT_SECONDS:
                raise StorageError(
                    f"the metadata store is busy: no write lock in {WAIT_SECONDS:g} s"
                )
            if waited > _FAST_SECONDS:
                delay = min(delay * 2, _LONGEST)
            time.sleep(delay)

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._opened = False
