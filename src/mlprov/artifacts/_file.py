"""A content-addressed folder: ``ROOT/sha256/ab/abcdef...``.

Writes follow the crash-safe order (DESIGN.md, "Storage"): copy into a temporary file
under ``ROOT/tmp`` while hashing, fsync it, rename it to its digest, fsync the folder.
A process killed at any point leaves at most a temporary file, never a partial blob.
When the digest names a blob that is already stored, the temporary copy is removed
without fsync: the durable copy exists, and syncing the same bytes again is what costs.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlprov.artifacts import (
    READ_CHUNK,
    ArtifactStore,
    BlobHold,
    BlobInfo,
    ChunkConsumer,
    ProgressCallback,
    StoredBlob,
)
from mlprov.errors import ConfigError
from mlprov.hashing import CHUNK_SIZE, read_whole_file

_local = threading.local()


class FileArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.as_uri()

    @classmethod
    def from_uri(cls, uri: str) -> FileArtifactStore:
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file store URI {uri!r} names a host; use file:///ABSOLUTE/PATH")
        return cls(Path(unquote(parsed.path)))

    def _blob_path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def _tmp_dir(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def _commit(self, tmp_path: Path, sha256: str) -> bool:
        final = self._blob_path(sha256)
        if final.exists():
            tmp_path.unlink()
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp_path, 0o444)
        os.replace(tmp_path, final)
        _fsync_dir(final.parent)
        return True

    def _put_file(
        self,
        path: Path,
        name: str,
        progress: ProgressCallback | None,
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
    ) -> StoredBlob:
        def feed(consumers: list[ChunkConsumer]) -> int:
            return read_whole_file(
                path, consumers, display=name, buffer=_buffer(), progress=progress
            )

        return self._store(feed, observe, hold)

    def _put_chunks(
        self,
        chunks: Iterable[bytes],
        name: str,
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
    ) -> StoredBlob:
        def feed(consumers: list[ChunkConsumer]) -> int:
            size = 0
            for chunk in chunks:
                view = memoryview(chunk)
                for consume in consumers:
                    consume(view)
                size += len(view)
            return size

        # Chunks are bytes nobody changes afterwards, so they can be written behind.
        return self._store(feed, observe, hold, write_behind=True)

    def _store(
        self,
        feed: Callable[[list[ChunkConsumer]], int],
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
        *,
        write_behind: bool = False,
    ) -> StoredBlob:
        """One pass of ``feed`` into a temporary file, hashed; then hold, fsync, rename.
        With ``write_behind`` (chunks that stay unchanged once fed) the writes run on a
        thread of their own, so a chunk is hashed while the one before it is written."""
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="put-")
        tmp_path = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            consumers: list[ChunkConsumer] = [hasher.update]
            if observe is not None:
                consumers.append(observe)
            behind = _WriteBehind(_EarlyWriteback(fd)) if write_behind else None
            consumers.append(behind if behind is not None else _EarlyWriteback(fd))
            with os.fdopen(fd, "wb", buffering=0) as target:
                try:
                    size = feed(consumers)
                except BaseException:
                    if behind is not None:
                        behind.abandon()
                    raise
                if behind is not None:
                    behind.close()
                sha256 = hasher.hexdigest()
                if hold is not None:
                    hold(sha256)
                if self._blob_path(sha256).exists():
                    # Already stored (and made durable by whoever stored it): the copy
                    # just written is dropped unsynced, so the disk never writes it.
                    tmp_path.unlink()
                    return StoredBlob(sha256, size, False)
                os.fsync(target.fileno())
            created = self._commit(tmp_path, sha256)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        return StoredBlob(sha256, size, created)

    def _put_bytes(self, data: bytes) -> StoredBlob:
        sha256 = hashlib.sha256(data).hexdigest()
        if self._blob_path(sha256).exists():
            return StoredBlob(sha256, len(data), False)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="put-")
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb", buffering=0) as target:
                _write_all(target.fileno(), memoryview(data))
                os.fsync(target.fileno())
            created = self._commit(tmp_path, sha256)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        return StoredBlob(sha256, len(data), created)

    def _exists(self, sha256: str) -> bool:
        return self._blob_path(sha256).is_file()

    def local_file(self, sha256: str) -> Path | None:
        super().local_file(sha256)  # the key's shape is checked there
        path = self._blob_path(sha256)
        return path if path.is_file() else None

    def _read_chunks(self, sha256: str) -> Iterator[bytes]:
        with open(self._blob_path(sha256), "rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                yield chunk

    def _delete(self, sha256: str) -> None:
        self._blob_path(sha256).unlink()

    def _list(self) -> Iterator[BlobInfo]:
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for prefix in base.iterdir():
            for blob in prefix.iterdir():
                try:
                    info = blob.stat()
                except FileNotFoundError:
                    continue  # removed (by gc) while listing
                # The rename keeps the temporary file's time: when the bytes were written.
                modified = datetime.fromtimestamp(info.st_mtime, timezone.utc)
                yield BlobInfo(blob.name, info.st_size, modified)

    def _remove_staging(self, older_than: datetime) -> int:
        tmp = self.root / "tmp"
        if not tmp.is_dir():
            return 0
        removed = 0
        for item in tmp.iterdir():
            try:
                modified = datetime.fromtimestamp(item.stat().st_mtime, timezone.utc)
                if item.name.startswith("put-") and modified < older_than:
                    item.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # its writer finished or removed it meanwhile
        return removed


def _buffer() -> bytearray:
    """This thread's read buffer (registration stores files on several threads)."""
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(CHUNK_SIZE)
    return buffer


