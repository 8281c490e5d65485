"""Hash a model file or folder into a :class:`~mlprov.manifest.Manifest` (the IO edge).

What is hashed follows OMS "files" serialization as the reference tool ``model_signing``
1.1 computes it: every regular file below the model root, named by its relative POSIX
path; a single-file model gives one entry named ``"."``.

What is refused, without ever blocking on it: FIFOs, sockets and devices (checked with
``lstat`` before any ``open``, and opened ``O_NONBLOCK``), unreadable files, file names
that are not UTF-8 (shown with their bytes escaped), names that collide after Unicode
normalisation or case folding (:func:`~mlprov.manifest.find_path_collision`), symlinks
unless ``allow_symlinks``, and with it any symlink whose target leaves the model folder
or loops.

Speed: files are hashed in parallel on every core (``hashlib`` and ``blake3`` release the
GIL on large buffers), each read with ``readinto`` into one reusable buffer per worker,
so peak memory is ``workers x chunk size`` whatever the file sizes are.

Shard serialization (OMS v1.0 section 6.3.2, :func:`hash_shards`) splits every file into
``shard_size`` byte ranges and hashes the ranges on a pool of workers, each reading its
range with ``os.pread`` into its own buffer: one large file then uses every core, with the
same bounded memory.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from mlprov.errors import (
    InvalidInputError,
    NotFoundError,
    StorageError,
    UnsafePathError,
    VerificationError,
)
from mlprov.manifest import (
    SINGLE_FILE_NAME,
    Digest,
    FileEntry,
    Manifest,
    find_path_collision,
    new_hasher,
    shard_count,
    shard_name,
    shard_ranges,
)

__all__ = [
    "DEFAULT_IGNORED_NAMES",
    "ChunkConsumer",
    "HashingPlan",
    "ModelFile",
    "hash_file",
    "hash_model",
    "hash_shards",
    "hashing_plan",
    "list_model_files",
    "read_whole_file",
    "shard_names",
]

#: Ignored at the model root, as the reference tool does (matched by whole components).
DEFAULT_IGNORED_NAMES: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")

#: 2 MiB: small enough to stay in cache between the read and the hash (8 MiB cost about
#: 5% more CPU with sha256 and 15-20% with blake3 here), large enough for few syscalls.
CHUNK_SIZE = 2 * 1024 * 1024

ProgressCallback = Callable[[int], None]
#: Receives each chunk of one read pass (a hasher's ``update``, a blob writer); the view is
#: only valid during the call.
ChunkConsumer = Callable[[memoryview], None]


@dataclass(frozen=True)
class ModelFile:
    """A regular file to hash: where it is on disk, and its name in the manifest."""

    name: str
    path: Path
    size: int


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _ignored(relative: PurePosixPath, ignore: frozenset[PurePosixPath]) -> bool:
    # A path is ignored when it or any of its parents is in the ignore set (whole
    # components: ignoring "a" ignores "a/b" but not "ab").
    candidates = {relative, *relative.parents}
    return not ignore.isdisjoint(candidates)


def _classify(path: Path, display: str) -> os.stat_result:
    """``lstat`` a path and refuse anything that is not a regular file, dir or symlink."""
    try:
        info = os.lstat(path)
    except FileNotFoundError as e:
        raise NotFoundError(f"{display}: no such file or directory") from e
    except PermissionError as e:
        raise UnsafePathError(f"{display}: permission denied") from e
    mode = info.st_mode
    if stat.S_ISFIFO(mode):
        raise UnsafePathError(f"{display}: is a FIFO; only regular files can be hashed")
    if stat.S_ISSOCK(mode):
        raise UnsafePathError(f"{display}: is a socket; only regular files can be hashed")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise UnsafePathError(f"{display}: is a device; only regular files can be hashed")
    return info


def _shown(path: PurePath | str) -> str:
    """A path as text that can always be printed: bytes that are not UTF-8 (which Python
    keeps as lone surrogates) are shown escaped, ``caf\\xe9.bin``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _resolve(path: Path, display: str) -> Path:
    """``path.resolve()``, with a symlink loop (``a -> b -> a``) as a one-line error."""
    try:
        return path.resolve(strict=False)
    except RuntimeError as e:  # pathlib before 3.13 reports ELOOP this way
        raise UnsafePathError(f"{display}: symlink loop; the link never reaches a file") from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePathError(f"{display}: symlink loop; the link never reaches a file") from e
        raise StorageError(f"{display}: cannot resolve: {os.strerror(e.errno or errno.EIO)}") from e


