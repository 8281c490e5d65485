"""Transfer archives as files: a POSIX tar written with :mod:`tarfile`, read by a small
reader of our own that accepts only what the writer makes.

An archive is untrusted input until the registry has verified what it carries, so the
reader (:func:`read_archive`) decides member by member, before it reads a member's bytes,
whether that member may exist at all:

* only regular files (``ustar`` type ``0``), with an optional PAX extended header (type
  ``x``, at most :data:`MAX_PAX_BYTES`) for long or non-ASCII names; links, devices,
  folders, FIFOs, GNU and global headers are refused;
* every name lies under :data:`ROOT` as a relative POSIX path without ``.``, ``..``,
  empty components, backslashes or NUL; a name seen twice is refused;
* at most ``max_members`` members, none larger than the bytes left in the file or than
  its caller's bound, and nothing but zero blocks after the end-of-archive marker;
* every header's checksum is checked (POSIX.1-2001 ``ustar``: the unsigned sum of the
  header bytes with the checksum field read as spaces).

Bytes are read in bounded chunks and handed to the caller as they come, so memory use
does not depend on member sizes. Errors are :class:`~mlprov.errors.InvalidInputError`
(exit 2) naming the member; the caller decides what to undo.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import queue
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn

from mlprov.errors import DigestMismatchError, InvalidInputError, StorageError

__all__ = [
    "CHUNK_BYTES",
    "MAX_PAX_BYTES",
    "ROOT",
    "ArchiveEntry",
    "ArchiveWriter",
    "MemberDigestError",
    "read_ahead",
    "read_archive",
]

#: Every member's name starts with this folder (one root: nothing lands beside it).
ROOT = "mlprov-archive"
#: Bytes read at a time from an archive member.
CHUNK_BYTES = 1024 * 1024
#: Largest PAX extended header accepted (names and sizes only need a few hundred bytes).
MAX_PAX_BYTES = 64 * 1024
_BLOCK = 512
_MAX_NAME_BYTES = 4096
_TYPE_NAMES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"5": "a folder",
    b"6": "a FIFO",
    b"7": "a contiguous file",
    b"g": "a global PAX header",
    b"L": "a GNU long name",
    b"K": "a GNU long link name",
    b"S": "a GNU sparse file",
}


def _refuse(what: str) -> InvalidInputError:
    return InvalidInputError(f"archive refused: {what}")


def check_member_name(name: str) -> str:
    """A member name as the writer makes it, or InvalidInputError."""
    shown = repr(name[:120])
    if not name or len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        raise _refuse(f"member name {shown} is empty or too long")
    if "\x00" in name or "\\" in name:
        raise _refuse(f"member name {shown} holds NUL or a backslash")
    if name.startswith("/"):
        raise _refuse(f"member {shown} has an absolute path")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise _refuse(f"member {shown} leaves the archive root or has empty components")
    if parts[0] != ROOT or len(parts) < 2:
        raise _refuse(f"member {shown} lies outside the archive root {ROOT}/")
    return name


@dataclass
class ArchiveEntry:
    """One member being read: its name and size; :meth:`chunks` yields its bytes once."""

    name: str
    size: int
    _source: BinaryIO
    _left: int

    def chunks(self) -> Iterator[bytes]:
        while self._left > 0:
            data = self._source.read(min(CHUNK_BYTES, self._left))
            if not data:
                raise _refuse(f"member {self.name!r} is truncated")
            self._left -= len(data)
            yield data

    def read_all(self, most: int) -> bytes:
        """The whole member, refused when larger than ``most`` bytes (documents only)."""
        if self.size > most:
            raise _refuse(f"member {self.name!r} has {self.size} bytes, more than {most}")
        return b"".join(self.chunks())

    def _skip_rest(self) -> None:
        for _ in self.chunks():
            pass


def _octal(field: bytes, what: str) -> int:
    text = field.rstrip(b"\x00 ").lstrip(b" ")
    if field[:1] and field[0] & 0x80:
        raise _refuse(f"header field {what} uses base-256 numbers")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise _refuse(f"header field {what} is not an octal number") from None


def _pax_records(data: bytes) -> dict[str, str]:
    """POSIX.1-2001 pax records: ``LEN key=value\\n``, LEN counting the whole record."""
    records: dict[str, str] = {}
    at = 0
    while at < len(data):
        space = data.find(b" ", at, at + 20)
        if space < 0:
            raise _refuse("a PAX header record has no length")
        try:
            length = int(data[at:space])
        except ValueError:
            raise _refuse("a PAX header record length is not a number") from None
        record = data[at : at + length]
        if length <= space - at + 1 or len(record) != length or not record.endswith(b"\n"):
            raise _refuse("a PAX header record is malformed")
        key, sep, value = record[space - at + 1 : -1].partition(b"=")
        if not sep:
            raise _refuse("a PAX header record has no '='")
        try:
            records[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _refuse("a PAX header record is not UTF-8") from None
        at += length
    if any(key.startswith("GNU.sparse") for key in records):
        raise _refuse("sparse members are not accepted")
    return records


def _read_exact(source: BinaryIO, size: int, what: str) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise _refuse(f"{what} is truncated")
    return data


def read_archive(
    path: Path,
    *,
    max_members: int,
    max_member_bytes: Callable[[str], int],
) -> Iterator[ArchiveEntry]:
    """The members of the tar file at ``path``, in order, refused as the module
    docstring says; ``max_member_bytes(name)`` bounds each member by its name. The caller
    reads each entry's bytes (or not) before asking for the next."""
    try:
        source = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        # A path that names no archive is the caller's mistake (exit 2), not an I/O fault.
        raise InvalidInputError(f"cannot read archive {path}: {e.strerror or e}") from e
    except OSError as e:
        raise StorageError(f"cannot read archive {path}: {e.strerror or e}") from e
    try:
        info = os.fstat(source.fileno())
        import stat  # noqa: PLC0415

        if not stat.S_ISREG(info.st_mode):
            raise _refuse(f"{path} is not a regular file")
        remaining = info.st_size
        seen: set[str] = set()
        pax: dict[str, str] = {}
        while True:
            header = source.read(_BLOCK)
            remaining -= len(header)
            if len(header) < _BLOCK:
                raise _refuse("the end-of-archive marker is missing")
            if header == b"\x00" * _BLOCK:
                _check_trailer(source)
                return
            stored_sum = _octal(header[148:156], "chksum")
            if sum(header[:148]) + 8 * 32 + sum(header[156:]) != stored_sum:
                raise _refuse("a member header's checksum is wrong")
            if header[257:263] != b"ustar\x00":
                raise _refuse("a member header is not POSIX ustar")
            kind = header[156:157]
            size = _octal(header[124:136], "size")
            if kind == b"x":
                if pax:
                    raise _refuse("two PAX headers follow each other")
                if size > MAX_PAX_BYTES:
                    raise _refuse(f"a PAX header has {size} bytes, more than {MAX_PAX_BYTES}")
                padded = -(-size // _BLOCK) * _BLOCK
                data = _read_exact(source, padded, "a PAX header")
                remaining -= padded
                pax = _pax_records(data[:size])
                continue
            if kind not in (b"0", b"\x00"):
                what = _TYPE_NAMES.get(kind, f"of type {kind!r}")
                raise _refuse(f"a member is {what}; only regular files are accepted")
            name = _member_name(header, pax)
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    raise _refuse(f"member {name!r} has a malformed PAX size") from None
            pax = {}
            check_member_name(name)
            if name in seen:
                raise _refuse(f"member {name!r} appears twice")
            seen.add(name)
            if len(seen) > max_members:
                raise _refuse(f"more than {max_members} members")
            padded = -(-size // _BLOCK) * _BLOCK
            if size < 0 or padded > remaining:
                raise _refuse(f"member {name!r} claims {size} bytes, more than the file holds")
            most = max_member_bytes(name)
            if size > most:
                raise _refuse(f"member {name!r} has {size} bytes, more than {most}")
            entry = ArchiveEntry(name, size, source, size)
            yield entry
            entry._skip_rest()
            _read_exact(source, padded - size, f"member {name!r}")
            remaining -= padded
    except OSError as e:
        raise StorageError(f"cannot read archive {path}: {e.strerror or e}") from e
    finally:
        source.close()


def _member_name(header: bytes, pax: dict[str, str]) -> str:
    if "path" in pax:
        return pax["path"]
    name = header[0:100].split(b"\x00", 1)[0]
    prefix = header[345:500].split(b"\x00", 1)[0]
    raw = prefix + b"/" + name if prefix else name
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("a member name is not UTF-8") from None


def _check_trailer(source: BinaryIO) -> None:
    """After the first zero block only zero blocks (the marker and tar's padding)."""
    while True:
        data = source.read(CHUNK_BYTES)
        if not data:
            return
        if data.count(0) != len(data):
            raise _refuse("data follows the end-of-archive marker")


#: Chunks read ahead of their consumer by :func:`read_ahead`: a few, so memory stays bounded.
_READ_AHEAD = 4
_DONE = object()


def read_ahead(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` produced on a thread of their own, a few ahead of the consumer: reading
    (and the hashing a producer does, which releases the GIL) overlaps what the consumer
    does with each chunk. An error of the producer is raised in the consumer; a consumer
    that stops early stops the producer, which is joined before this returns."""
    pending: queue.Queue[object] = queue.Queue(maxsize=_READ_AHEAD)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer(chunk):
                    return
            offer(_DONE)
        except BaseException as e:  # handed to the consumer, raised there
            offer(e)

    worker = threading.Thread(target=produce, name="mlprov-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        worker.join()


#: tar's record size (POSIX): archives are padded to a multiple of it, as tar writes them.
_RECORD = 20 * _BLOCK
#: Bytes the kernel copies per call, and bytes a check reads back per call.
_COPY_STEP = 64 * 1024 * 1024
_CHECK_STEP = 8 * 1024 * 1024
#: copy_file_range errors that mean "not between these files": copy through user space.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


class MemberDigestError(DigestMismatchError):
    """The bytes written for a member are not the ones expected: they hash to ``actual``
    (None when the source already had the wrong size, which ``detail`` says)."""

    def __init__(self, member: str, expected: str, actual: str | None, detail: str) -> None:
        super().__init__(f"{member}: {detail}")
        self.member = member
        self.expected = expected
        self.actual = actual
        self.detail = detail


class ArchiveWriter:
    """Write an archive to a temporary file beside ``path``; :meth:`commit` renames it
    into place, :meth:`discard` removes it (nothing is left on failure).

    Headers are :meth:`tarfile.TarInfo.tobuf` (POSIX.1-2001 PAX format, mtime 0, so the
    same members give the same bytes); member data is written as it comes, chunk by
    chunk, without the copies ``TarFile.addfile`` makes.

    :meth:`add_file` copies a local file in the kernel (``copy_file_range``) and checks
    the SHA-256 of the bytes *as written into the archive* on worker threads, one member
    per thread, while the next member is copied: the check covers exactly the archive's
    bytes (not a source that could change after it was hashed), and hashing, the one
    costly step, runs on every core instead of one. :meth:`commit` waits for every check
    and fails (the archive discarded) if one did not match."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self._file = open(self._tmp, "xb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as e:
            raise StorageError(f"cannot write archive {path}: {e.strerror or e}") from e
        self._offset = 0
        self._checker: ThreadPoolExecutor | None = None
        self._checks: list[Future[None]] = []

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]
            self._offset += written or 0

    def _header(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(check_member_name(name))
        info.size = size
        info.mode = 0o644
        info.mtime = 0  # deterministic: the same version gives the same archive
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _pad(self) -> None:
        if self._offset % _BLOCK:
            self._write(b"\x00" * (_BLOCK - self._offset % _BLOCK))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._header(name, len(data))
        self._write(data)
        self._pad()

    def add_stream(
        self, name: str, size: int, chunks: Iterable[bytes], sha256: str | None = None
    ) -> None:
        """Add a member from chunks adding up to exactly ``size`` bytes. With ``sha256``
        (the bytes' expected digest, which the producer checks), another size is
        :class:`MemberDigestError`: bytes that are not the ones expected, not an I/O fault."""
        self._header(name, size)
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                self._wrong_size(name, f"more than the {size} bytes expected", sha256)
            self._write(chunk)
        if written != size:
            self._wrong_size(name, f"{written} bytes, not the {size} expected", sha256)
        self._pad()

    @staticmethod
    def _wrong_size(name: str, detail: str, sha256: str | None) -> NoReturn:
        if sha256 is not None:
            raise MemberDigestError(name, sha256, None, detail)
        raise StorageError(f"{name}: {detail}")

    def add_file(
        self,
        name: str,
        source: Path,
        size: int,
        sha256: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Add the local file ``source`` (exactly ``size`` bytes) as member ``name``; the
        bytes written must hash to ``sha256`` (checked in the background, reported by
        :meth:`commit` as :class:`MemberDigestError`). A source of another size is refused
        here (:class:`MemberDigestError` too: its bytes cannot be the ones expected)."""
        with open(source, "rb", buffering=0) as handle:
            actual_size = os.fstat(handle.fileno()).st_size
            if actual_size != size:
                detail = f"{actual_size} bytes, not the {size} expected"
                raise MemberDigestError(name, sha256, None, detail)
            self._header(name, size)
            start = self._offset
            self._copy(handle, size, progress)
        self._pad()
        if self._checker is None:
            workers = max(1, min(4, os.cpu_count() or 1))
            self._checker = ThreadPoolExecutor(workers, thread_name_prefix="mlprov-archive")
        self._checks.append(self._checker.submit(self._check, name, start, size, sha256))

    def _copy(self, handle: BinaryIO, size: int, progress: Callable[[int], None] | None) -> None:
        source, target = handle.fileno(), self._file.fileno()
        left = size
        kernel = hasattr(os, "copy_file_range")
        while left:
            step = min(left, _COPY_STEP)
            if kernel:
                try:
                    done = os.copy_file_range(source, target, step)
                except OSError as e:
                    if e.errno not in _NO_KERNEL_COPY:
                        raise
                    kernel = False  # both descriptors' offsets are where they were
                    continue
                self._offset += done
            else:
                data = handle.read(min(step, _CHECK_STEP))
                done = len(data)
                self._write(data)
            if done == 0:
                raise StorageError(f"{handle.name}: shorter than the {size} bytes expected")
            left -= done
            if progress is not None:
                progress(done)

    def _check(self, name: str, start: int, size: int, sha256: str) -> None:
        """Hash the archive's bytes of one member and compare them with ``sha256``. The
        range is mapped read-only from the archive file (the page cache still holds it),
        so hashing reads it in place instead of copying it into a buffer first."""
        hasher = hashlib.sha256()
        if size:
            # mmap offsets are multiples of the allocation granularity; members start at
            # multiples of 512 bytes: map from the boundary below and skip the difference.
            skip = start % mmap.ALLOCATIONGRANULARITY
            fd = os.open(self._tmp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                mapped = mmap.mmap(fd, skip + size, access=mmap.ACCESS_READ, offset=start - skip)
            finally:
                os.close(fd)
            with mapped, memoryview(mapped) as whole:
                for at in range(skip, skip + size, _CHECK_STEP):
                    # hashlib releases the GIL for large buffers: checks run in parallel.
                    with whole[at : min(at + _CHECK_STEP, skip + size)] as piece:
                        hasher.update(piece)
        actual = hasher.hexdigest()
        if actual != sha256:
            raise MemberDigestError(name, sha256, actual, f"the bytes copied hash to {actual}")

    def _wait_for_checks(self) -> None:
        """Every background check finished; the first failure raised."""
        try:
            for check in self._checks:
                check.result()
        finally:
            self._checks = []
            if self._checker is not None:
                self._checker.shutdown(wait=True, cancel_futures=True)
                self._checker = None

    def commit(self, before_rename: Callable[[], None] | None = None) -> None:
        """Wait for every check, finish the archive and rename it into place;
        ``before_rename`` runs once the file is complete and checked, and an error it
        raises leaves the temporary file to :meth:`discard` (nothing is renamed)."""
        try:
            self._wait_for_checks()
        except BaseException:
            self.discard()
            raise
        try:
            # End of archive: two zero blocks, then zeros up to a whole record.
            self._write(b"\x00" * (2 * _BLOCK))
            if self._offset % _RECORD:
                self._write(b"\x00" * (_RECORD - self._offset % _RECORD))
            # No fsync: an archive is not registry state and verifies itself (signed
            # listing, sizes, digests), so one cut short by a crash is refused on import,
            # never half trusted; the rename only keeps a reader from seeing it half written.
            self._file.close()
        except OSError as e:
            self.discard()
            raise StorageError(f"cannot write archive {self.path}: {e.strerror or e}") from e
        if before_rename is not None:
            before_rename()
        try:
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.discard()
            raise StorageError(f"cannot write archive {self.path}: {e.strerror or e}") from e

    def discard(self) -> None:
        if self._checker is not None:
            # Checks still running read the temporary file: let them end before it goes.
            self._checker.shutdown(wait=True, cancel_futures=True)
            self._checker = None
        self._checks = []
        self._file.close()
        self._tmp.unlink(missing_ok=True)
