"""The blob receiver of ``mlprov pull`` and ``download`` against a server: read on one
thread into buffers that are hashed and written on two others; every byte hashed in
order, the file fsynced, and a failure on either side stops both and reaches the caller
as one error. The body is read through ``read_into`` (here over uneven pieces, as the
httpx fallback reads it: :func:`mlprov.client._download.pieces_reader`)."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.client import _blob_stream
from mlprov.client._blob_stream import receive_blob, write_new
from mlprov.client._download import pieces_reader
from mlprov.errors import EXIT_STORAGE, StorageError


def _pieces(total: int, seed: int = 7) -> Iterator[bytes]:
    """Pieces of uneven sizes (as a socket hands them over), some empty."""
    sizes = [65536, 1, 0, 300_000, 4 * 1024 * 1024 + 3, 12345]
    sent = index = 0
    block = os.urandom(5 * 1024 * 1024)
    while sent < total:
        size = min(sizes[(index + seed) % len(sizes)], total - sent)
        start = (index * 7919) % (len(block) - size) if size else 0
        yield block[start : start + size]
        sent += size
        index += 1


def _blob_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mlprov-blob")]


def test_every_byte_is_written_and_hashed_in_order(tmp_path: Path) -> None:
    total = 3 * _blob_stream._BATCH * _blob_stream._DEPTH + 17
    pieces = list(_pieces(total))
    expected = b"".join(pieces)
    sha256, sha512 = hashlib.sha256(), hashlib.sha512()
    seen: list[int] = []
    target = tmp_path / "sub" / "weights.bin"

    size = receive_blob(pieces_reader(iter(pieces)), target, 0o640, [sha256, sha512], seen.append)

    assert size == total == sum(seen)
    assert target.read_bytes() == expected
    assert sha256.hexdigest() == hashlib.sha256(expected).hexdigest()
    assert sha512.hexdigest() == hashlib.sha512(expected).hexdigest()
    assert target.stat().st_mode & 0o777 == 0o640 & ~_umask()
    assert _blob_threads() == []


def test_an_empty_blob_makes_an_empty_file(tmp_path: Path) -> None:
    hasher = hashlib.sha256()
    assert receive_blob(pieces_reader(iter([])), tmp_path / "empty", 0o644, [hasher]) == 0
    assert (tmp_path / "empty").read_bytes() == b""
    assert hasher.hexdigest() == hashlib.sha256(b"").hexdigest()


def test_a_lost_connection_stops_the_workers_and_is_raised(tmp_path: Path) -> None:
    def cut() -> Iterator[bytes]:
        yield from _pieces(3 * _blob_stream._BATCH)
        raise StorageError("cannot reach the registry server: RemoteProtocolError")

    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(StorageError, match="RemoteProtocolError"):
        receive_blob(pieces_reader(cut()), tmp_path / "cut.bin", 0o644, [hashlib.sha256()])
    assert _blob_threads() == []
    assert len(os.listdir("/proc/self/fd")) == open_before  # the file was closed


def test_a_disk_error_ends_the_read_early(tmp_path: Path) -> None:
    """A real write failure (the file-size limit: EFBIG) becomes one StorageError and
    the response is not read to its end."""
    read = 0
    limit = 2 * _blob_stream._BATCH

    def counted() -> Iterator[bytes]:
        nonlocal read
        for piece in _pieces(40 * _blob_stream._BATCH):
            read += len(piece)
            yield piece

    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        with pytest.raises(StorageError, match=r"big\.bin: cannot write") as caught:
            receive_blob(pieces_reader(counted()), tmp_path / "big.bin", 0o644, [hashlib.sha256()])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert caught.value.exit_code == EXIT_STORAGE
    assert read < 40 * _blob_stream._BATCH
    assert _blob_threads() == []


def test_a_failing_hash_is_raised_and_stops_the_read(tmp_path: Path) -> None:
    class Broken:
        def update(self, data: bytes) -> None:
            raise ValueError("hasher broke")

    with pytest.raises(ValueError, match="hasher broke"):
        receive_blob(
            pieces_reader(_pieces(40 * _blob_stream._BATCH)), tmp_path / "h.bin", 0o644, [Broken()]
        )
    assert _blob_threads() == []


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_bytes(b"keep")
    with pytest.raises(StorageError, match="taken: cannot write"):
        receive_blob(pieces_reader(iter([b"new"])), target, 0o644, [hashlib.sha256()])
    with pytest.raises(StorageError, match="taken: cannot write"):
        write_new(target, [b"new"], 0o644)
    assert target.read_bytes() == b"keep"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