def _check_utf8_name(name: str, display: str) -> None:
    # OMS v1.0 section 6.1.2 step 7: resource names are UTF-8. A name that is not (kept by
    # Python as lone surrogates) could not be signed, stored or installed under its name.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UnsafePathError(
            f"{display}: the name is not valid UTF-8; rename it (only UTF-8 names "
            "can be signed and registered)"
        ) from e


def _resolve_symlink(path: Path, root: Path, display: str) -> os.stat_result:
    """Check a symlink stays inside ``root`` and points at a regular file."""
    target = _resolve(path, display)
    if not _is_within(target, root):
        raise UnsafePathError(f"{display}: symlink points outside the model folder")
    if not target.exists():
        raise UnsafePathError(f"{display}: dangling symlink")
    info = _classify(target, display)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePathError(f"{display}: symlink to a directory is not supported")
    return info


def list_model_files(
    model_path: Path,
    *,
    ignore_paths: Iterable[str | Path] = (),
    allow_symlinks: bool = False,
) -> list[ModelFile]:
    """Every regular file of the model that is hashed, in manifest order.

    ``ignore_paths`` are relative to the model root, or absolute paths inside it (the
    signature file, for example); those outside the model are ignored silently, as
    the reference tool does.
    """
    model_path = Path(model_path)
    display_root = _shown(model_path)
    info = _classify(model_path, display_root)
    if stat.S_ISLNK(info.st_mode):
        if not allow_symlinks:
            raise UnsafePathError(
                f"{display_root}: is a symlink; pass --allow-symlinks to follow it"
            )
        model_path = _resolve(model_path, display_root)
        info = _classify(model_path, display_root)
    root = _resolve(model_path, display_root)
    # The model's own base name is recorded too (the artefact name, the OMS subject name).
    _check_utf8_name(Path(os.path.abspath(model_path)).name, display_root)
    if stat.S_ISREG(info.st_mode):
        _check_readable(model_path, display_root)
        return [ModelFile(SINGLE_FILE_NAME, model_path, info.st_size)]
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(f"{display_root}: not a regular file or folder")

    ignore = {PurePosixPath(name) for name in DEFAULT_IGNORED_NAMES}
    for item in ignore_paths:
        item_path = Path(item)
        if item_path.is_absolute():
            absolute = Path(os.path.abspath(item_path))
            if _is_within(absolute, Path(os.path.abspath(model_path))):
                ignore.add(
                    PurePosixPath(absolute.relative_to(os.path.abspath(model_path)).as_posix())
                )
            elif _is_within(absolute.resolve(), root):
                ignore.add(PurePosixPath(absolute.resolve().relative_to(root).as_posix()))
        else:
            ignore.add(PurePosixPath(item_path.as_posix()))
    frozen_ignore = frozenset(ignore)

    files: list[ModelFile] = []
    for relative, path in _walk(model_path):
        if _ignored(relative, frozen_ignore):
            continue
        display = f"{display_root}/{_shown(relative)}"
        _check_utf8_name(relative.as_posix(), display)
        entry_info = _classify(path, display)
        if stat.S_ISLNK(entry_info.st_mode):
            if not allow_symlinks:
                raise UnsafePathError(
                    f"{display}: is a symlink; pass --allow-symlinks to follow it"
                )
            entry_info = _resolve_symlink(path, root, display)
        elif stat.S_ISDIR(entry_info.st_mode):
            continue
        _check_readable(path, display)
        files.append(ModelFile(relative.as_posix(), path, entry_info.st_size))
    files.sort(key=lambda f: PurePosixPath(f.name))
    collision = find_path_collision(f.name for f in files)
    if collision is not None:
        raise UnsafePathError(f"{display_root}: {collision.sentence}")
    return files


def _walk(root: Path) -> Iterator[tuple[PurePosixPath, Path]]:
    """Yield (relative path, path) for every entry below root; never follows symlinks."""
    stack = [(PurePosixPath(), root)]
    while stack:
        relative_dir, directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                children = sorted(entries, key=lambda e: e.name)
        except PermissionError as e:
            raise UnsafePathError(f"{directory}: permission denied") from e
        for child in children:
            relative = relative_dir / child.name
            if child.is_dir(follow_symlinks=False):
                stack.append((relative, Path(child.path)))
                continue
            yield relative, Path(child.path)


def _check_readable(path: Path, display: str) -> None:
    if not os.access(path, os.R_OK):
        raise UnsafePathError(f"{display}: permission denied (file is not readable)")


