"""Local files: the one atomic write and the one folder install of mlprov.

* :class:`StagedFile` writes bytes to a temporary name beside the target (fsync), and
  renames it into place when told: at once (:func:`write_file_atomically`) or only after a
  registry transaction committed (``mlprov sign --name`` writes ``model.sig`` that way).
* :func:`install_folder` fills a temporary folder and moves it into place only when
  everything was written and checked; on any failure the target is left as it was
  (ADR 0027):

  - a target that does not exist: the temporary folder is made beside it and renamed to
    it, so a reader sees nothing or the whole install;
  - an existing empty folder (often a mount point, which cannot be renamed over): the
    temporary folder is made inside it, on the same file system, and its entries are
    moved up one by one; the temporary folder, removed last, marks an install that is
    not complete yet. An exclusive lock on the folder keeps two installs apart.

Installed folders and files get the modes the process's umask gives new ones
(``0o777 & ~umask``, ``0o666 & ~umask``), never the ``0o700`` of a temporary folder, so
a server running as another user can read what an init container installed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mlprov.errors import ConflictError, NotFoundError, StorageError

__all__ = [
    "INSTALL_MARKER_PREFIX",
    "StagedFile",
    "current_umask",
    "install_folder",
    "write_file_atomically",
]

#: Name prefix of the temporary folder an install into an existing folder fills; while
#: one is present in the folder, the install is not complete.
INSTALL_MARKER_PREFIX = ".mlprov-installing-"


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


def current_umask() -> int:
    """The process's umask, read without changing it.

    Linux (4.7 and later) reports it in ``/proc/self/status``; elsewhere it is read by
    setting and restoring it, which races with a thread creating files at that moment
    (such a file would get mode bits from umask 0o022 instead).
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split(":", 1)[1].strip(), 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def install_folder(target: Path, fill: Callable[[Path], None], *, sync: bool = True) -> None:
    """Install a folder at ``target`` whole: ``fill(staging)`` writes into a temporary
    folder that becomes ``target``'s content only if ``fill`` returns.

    With ``sync`` false the renames are not fsynced (``fill`` decides for its files): an
    install on a volume a crash discards anyway (``mlprov pull --no-sync``).

    ``target`` must not exist or be an empty folder (a ConflictError otherwise); on any
    failure it is left as it was. See the module docstring for how each case is made
    safe for readers and against a process killed mid-way.
    """
    target = Path(target)
    if target.is_dir() and not target.is_symlink():
        _fill_existing_folder(target, fill, sync=sync)
        return
    if target.exists() or target.is_symlink():
        raise ConflictError(f"{target}: already exists and is not an empty folder")
    parent = target.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.mlprov-", dir=parent))
    except OSError as e:
        raise StorageError(f"{target}: cannot create the target folder: {e.strerror}") from e
    try:
        fill(staging)
        # mkdtemp made it 0o700; the installed folder gets the mode a new folder gets.
        os.chmod(staging, 0o777 & ~current_umask())
        # rename(2) replaces an empty folder made meanwhile and fails on a full one.
        os.rename(staging, target)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError):
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise ConflictError(f"{target}: was created by someone else meanwhile") from e
            raise StorageError(f"{target}: cannot install: {e.strerror}") from e
        raise
    if sync:
        _sync_folder(parent)


def _fill_existing_folder(target: Path, fill: Callable[[Path], None], *, sync: bool) -> None:
    """Fill an existing empty folder (ADR 0027): stage inside it, then move entries up."""
    try:
        handle = os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise StorageError(f"{target}: cannot open the target folder: {e.strerror}") from e
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise ConflictError(f"{target}: another install into this folder is running") from e
        except OSError:
            pass  # a file system without locks: installs into one folder are not serialised
        _clear_interrupted_install(target)
        try:
            staging = Path(tempfile.mkdtemp(prefix=INSTALL_MARKER_PREFIX, dir=target))
        except OSError as e:
            raise StorageError(f"{target}: cannot write in the folder: {e.strerror}") from e
        moved: list[Path] = []
        try:
            fill(staging)
            for entry in sorted(staging.iterdir()):
                destination = target / entry.name
                os.rename(entry, destination)
                moved.append(destination)
            # Removed last: its absence says the install is complete.
            staging.rmdir()
        except BaseException as e:
            # We hold the lock and the folder was empty: undo to leave it as it was.
            for path in moved:
                _remove(path)
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(e, OSError):
                raise StorageError(f"{target}: cannot install: {e.strerror}") from e
            raise
        if sync:
            _sync_folder(target)
    finally:
        os.close(handle)


def _clear_interrupted_install(target: Path) -> None:
    """Refuse a folder that is not empty; remove what a killed install left when that is
    all there is (the caller holds the folder's lock, so no live install owns it)."""
    try:
        entries = list(target.iterdir())
    except OSError as e:
        raise StorageError(f"{target}: cannot list the target folder: {e.strerror}") from e
    markers = [e for e in entries if e.name.startswith(INSTALL_MARKER_PREFIX)]
    if markers and len(markers) < len(entries):
        raise ConflictError(
            f"{target}: holds a partial install from an interrupted download "
            f"({markers[0].name} is still there); empty the folder and download again"
        )
    if entries and not markers:
        raise ConflictError(f"{target}: already exists and is not an empty folder")
    for marker in markers:
        shutil.rmtree(marker, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _sync_folder(folder: Path) -> None:
    """fsync a folder so the renames into it survive a crash (best effort: some file
    systems refuse fsync on folders)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def read_folder(folder: Path, *, max_files: int, max_file_bytes: int) -> dict[str, bytes]:
    """Every regular file under ``folder`` (hidden names skipped) as ``{relative POSIX
    path: bytes}``, bounded in count and size; a symlink, FIFO or device is refused, so
    nothing outside the folder is read and nothing blocks."""
    import stat  # noqa: PLC0415

    from mlprov.errors import InvalidInputError, UnsafePathError  # noqa: PLC0415

    root = Path(folder)
    if not root.is_dir():
        raise NotFoundError(f"{root}: no such folder")
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode):
            continue
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{path}: not a regular file (symlinks are not followed)")
        if info.st_size > max_file_bytes:
            raise InvalidInputError(f"{path}: {info.st_size} bytes, more than {max_file_bytes}")
        if len(found) >= max_files:
            raise InvalidInputError(f"{root}: more than {max_files} files")
        try:
            found[relative.as_posix()] = path.read_bytes()
        except OSError as e:
            raise StorageError(f"{path}: cannot read: {e.strerror}") from e
    return found
