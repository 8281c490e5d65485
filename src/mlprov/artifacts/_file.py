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

        return self._store(feed, observe, hold)

    def _store(
        self,
        feed: Callable[[list[ChunkConsumer]], int],
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
    ) -> StoredBlob:
        """One pass of ``feed`` into a temporary file, hashed; then hold, fsync, rename."""
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="put-")
        tmp_path = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            consumers: list[ChunkConsumer] = [hasher.update, _EarlyWriteback(fd)]
            if observe is not None:
                consumers.append(observe)
            with os.fdopen(fd, "wb", buffering=0) as target:
                size = feed(consumers)
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
