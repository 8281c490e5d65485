"""An in-memory artefact store, shipped for tests and short-lived tools."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from mlprov.artifacts import (
    READ_CHUNK,
    ArtifactStore,
    BlobHold,
    BlobInfo,
    ChunkConsumer,
    ProgressCallback,
    StoredBlob,
)
from mlprov.hashing import read_whole_file


class MemoryArtifactStore(ArtifactStore):
    def __init__(self) -> None:
        self.uri = "memory://"
        self._blobs: dict[str, bytes] = {}
        self._written: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def _put_file(
        self,
        path: Path,
        name: str,
        progress: ProgressCallback | None,
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
    ) -> StoredBlob:
        chunks: list[bytes] = []
        consumers: list[ChunkConsumer] = [lambda chunk: chunks.append(bytes(chunk))]
        if observe is not None:
            consumers.append(observe)
        read_whole_file(
            path, consumers, display=name, buffer=bytearray(READ_CHUNK), progress=progress
        )
        data = b"".join(chunks)
        if hold is not None:
            hold(hashlib.sha256(data).hexdigest())
        return self._put_bytes(data)

    def _put_bytes(self, data: bytes) -> StoredBlob:
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            created = key not in self._blobs
            if created:
                self._blobs[key] = bytes(data)
                self._written[key] = datetime.now(timezone.utc)
        return StoredBlob(key, len(data), created)

    def _exists(self, sha256: str) -> bool:
        return sha256 in self._blobs

    def _read_chunks(self, sha256: str) -> Iterator[bytes]:
        try:
            data = self._blobs[sha256]
        except KeyError as e:
            raise FileNotFoundError(sha256) from e
        for start in range(0, len(data), READ_CHUNK):
            yield data[start : start + READ_CHUNK]
        if not data:
            yield b""

    def _delete(self, sha256: str) -> None:
        with self._lock:
            self._blobs.pop(sha256, None)
            self._written.pop(sha256, None)

    def _list(self) -> Iterator[BlobInfo]:
        with self._lock:
            return iter(
                [BlobInfo(key, len(data), self._written[key]) for key, data in self._blobs.items()]
            )

    def _remove_staging(self, older_than: datetime) -> int:
        return 0  # nothing is staged: a blob is stored whole or not at all

    def corrupt(self, sha256: str, data: bytes) -> None:
        """Replace a blob's bytes without changing its key (tests of read verification)."""
        self._blobs[sha256] = data