def _open_regular(path: Path, display: str) -> int:
    """Open read-only without blocking, then re-check it is a regular file (no TOCTOU FIFO)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError as e:
        raise UnsafePathError(f"{display}: permission denied") from e
    except FileNotFoundError as e:
        raise NotFoundError(f"{display}: disappeared while hashing") from e
    except OSError as e:
        raise StorageError(f"{display}: cannot open: {os.strerror(e.errno or errno.EIO)}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(f"{display}: not a regular file")
    return fd


def hash_file(
    path: Path,
    algorithm: str = "sha256",
    *,
    display: str | None = None,
    progress: ProgressCallback | None = None,
    buffer: bytearray | None = None,
    multithreaded: bool = True,
) -> tuple[Digest, int]:
    """Digest and size of one regular file, read in large chunks into a reused buffer.

    ``multithreaded=False`` keeps a blake3 hasher on the calling thread's core.
    """
    shown = display or str(path)
    hasher = new_hasher(algorithm, multithreaded=multithreaded)
    chunk = buffer if buffer is not None else bytearray(CHUNK_SIZE)
    view = memoryview(chunk)
    fd = _open_regular(path, shown)
    size = 0
    try:
        with os.fdopen(fd, "rb", buffering=0) as handle:
            while True:
                try:
                    count = handle.readinto(view)
                except OSError as e:
                    raise StorageError(f"{shown}: read failed: {e.strerror}") from e
                if not count:
                    break
                hasher.update(view[:count])
                size += count
                if progress is not None:
                    progress(count)
    finally:
        view.release()
    return Digest(algorithm, hasher.hexdigest()), size


def hash_model(
    model_path: Path,
    algorithm: str = "sha256",
    *,
    ignore_paths: Iterable[str | Path] = (),
    allow_symlinks: bool = False,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    shard_size: int | None = None,
    max_entries: int | None = None,
) -> Manifest:
    """Hash every file of a model into a manifest, files in parallel on every core.

    With ``shard_size``, a shard manifest (see :func:`hash_shards`).
    """
    files = list_model_files(model_path, ignore_paths=ignore_paths, allow_symlinks=allow_symlinks)
    if shard_size is not None:
        return hash_shards(
            files,
            algorithm,
            shard_size,
            progress=progress,
            workers=workers,
            max_entries=max_entries,
        )
    return hash_files(files, algorithm, progress=progress, workers=workers)


def available_cpus() -> int:
    """The cores this process may run on (its affinity mask, e.g. under ``taskset``)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def shard_names(files: Iterable[ModelFile], shard_size: int) -> list[str]:
    """The shard resource names of the listed files, without reading them."""
    return [
        shard_name(item.name, start, end)
        for item in files
        for start, end in shard_ranges(item.size, shard_size)
    ]


def _hash_range(
    item: ModelFile,
    start: int,
    end: int,
    algorithm: str,
    buffer: bytearray,
    progress: ProgressCallback | None,
) -> FileEntry:
    """Digest of bytes ``[start, end)`` of one file, read with ``os.pread`` into ``buffer``."""
    hasher = new_hasher(algorithm, multithreaded=False)
    view = memoryview(buffer)
    fd = _open_regular(item.path, item.name)
    offset = start
    try:
        while offset < end:
            want = min(len(buffer), end - offset)
            try:
                count = os.preadv(fd, [view[:want]], offset)
            except OSError as e:
                raise StorageError(f"{item.name}: read failed: {e.strerror}") from e
            if not count:
                raise StorageError(
                    f"{item.name}: shrank while hashing (ends at {offset}, expected {end} bytes)"
                )
            hasher.update(view[:count])
            offset += count
            if progress is not None:
                progress(count)
        # The ranges come from the size listed; bytes appended since would go unhashed.
        if end == item.size and os.fstat(fd).st_size != item.size:
            raise StorageError(f"{item.name}: changed size while hashing")
    finally:
        view.release()
        os.close(fd)
    return FileEntry(
        shard_name(item.name, start, end), Digest(algorithm, hasher.hexdigest()), end - start
    )


