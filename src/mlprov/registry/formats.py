"""Artefact formats of a version being registered, detected by content.

Run once per registration, after the files were hashed and stored and before the write
transaction (ARCHITECTURE.md, rule 4): each file is opened where it was hashed from and
given to :func:`mlprov.provenance.detect_format`, which reads its first 64 KiB and reads
further only into pickles, zip archives and object-dtype ``.npy`` files, within the
registry's :class:`~mlprov.config.Limits`. Nothing is unpickled or imported. The result
becomes part of the version's record (``formats``) and so of its signed ML-BOM.
"""

from __future__ import annotations

from mlprov.errors import StorageError, VerificationError
from mlprov.records import FileFormat
from mlprov.registry._context import RegistryContext
from mlprov.registry.types import PreparedVersion, StoredFiles

__all__ = ["detect_formats"]


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
