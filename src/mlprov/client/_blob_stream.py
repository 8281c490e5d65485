"""Receiving one blob into a new file: the calling thread reads the response while one
worker thread hashes and writes what was read (docs/adr/0049, "pull").

Read, hash and write in one loop make the socket wait while each piece is hashed, and
the server stalls once the socket's buffers fill. ``hashlib`` and file writes release
the GIL on large buffers, so a second thread hashes and writes batch *n* while this one
reads batch *n + 1*: the hashing overlaps the transfer instead of following each read.
Every byte is still hashed, in order, and the file is fsynced before this returns.

The pieces are taken as the HTTP stack hands them over (no re-chunking, which copies
every byte once more) and handed to the worker in batches, so the queue is touched a few
hundred times per GiB; at most ``_DEPTH`` batches wait, which bounds the memory held.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mlprov.errors import StorageError

__all__ = ["receive_blob", "write_new"]

#: Bytes gathered from the response before they are handed to the worker thread.
_BATCH = 4 * 1024 * 1024
#: Batches that may wait for the worker (bounds memory: _DEPTH x _BATCH).
_DEPTH = 4
#: Bytes written between two writeback hints (see _Writer.write).
_WRITEBACK = 64 * 1024 * 1024


class _Writer:
    """A new file (O_EXCL), written with writeback started every ``_WRITEBACK`` bytes,
    so the fsync at the end waits for the tail only, not for the whole file."""

    def __init__(self, target: Path, mode: int) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        self.name = target.name
        self.size = 0
        self._flushed = 0
        self._advise = getattr(os, "posix_fadvise", None)
        try:
            self._fd = os.open(target, flags, mode)
        except OSError as e:
            raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)
        if self._advise is not None and self.size - self._flushed >= _WRITEBACK:
            # Linux starts writeback of the range on POSIX_FADV_DONTNEED (dirty pages are
            # written, not dropped), so the bytes so far go to disk during the download.
            self._advise(self._fd, self._flushed, self.size - self._flushed, os.POSIX_FADV_DONTNEED)
            self._flushed = self.size

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def write_new(target: Path, chunks: Iterable[bytes], mode: int) -> int:
    """Write ``chunks`` to a new file, fsynced; the number of bytes written."""
    writer = _Writer(target, mode)
    try:
        for chunk in chunks:
            writer.write(chunk)
        writer.sync()
    except OSError as e:
        raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e
    finally:
        writer.close()
    return writer.size


def receive_blob(
    pieces: Iterable[bytes],
    target: Path,
    mode: int,
    hashers: Sequence[Any],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``pieces`` (read on this thread) to the new file ``target``, each byte fed
    to every one of ``hashers`` in order on the worker thread; fsynced; the byte count.

    A failure on either side stops both: a write error ends the read at the next batch
    and is raised here; a read error (the connection lost) is raised once the worker has
    stopped, so the file is closed before the caller removes its staging folder."""
    writer = _Writer(target, mode)
    failed: list[BaseException] = []

    def hash_piece(piece: bytes) -> None:
        for hasher in hashers:
            hasher.update(piece)

    # Two workers, each fed every batch in order: hashing is CPU, writing waits on the
    # disk (the kernel throttles a writer of many dirty pages), so each overlaps the other.
    workers = [_Worker(hash_piece, failed), _Worker(writer.write, failed)]
    try:
        try:
            batch: list[bytes] = []
            gathered = 0
            for piece in pieces:
                if not piece:
                    continue
                batch.append(piece)
                gathered += len(piece)
                if progress is not None:
                    progress(len(piece))
                if gathered >= _BATCH:
                    for worker in workers:
                        worker.batches.put(batch)
                    batch, gathered = [], 0
                    if failed:
                        break
            if batch and not failed:
                for worker in workers:
                    worker.batches.put(batch)
        finally:
            for worker in workers:
                worker.stop()
        if failed:
            error = failed[0]
            if isinstance(error, OSError):
                raise StorageError(f"{target.name}: cannot write: {error.strerror}") from error
            raise error
        try:
            writer.sync()
        except OSError as e:
            raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e
    finally:
        writer.close()
    return writer.size


class _Worker:
    """A thread applying ``step`` to each piece of each batch it is given, in order."""

    def __init__(self, step: Callable[[bytes], None], failed: list[BaseException]) -> None:
        self.batches: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=_DEPTH)
        self._step = step
        self._failed = failed
        self._thread = threading.Thread(target=self._run, name="mlprov-blob", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self.batches.get()) is not None:
            if self._failed:
                continue  # drain, so the reading thread never blocks on a full queue
            try:
                for piece in batch:
                    self._step(piece)
            except BaseException as e:
                self._failed.append(e)

    def stop(self) -> None:
        """Let the thread finish the batches given, then end it."""
        self.batches.put(None)
        self._thread.join()