def hash_shards(
    files: list[ModelFile],
    algorithm: str,
    shard_size: int,
    *,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    max_entries: int | None = None,
) -> Manifest:
    """Hash listed files as ``shard_size`` byte ranges into a shard manifest.

    The ranges of all files go to one pool of ``workers`` threads (default: every core),
    largest first; each worker keeps one buffer, so memory stays ``workers x chunk size``.
    A file that is empty gives no range (OMS v1.0 section 6.3.2 step 1).
    """
    new_hasher(algorithm)  # refuse an unknown algorithm before any work
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise InvalidInputError(f"shard size {shard_size!r} must be a positive number of bytes")
    count = sum(shard_count(item.size, shard_size) for item in files)
    if max_entries is not None and count > max_entries:
        raise InvalidInputError(
            f"{shard_size}-byte shards would give {count} manifest entries, more than the "
            f"limit of {max_entries}; choose a larger --shard-size"
        )
    tasks = [
        (item, start, end) for item in files for start, end in shard_ranges(item.size, shard_size)
    ]
    tasks.sort(key=lambda task: task[2] - task[1], reverse=True)
    pool_size = max(1, min(workers or available_cpus(), len(tasks)))
    local = threading.local()

    def work(task: tuple[ModelFile, int, int]) -> FileEntry:
        buffer = getattr(local, "buffer", None)
        if buffer is None:
            buffer = local.buffer = bytearray(min(CHUNK_SIZE, shard_size))
        return _hash_range(*task, algorithm, buffer, progress)

    if pool_size == 1:
        entries = [work(task) for task in tasks]
    else:
        with ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="mlprov-shard") as pool:
            entries = list(pool.map(work, tasks))
    return Manifest.of(algorithm, entries, shard_size=shard_size)


@dataclass(frozen=True)
class HashingPlan:
    """How many files to read at once, and whether a blake3 hasher uses every core."""

    workers: int
    multithreaded: bool


def hashing_plan(files: list[ModelFile], algorithm: str, workers: int | None = None) -> HashingPlan:
    """Workers for reading ``files`` in parallel (largest first) with ``algorithm``."""
    count = workers or min(len(files), os.cpu_count() or 1) or 1
    if algorithm != "blake3":
        return HashingPlan(count, True)
    # blake3 can spread one file over every core itself, but its threads cost and the
    # reads between updates stay serial: when the files can keep every worker busy on
    # their own (none larger than an even share), one single-threaded hasher per worker
    # is about twice as fast (2 GiB in 8 files on 2 cores: 0.55 s, not 1.2 s); otherwise
    # (one big file, say) one file at a time on every core is faster.
    total = sum(f.size for f in files)
    largest = max((f.size for f in files), default=0)
    if count > 1 and files and largest * count <= total:
        return HashingPlan(count, False)
    return HashingPlan(1, True)


def read_whole_file(
    path: Path,
    consumers: Iterable[ChunkConsumer],
    *,
    display: str,
    buffer: bytearray,
    expected_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Read a regular file once, giving every chunk to each consumer in turn; its size.

    Registration hashes and stores in this one pass, so the digests and the stored bytes
    agree by construction. What one pass cannot see is a file written to while it is
    read (an append past the point reached, or bytes rewritten behind it): the file's
    size and modification time are compared before and after, and with the size listed
    (``expected_size``), and any difference is a :class:`VerificationError`.
    """
    targets = list(consumers)
    view = memoryview(buffer)
    fd = _open_regular(path, display)
    size = 0
    try:
        before = os.fstat(fd)
        with os.fdopen(fd, "rb", buffering=0) as handle:
            while True:
                try:
                    count = handle.readinto(view)
                except OSError as e:
                    raise StorageError(f"{display}: read failed: {e.strerror}") from e
                if not count:
                    break
                chunk = view[:count]
                for consume in targets:
                    consume(chunk)
                size += count
                if progress is not None:
                    progress(count)
            after = os.fstat(handle.fileno())
    finally:
        view.release()
    if (
        after.st_size != size
        or after.st_mtime_ns != before.st_mtime_ns
        or (expected_size is not None and size != expected_size)
    ):
        raise VerificationError(
            f"{display}: changed while being read (size or modification time changed); "
            "register it again once it is complete"
        )
    return size


def hash_files(
    files: list[ModelFile],
    algorithm: str = "sha256",
    *,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> Manifest:
    """Hash listed files into a manifest; largest files start first to balance the cores."""
    new_hasher(algorithm)  # refuse an unknown algorithm before any work
    order = sorted(files, key=lambda f: f.size, reverse=True)
    plan = hashing_plan(order, algorithm, workers)

    def work(item: ModelFile) -> FileEntry:
        digest, size = hash_file(
            item.path,
            algorithm,
            display=item.name,
            progress=progress,
            multithreaded=plan.multithreaded,
        )
        return FileEntry(item.name, digest, size)

    if plan.workers == 1 or len(order) <= 1:
        entries = [work(item) for item in order]
    else:
        with ThreadPoolExecutor(max_workers=plan.workers, thread_name_prefix="mlprov-hash") as pool:
            entries = list(pool.map(work, order))
    return Manifest.of(algorithm, entries)
