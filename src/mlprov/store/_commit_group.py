"""Group commit: the write transactions of one process's concurrent writers, run as one.

Every write takes the one writer lock (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's audit
head row) and commits on its own, so writers that arrive together pay the lock hand-over
and the commit (PostgreSQL flushes its log on every commit) once each, one after another.
A :class:`CommitGroup` lets them share: the first writer to arrive leads, opening one
write transaction and running every writer's work queued by then, each in its own
savepoint, then committing once; writers arriving meanwhile wait for the next group,
which one of them leads. Each work sees what the works before it in the group wrote
(the next version number, the audit head), exactly as if they had committed one by one.

A work that raises rolls back to its savepoint alone and its caller gets the error; the
others still commit. A failure of the transaction itself (its start or commit) reaches
every caller of the group, and nothing of the group is committed. A group of one work
runs without a savepoint (nothing to keep apart).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from mlprov.store._transaction import StoreTransaction

__all__ = ["CommitGroup"]

T = TypeVar("T")

#: Most works one transaction runs (bounds how long the writer lock is held at once).
GROUP_MOST = 32


class _Queued(Generic[T]):
    __slots__ = ("error", "finished", "lead", "ready", "result", "work")

    def __init__(self, work: Callable[[StoreTransaction], T]) -> None:
        self.work = work
        self.ready = threading.Event()
        self.lead = False
        self.finished = False
        self.result: T | None = None
        self.error: BaseException | None = None


class CommitGroup:
    """The queue of one process's writers (module docstring)."""

    def __init__(
        self,
        write: Callable[[], AbstractContextManager[StoreTransaction]],
        savepoint: Callable[[StoreTransaction], AbstractContextManager[None]],
    ) -> None:
        self._write = write
        self._savepoint = savepoint
        self._lock = threading.Lock()
        self._queue: list[_Queued[Any]] = []
        self._leading = False

    def run(self, work: Callable[[StoreTransaction], T]) -> T:
        """``work(tx)`` inside a write transaction shared with concurrent callers; its
        result once that transaction committed, or what it (or the commit) raised."""
        me: _Queued[T] = _Queued(work)
        with self._lock:
            self._queue.append(me)
            if not self._leading:
                self._leading = me.lead = True
        while not me.lead and not me.finished:
            me.ready.wait()
            me.ready.clear()
        if not me.finished:
            self._lead()
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]  # set by the group that ran it

    def _lead(self) -> None:
        with self._lock:
            group = self._queue[:GROUP_MOST]
            del self._queue[:GROUP_MOST]
        try:
            with self._write() as tx:
                if len(group) == 1:
                    group[0].result = group[0].work(tx)
                else:
                    for item in group:
                        try:
                            with self._savepoint(tx):
                                item.result = item.work(tx)
                        except Exception as e:  # this work's own failure: it alone rolls back
                            item.error = e
        except BaseException as e:  # the transaction failed: nothing of the group committed
            for item in group:
                if item.error is None:
                    item.error, item.result = e, None
            if not isinstance(e, Exception):
                raise
        finally:
            with self._lock:
                for item in group:
                    item.finished = True
                    item.ready.set()
                if self._queue:
                    following = self._queue[0]
                    following.lead = True
                    following.ready.set()
                else:
                    self._leading = False
