"""Content-addressed artefact storage, chosen by URI scheme.

Blobs are keyed by the SHA-256 of their bytes, written once and never changed, and
checked against that digest on every read. The same bytes are stored once however
many versions and models use them.

* ``file:///path`` - a folder (the embedded default, ``$MLPROV_HOME/blobs``);
* ``s3://bucket/prefix`` - S3-compatible object storage (``mlprov.artifacts._s3``);
* ``memory://`` - an in-process store for tests. Its bytes vanish with the process, so
  :func:`open_artifact_store` refuses it unless the caller passes ``allow_ephemeral=True``
  (tests do; a registry configured with it would "register" versions whose bytes are gone).

:class:`ArtifactStore` is a tiny abstract class: its public methods validate digests
and translate IO failures into :class:`~mlprov.errors.StorageError`, then call the
private abstract methods an implementation provides, so no backend can skip them.
"""

from __future__ import annotations

import abc
import errno
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlprov.errors import ConfigError, DigestMismatchError, NotFoundError, StorageError

__all__ = [
    "ArtifactStore",
    "BlobHold",
    "BlobInfo",
    "ChunkConsumer",
    "CorruptBlobError",
    "StoredBlob",
    "open_artifact_store",
]

_SHA256_HEX = re.compile(r"\A[0-9a-f]{64}\Z")
READ_CHUNK = 4 * 1024 * 1024

ProgressCallback = Callable[[int], None]
#: Sees each chunk of a file while it is stored (the caller's own hasher, say).
ChunkConsumer = Callable[[memoryview], None]
#: Called with a blob's SHA-256 once its bytes are hashed and before the store looks
#: whether that blob is already stored: the registry takes its gc lease there, so a blob
#: found stored cannot be collected between that look and the version's commit.
BlobHold = Callable[[str], None]


