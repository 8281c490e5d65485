"""Blobs by digest: what the HTTP API uploads before a registration and streams on download.

A blob is stored only under the SHA-256 of its bytes: :func:`store_blob` writes the bytes
as they arrive straight into the artefact store, which hashes them in the same pass, and
refuses them before they are made durable or named when they hash to another digest
(nothing is kept). Bytes of the right digest are leased against gc before the store looks
whether the blob is there (as a local registration's are: :mod:`mlprov.registry.gc`), so
a blob uploaded, or found already stored, stays for a day while the client goes on to
register the version that names it. Reads go through the artefact store, which checks
every blob's digest as it streams it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from mlprov.artifacts import StoredBlob
from mlprov.errors import DigestMismatchError, InvalidInputError
from mlprov.registry._context import RegistryContext
from mlprov.registry.gc import lease_blob, new_holder

__all__ = [
    "blob_chunks",
    "blob_exists",
    "blob_models",
    "blob_size",
    "check_blob_key",
    "store_blob",
]


def check_blob_key(sha256: str) -> str:
    """A blob key as given by a caller: 64 lower-case hex digits (bad input otherwise)."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise InvalidInputError(
            f"invalid blob digest {sha256[:80]!r}: expected 64 lower-case hex digits"
        )
    return sha256


def store_blob(context: RegistryContext, chunks: Iterable[bytes], sha256: str) -> StoredBlob:
    """Store bytes arriving as ``chunks`` as blob ``sha256`` in one pass (written once,
    hashed as written, one fsync and rename). Bytes hashing to anything else are refused
    (DigestMismatchError) before the store looks for, makes durable or names a blob, and
    their temporary file is removed: nothing is kept. Bytes of the right digest are
    leased against gc first (the module docstring)."""
    check_blob_key(sha256)

    def same_digest(actual: str) -> None:
        if actual != sha256:
            raise DigestMismatchError(
                f"the uploaded bytes hash to sha256:{actual}, not sha256:{sha256}; nothing kept"
            )
        lease_blob(context, sha256, new_holder("upload"))

    return context.artifacts.put_chunks(chunks, name=f"blob {sha256[:16]}...", hold=same_digest)


def blob_exists(context: RegistryContext, sha256: str) -> bool:
    return context.artifacts.exists(check_blob_key(sha256))


def blob_size(context: RegistryContext, sha256: str) -> int:
    """A stored blob's size: as a version's files record it, or (for a blob no version
    refers to yet) counted by reading it once."""
    check_blob_key(sha256)
    with context.metadata.read() as tx:
        recorded = tx.versions.blob_size(sha256)
    if recorded is not None:
        return recorded
    return sum(len(chunk) for chunk in context.artifacts.read_chunks(sha256))


def blob_models(context: RegistryContext, sha256: str) -> list[str]:
    """The models whose versions use a blob (none for a blob no version names yet)."""
    check_blob_key(sha256)
    with context.metadata.read() as tx:
        return tx.versions.models_using_blob(sha256)


def blob_chunks(context: RegistryContext, sha256: str) -> Iterator[bytes]:
    """A blob's bytes in bounded chunks; DigestMismatchError after the last one if they
    are not the blob's (the caller must not have passed them on as good by then)."""
    return context.artifacts.read_chunks(check_blob_key(sha256))
