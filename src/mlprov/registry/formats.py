"""Artefact formats of a version being registered, detected by content.

Run once per registration, after the files were hashed and stored and before the write
transaction (ARCHITECTURE.md, rule 4): each file is opened where it was hashed from and
given to :func:`mlprov.provenance.detect_format`, which reads its first 64 KiB and reads
further only into pickles, zip archives and object-dtype ``.npy`` files, within the
registry's :class:`~mlprov.config.Limits`. Nothing is unpickled or imported. The result
becomes part of the version's record (``formats``) and so of its signed ML-BOM.
"""

from __future__ import annotations

import tempfile
from typing import BinaryIO, cast

from mlprov.errors import InvalidInputError, StorageError, VerificationError
from mlprov.records import FileFormat
from mlprov.registry._context import RegistryContext
from mlprov.registry.types import PreparedVersion, StoredFiles

__all__ = ["detect_blob_format", "detect_content_format", "detect_formats"]

#: A blob read back for detection stays in memory up to this size, then spills to a
#: temporary file (detection must seek: a zip archive's directory is at its end).
_IN_MEMORY = 8 * 1024 * 1024


def detect_formats(
    context: RegistryContext, prepared: PreparedVersion, stored: StoredFiles
) -> list[FileFormat]:
    """Each file's format, in path order. A file whose size is no longer the one hashed
    is refused (exit 1): its formats would not describe the signed bytes."""
    from mlprov.provenance import detect_format  # noqa: PLC0415 - registration only

    sizes = {entry.path: entry.size for entry in stored.manifest}
    found = []
    for item in sorted(prepared.files, key=lambda f: f.name):
        try:
            with open(item.path, "rb") as stream:
                size = stream.seek(0, 2)
                if size != sizes.get(item.name):
                    raise VerificationError(
                        f"{item.name}: changed while being registered "
                        f"(hashed {sizes.get(item.name)} bytes, now {size})"
                    )
                found.append(detect_format(item.name, stream, limits=context.limits))
        except OSError as e:
            raise StorageError(f"{item.name}: cannot be read to detect its format: {e}") from e
    return found


def detect_blob_format(context: RegistryContext, path: str, sha256: str, size: int) -> FileFormat:
    """The format of the stored blob ``sha256`` as file ``path``: the blob is read once
    through the artefact store, which checks its digest as it reads (the detection only
    sees bytes that passed), and its size must be ``size`` (bad input otherwise)."""
    from mlprov.provenance import detect_format  # noqa: PLC0415 - registration only

    with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY, prefix="mlprov-blob-") as copy:
        found = 0
        for chunk in context.artifacts.read_chunks(sha256):
            copy.write(chunk)
            found += len(chunk)
        if found != size:
            raise InvalidInputError(
                f"{path[:200]}: blob {sha256[:16]}... has {found} bytes, not {size}"
            )
        copy.seek(0)
        # A spooled file is a seekable binary stream (typeshed does not say it is a BinaryIO).
        return detect_format(path, cast("BinaryIO", copy), limits=context.limits)


def detect_content_format(context: RegistryContext, path: str, data: bytes) -> FileFormat:
    """The format of file ``path`` from its bytes, already checked against its digest
    (a file sent inline with its registration)."""
    from mlprov.provenance import detect_format  # noqa: PLC0415 - registration only

    return detect_format(path, data, limits=context.limits)