class CorruptBlobError(DigestMismatchError):
    """A stored blob's bytes do not hash to its key. It knows only the blob: the registry,
    which knows which files of a version the blob backs, names them."""

    def __init__(self, blob: str, actual: str) -> None:
        super().__init__(
            f"blob {blob} is corrupt in the artefact store: its bytes hash to {actual}"
        )
        self.blob = blob
        self.actual = actual


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool  # False when the same bytes were already stored


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob as a listing sees it: its key, size and when it was written (UTC)."""

    sha256: str
    size: int
    modified: datetime


def _check_key(sha256: str) -> str:
    if not _SHA256_HEX.match(sha256):
        raise StorageError(f"invalid blob key {sha256[:80]!r}: expected 64 lower-case hex")
    return sha256


def storage_error(action: str, error: OSError) -> StorageError:
    """One line for an OS failure, naming the common causes a user can act on."""
    code = error.errno
    if code == errno.ENOSPC:
        why = "no space left on device"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "storage is read-only or not writable"
    elif code == errno.EFBIG:
        why = "file too large for the storage (size limit reached)"
    else:
        why = error.strerror or str(error)
    return StorageError(f"{action}: {why}")


class ArtifactStore(abc.ABC):
    """Immutable blobs keyed by SHA-256."""

    uri: str

    def put_file(
        self,
        path: Path,
        *,
        name: str | None = None,
        progress: ProgressCallback | None = None,
        observe: ChunkConsumer | None = None,
        hold: BlobHold | None = None,
    ) -> StoredBlob:
        """Store a regular file's bytes in one read pass; returns its SHA-256, size and
        whether it was new.

        ``hold(sha256)`` runs after the bytes are hashed and before the store looks
        whether that blob is stored already (:data:`BlobHold`); what it raises aborts
        the store and leaves no blob behind.

        ``observe`` sees every chunk as it is stored, so a caller can compute another
        digest of exactly the stored bytes without reading the file again. Bytes that are
        already stored are not made durable again (no fsync): the blob that exists is.
        A file that changes while it is read is refused
        (:func:`mlprov.hashing.read_whole_file`); ``name`` is how errors call it.
        """
        shown = name if name is not None else path.name
        try:
            return self._put_file(path, shown, progress, observe, hold)
        except OSError as e:
            raise storage_error(f"storing {shown}", e) from e

    def put_chunks(
        self,
        chunks: Iterable[bytes],
        *,
        name: str,
        observe: ChunkConsumer | None = None,
        hold: BlobHold | None = None,
    ) -> StoredBlob:
        """Store bytes that arrive as chunks (an archive member, say) in one pass, as
        :meth:`put_file` stores a file: ``observe`` sees every chunk, ``hold(sha256)`` runs
        once they are all hashed and before the store looks whether the blob exists, and
        what it raises leaves no blob behind (so a caller can refuse unexpected bytes)."""
        try:
            return self._put_chunks(chunks, name, observe, hold)
        except OSError as e:
            raise storage_error(f"storing {name}", e) from e

    def put_bytes(self, data: bytes) -> StoredBlob:
        try:
            return self._put_bytes(data)
        except OSError as e:
            raise storage_error("storing bytes", e) from e

    def exists(self, sha256: str) -> bool:
        try:
            return self._exists(_check_key(sha256))
        except OSError as e:
            raise storage_error(f"checking blob {sha256}", e) from e

    def read_chunks(self, sha256: str) -> Iterator[bytes]:
        """Yield a blob's bytes; raise DigestMismatchError at the end if they are not its key's."""
        key = _check_key(sha256)
        hasher = hashlib.sha256()
        try:
            for chunk in self._read_chunks(key):
                hasher.update(chunk)
                yield chunk
        except FileNotFoundError as e:
            raise NotFoundError(f"blob {key} is missing from the artefact store") from e
        except OSError as e:
            raise storage_error(f"reading blob {key}", e) from e
        actual = hasher.hexdigest()
        if actual != key:
            raise CorruptBlobError(key, actual)

    def read_bytes(self, sha256: str) -> bytes:
        return b"".join(self.read_chunks(sha256))

    def local_file(self, sha256: str) -> Path | None:
        """The local file holding a blob's bytes, for a store that keeps blobs as files
        (so the kernel can copy them: ``mlprov export``), else None. The bytes are NOT
        checked here: whoever copies them must hash what was copied against the key."""
        _check_key(sha256)
        return None

    def delete(self, sha256: str) -> None:
        """Remove a blob (a missing one is not an error). Only ``mlprov gc`` calls it, for
        a blob it has claimed (:mod:`mlprov.registry.gc`)."""
        try:
            self._delete(_check_key(sha256))
        except FileNotFoundError:
            return
        except OSError as e:
            raise storage_error(f"removing blob {sha256}", e) from e

    def digests(self) -> list[str]:
        """Every stored blob key, sorted."""
        return [blob.sha256 for blob in self.blobs()]

    def blobs(self) -> list[BlobInfo]:
        """Every stored blob with its size and last-modified time, sorted by key."""
        try:
            return sorted(self._list(), key=lambda blob: blob.sha256)
        except OSError as e:
            raise storage_error("listing blobs", e) from e

    def remove_staging(self, older_than: datetime) -> int:
        """Remove staging copies (of uploads a killed process never finished) last
        written before ``older_than``; how many were removed."""
        try:
            return self._remove_staging(older_than)
        except OSError as e:
            raise storage_error("removing stale staging copies", e) from e

    @abc.abstractmethod
    def _put_file(
        self,
        path: Path,
        name: str,
        progress: ProgressCallback | None,
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
    ) -> StoredBlob: ...

    def _put_chunks(
        self,
        chunks: Iterable[bytes],
        name: str,
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
    ) -> StoredBlob:
        """By default the chunks are spooled to a temporary file stored with
        :meth:`_put_file`; a store that can write a stream directly overrides this."""
        import tempfile  # noqa: PLC0415

        with tempfile.TemporaryDirectory(prefix="mlprov-chunks-") as scratch:
            spool = Path(scratch) / "blob"
            with open(spool, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            return self._put_file(spool, name, None, observe, hold)

    @abc.abstractmethod
    def _put_bytes(self, data: bytes) -> StoredBlob: ...

    @abc.abstractmethod
    def _exists(self, sha256: str) -> bool: ...

    @abc.abstractmethod
    def _read_chunks(self, sha256: str) -> Iterator[bytes]: ...

    @abc.abstractmethod
    def _delete(self, sha256: str) -> None: ...

    @abc.abstractmethod
    def _list(self) -> Iterator[BlobInfo]: ...

    @abc.abstractmethod
    def _remove_staging(self, older_than: datetime) -> int: ...


def open_artifact_store(uri: str, *, allow_ephemeral: bool = False) -> ArtifactStore:
    """Open the artefact store a URI names (``file://``, ``s3://``; ``memory://`` only
    with ``allow_ephemeral=True``, which tests pass: it keeps nothing after the process).
    Opening makes no network call: an S3 store meets its endpoint on first use."""
    scheme, sep, _ = uri.partition("://")
    if not sep:
        raise ConfigError(
            f"artefact store URI {uri!r} has no scheme: use file:///PATH or s3://BUCKET/PREFIX"
        )
    if scheme == "file":
        from mlprov.artifacts._file import FileArtifactStore  # noqa: PLC0415

        return FileArtifactStore.from_uri(uri)
    if scheme == "s3":
        from mlprov.artifacts._s3 import S3ArtifactStore  # noqa: PLC0415

        return S3ArtifactStore.from_uri(uri)
    if scheme == "memory":
        if not allow_ephemeral:
            raise ConfigError(
                "artefact store memory:// keeps no bytes after the process exits and is for "
                "tests only: use file:///PATH or s3://BUCKET/PREFIX (MLPROV_ARTIFACTS)"
            )
        from mlprov.artifacts._memory import MemoryArtifactStore  # noqa: PLC0415

        return MemoryArtifactStore()
    raise ConfigError(
        f"unsupported artefact store scheme {scheme!r}: use file:///PATH or s3://BUCKET/PREFIX"
    )
