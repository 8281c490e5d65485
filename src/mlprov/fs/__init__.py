"""Local files: the one atomic write and the one folder install of mlprov.

* :class:`StagedFile` writes bytes to a temporary name beside the target (fsync), and
  renames it into place when told: at once (:func:`write_file_atomically`) or only after a
  registry transaction committed (``mlprov sign --name`` writes ``model.sig`` that way).
* :func:`install_folder` fills a temporary folder beside the target and renames it into
  place only when everything was written and checked; on any failure nothing is left at
  the target. An existing empty folder is replaced the same way.

A reader of the target therefore sees the old state or the whole new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mlprov.errors import ConflictError, NotFoundError, StorageError

__all__ = ["StagedFile", "install_folder", "write_file_atomically"]


class StagedFile:
    """Bytes written and fsynced under a temporary name beside ``target``."""

    def __init__(self, target: Path, content: bytes, *, mode: int = 0o644, what: str = "file"):
        self.target = Path(target)
        self.what = what
        directory = self.target.parent if str(self.target.parent) else Path(".")
        try:
            handle, name = tempfile.mkstemp(prefix=f".{self.target.name}.", dir=directory)
        except FileNotFoundError as e:
            raise NotFoundError(f"{directory}: folder for the {what} does not exist") from e
        except OSError as e:
            raise StorageError(f"cannot write the {what} in {directory}: {e.strerror}") from e
        self.temporary: Path | None = Path(name)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(name, mode)
        except OSError as e:
            self.discard()
            raise StorageError(f"cannot write the {what} {self.target}: {e.strerror}") from e

    def commit(self) -> None:
        """Rename into place (atomic on POSIX within one file system)."""
        if self.temporary is None:
            raise StorageError(f"the {self.what} {self.target} was already committed or discarded")
        try:
            os.replace(self.temporary, self.target)
        except OSError as e:
            self.discard()
            raise StorageError(f"cannot write the {self.what} {self.target}: {e.strerror}") from e
        self.temporary = None

    def discard(self) -> None:
        if self.temporary is not None:
            with contextlib.suppress(OSError):
                self.temporary.unlink()
            self.temporary = None


def write_file_atomically(
    target: Path, content: bytes, *, mode: int = 0o644, what: str = "file"
) -> None:
    """Write ``content`` to ``target`` via a temporary file, fsync and rename."""
    StagedFile(target, content, mode=mode, what=what).commit()


def install_folder(target: Path, fill: Callable[[Path], None]) -> None:
    """Create ``target`` whole: ``fill(staging)`` writes into a temporary folder beside it,
    which is renamed to ``target`` only if ``fill`` returns. ``target`` must not exist or
    be an empty folder; on any failure it is left as it was."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConflictError(f"{target}: already exists and is not an empty folder")
    parent = target.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.mlprov-", dir=parent))
    except OSError as e:
        raise StorageError(f"{target}: cannot create the target folder: {e.strerror}") from e
    try:
        fill(staging)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