#: Bytes written before the disk is asked to start writing them back.
_WRITEBACK_STEP = 32 * 1024 * 1024


class _EarlyWriteback:
    """Writes chunks to a blob's temporary file, asking the kernel every
    ``_WRITEBACK_STEP`` bytes to start writing them to disk (and to drop them from the
    page cache once written: nobody reads a new blob soon). The disk then works while the
    next chunks are read and hashed, instead of all at the final ``fsync``, which still
    makes the file durable: this only moves the writes earlier."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._written = 0
        self._started = 0

    def __call__(self, chunk: memoryview) -> None:
        _write_all(self._fd, chunk)
        self._written += len(chunk)
        if self._written - self._started >= _WRITEBACK_STEP and _FADV_DONTNEED is not None:
            # Linux: POSIX_FADV_DONTNEED starts writeback of the dirty range (WB_SYNC_NONE).
            os.posix_fadvise(self._fd, self._started, self._written - self._started, _FADV_DONTNEED)
            self._started = self._written


_FADV_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)

#: Chunks queued for the writing thread at most (bounds memory: a few MiB).
_WRITE_AHEAD = 4


class _WriteBehind:
    """``write`` run on a thread of its own from a blob's second chunk on: the caller
    hashes chunk *n + 1* while chunk *n* is written (hashlib and os.write both release
    the GIL on large buffers), instead of one after the other; a one-chunk blob is
    written inline, without a thread. Only for chunks that stay unchanged once handed
    over (bytes), never a reused buffer. A write error is raised by the next call or by
    :meth:`close`."""

    def __init__(self, write: ChunkConsumer) -> None:
        self._write = write
        self._queue: queue.Queue[memoryview | None] = queue.Queue(maxsize=_WRITE_AHEAD)
        self._thread: threading.Thread | None = None
        self._inline_done = False
        self._error: BaseException | None = None

    def __call__(self, chunk: memoryview) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            if not self._inline_done:
                self._inline_done = True
                self._write(chunk)
                return
            self._thread = threading.Thread(target=self._run, name="mlprov-blob-write", daemon=True)
            self._thread.start()
        self._queue.put(chunk)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(chunk)
                except BaseException as e:  # raised on the caller's thread
                    self._error = e

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Wait for every queued chunk to be written; raise the write error, if any."""
        self._join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop after what is queued, raising nothing (the caller is already failing)."""
        self._join()


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
