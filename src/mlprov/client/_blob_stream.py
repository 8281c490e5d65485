"""Receiving one blob into a new file: the calling thread reads the response into
buffers while a second thread hashes them and a third writes them (docs/adr/0049,
"pull").

Read, hash and write in one loop make the socket wait while each piece is hashed, and
the server stalls once the socket's buffers fill. ``hashlib``, ``recv_into`` and file
writes release the GIL on large buffers, so buffer *n* is written while *n + 1* is
hashed and *n + 2* is read: the hashing overlaps the transfer instead of following each
read. Every byte is still hashed, in order, and the file is fsynced before this returns
(unless the caller installs where durability does not matter: `mlprov pull --no-sync`).

The body is read with ``read_into`` (:mod:`mlprov.client._download`) straight into a few
multi-MiB buffers that go round between the threads: no per-piece objects, no copies.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mlprov.client._download import ReadInto
from mlprov.errors import StorageError

__all__ = ["receive_blob", "write_new"]

#: Bytes read from the response into one buffer before it is hashed and written.
_BATCH = 4 * 1024 * 1024
#: Buffers in use at once (bounds memory: _DEPTH x _BATCH).
_DEPTH = 4
#: Bytes written between two writeback hints (see _Writer.write).
_WRITEBACK = 64 * 1024 * 1024


class _Writer:
    """A new file (O_EXCL), written with writeback started every ``_WRITEBACK`` bytes,
    so the fsync at the end waits for the tail only, not for the whole file."""

    def __init__(self, target: Path, mode: int, *, sync: bool = True) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        self.name = target.name
        self.size = 0
        self._flushed = 0
        # Without a final fsync there is no tail to shorten: the kernel writes back alone.
        self._advise = getattr(os, "posix_fadvise", None) if sync else None
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


def write_new(target: Path, chunks: Iterable[bytes], mode: int, *, sync: bool = True) -> int:
    """Write ``chunks`` to a new file, fsynced unless ``sync`` is false; the number of
    bytes written."""
    writer = _Writer(target, mode, sync=sync)
    try:
        for chunk in chunks:
            writer.write(chunk)
        if sync:
            writer.sync()
    except OSError as e:
        raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e
    finally:
        writer.close()
    return writer.size


def receive_blob(
    read_into: ReadInto,
    target: Path,
    mode: int,
    hashers: Sequence[Any],
    progress: Callable[[int], None] | None = None,
    *,
    sync: bool = True,
) -> int:
    """Write the body ``read_into`` fills (read on this thread) to the new file
    ``target``, each byte fed to every one of ``hashers`` in order on a second thread and
    written on a third; fsynced unless ``sync`` is false; the byte count.

    Buffers go round: this thread fills one, the hashing thread hashes it and passes it
    on, the writing thread writes it and hands it back, so at most ``_DEPTH`` buffers
    exist and no byte is copied between the socket and the file but by the kernel. A
    failure on either side stops both: a write error ends the read at the next buffer
    and is raised here; a read error (the connection lost) is raised once both threads
    have stopped, so the file is closed before the caller removes its staging folder."""
    writer = _Writer(target, mode, sync=sync)
    failed: list[BaseException] = []
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(_DEPTH):
        free.put(bytearray(_BATCH))
    to_write: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    to_hash: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()

    def hash_buffers() -> None:
        while (item := to_hash.get()) is not None:
            if not failed:
                try:
                    with memoryview(item[0])[: item[1]] as view:
                        for hasher in hashers:
                            hasher.update(view)
                except BaseException as e:
                    failed.append(e)
            to_write.put(item)
        to_write.put(None)

    def write_buffers() -> None:
        while (item := to_write.get()) is not None:
            if not failed:
                try:
                    with memoryview(item[0])[: item[1]] as view:
                        writer.write(view)
                except BaseException as e:
                    failed.append(e)
            free.put(item[0])

    threads = [
        threading.Thread(target=step, name=f"mlprov-blob-{step.__name__}", daemon=True)
        for step in (hash_buffers, write_buffers)
    ]
    for thread in threads:
        thread.start()
    try:
        try:
            while not failed:
                buffer = free.get()
                with memoryview(buffer) as view:
                    filled = 0
                    while filled < len(view) and (got := read_into(view[filled:])):
                        filled += got
                        if progress is not None:
                            progress(got)
                if filled:
                    to_hash.put((buffer, filled))
                if filled < len(buffer):
                    break  # the end of the body
        finally:
            to_hash.put(None)
            for thread in threads:
                thread.join()
        if failed:
            error = failed[0]
            if isinstance(error, OSError):
                raise StorageError(f"{target.name}: cannot write: {error.strerror}") from error
            raise error
        try:
            if sync:
                writer.sync()
        except OSError as e:
            raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e
    finally:
        writer.close()
    return writer.size
