"""Blobs by digest: what the HTTP API uploads before a registration and streams on download.

A blob is stored only under the SHA-256 of its bytes: :func:`store_blob` takes a file the
caller already hashed while receiving it and refuses it when the artefact store, hashing
it again as it stores it, finds another digest. Reads go through the artefact store,
which checks every blob's digest as it streams it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mlprov.artifacts import StoredBlob
from mlprov.errors import DigestMismatchError, InvalidInputError
from mlprov.registry._context import RegistryContext

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


def store_blob(context: RegistryContext, path: Path, sha256: str) -> StoredBlob:
    """Store the bytes of ``path`` as blob ``sha256``. A blob stored under another digest
    (the file changed after the caller hashed it) is not referenced by anything and is
    left for ``gc``, like any blob of a failed registration."""
    check_blob_key(sha256)
    stored = context.artifacts.put_file(path, name=f"blob {sha256[:16]}...")
    if stored.sha256 != sha256:
        raise DigestMismatchError(
            f"blob {sha256}: the bytes stored hash to {stored.sha256}; nothing refers to them"
        )
    return stored


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
