"""Installing a version's files in a folder, every digest checked while writing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mlprov.errors import DigestMismatchError, StorageError
from mlprov.fs import install_folder
from mlprov.manifest import SINGLE_FILE_NAME, Digest, check_relative_path, new_hasher
from mlprov.records import ModelVersion
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, corrupt_blobs_named, resolve

__all__ = ["download"]

ProgressCallback = Callable[[int], None]


def download(
    context: RegistryContext,
    ref: ModelRef | str,
    to: Path,
    *,
    progress: ProgressCallback | None = None,
) -> ModelVersion:
    """Write a version's files to ``to``, checking every digest while writing.

    The reference is resolved once; files go to a temporary folder beside ``to`` that is
    renamed into place only when every file matched; on any mismatch or error nothing is
    left at ``to``.
    """
    with context.metadata.read() as tx:
        key = resolve(tx, coerce_ref(ref))
        record = tx.versions.record(key)
        files = tx.versions.files(key)

    def fill(staging: Path) -> None:
        for item in files:
            name = record.artifact_name if item.path == SINGLE_FILE_NAME else item.path
            check_relative_path(name)
            _write_checked(context, staging / name, item.blob, Digest.parse(item.digest), progress)

    with corrupt_blobs_named(record.ref, files):
        install_folder(Path(to), fill)
    return record


def _write_checked(
    context: RegistryContext,
    target: Path,
    blob: str,
    digest: Digest,
    progress: ProgressCallback | None,
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    hasher = new_hasher(digest.algorithm)
    try:
        with open(target, "xb") as handle:
            for chunk in context.artifacts.read_chunks(blob):
                hasher.update(chunk)
                handle.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as e:
        raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e
    actual = hasher.hexdigest()
    if actual != digest.hex:
        raise DigestMismatchError(
            f"{target.name}: digest mismatch, expected {digest.hex} got {actual}"
        )
