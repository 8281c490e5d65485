"""``ArtifactStore.put_chunks`` (what an import streams archive members through): the
bytes become a blob in one pass, and what ``hold`` raises leaves no blob behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlprov.artifacts import ArtifactStore, open_artifact_store
from mlprov.errors import StorageError, VerificationError


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "file":
        return open_artifact_store((tmp_path / "blobs").as_uri())
    return open_artifact_store("memory://", allow_ephemeral=True)


def test_chunks_are_stored_as_one_blob(store: ArtifactStore) -> None:
    chunks = [b"a" * 1000, b"b" * 3, b"", b"c" * 70_000]
    data = b"".join(chunks)
    seen: list[int] = []
    held: list[str] = []
    stored = store.put_chunks(
        iter(chunks), name="w.bin", observe=lambda c: seen.append(len(c)), hold=held.append
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.created
    assert sum(seen) == len(data)
    assert held == [stored.sha256]
    assert store.read_bytes(stored.sha256) == data
    again = store.put_chunks(iter([data]), name="w.bin")
    assert not again.created


def test_what_hold_raises_leaves_no_blob(store: ArtifactStore) -> None:
    def refuse(digest: str) -> None:
        raise VerificationError(f"not the listed bytes: {digest}")

    with pytest.raises(VerificationError):
        store.put_chunks(iter([b"tampered"]), name="w.bin", hold=refuse)
    assert store.digests() == []


def test_many_chunks_written_behind_arrive_whole_and_in_order(tmp_path: Path) -> None:
    # From the second chunk on the file store writes on a thread of its own.
    store = open_artifact_store((tmp_path / "blobs").as_uri())
    chunks = [bytes([i]) * (1 << 20) for i in range(40)]
    stored = store.put_chunks(iter(chunks), name="big.bin")
    assert stored.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert store.read_bytes(stored.sha256) == b"".join(chunks)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_a_failing_write_behind_is_raised_and_leaves_no_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from mlprov.artifacts import _file

    store = open_artifact_store((tmp_path / "blobs").as_uri())
    real = os.write
    written = [0]

    def full_disk(fd: int, data: object) -> int:
        written[0] += 1
        if written[0] == 3:  # the third chunk, on the writing thread
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(_file.os, "write", full_disk)
    with pytest.raises(StorageError) as caught:
        store.put_chunks(iter([b"x" * (1 << 20)] * 10), name="w.bin")
    assert caught.value.message == "storing w.bin: no space left on device"
    monkeypatch.undo()
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert not (tmp_path / "blobs" / "sha256").exists() or not any(
        (tmp_path / "blobs" / "sha256").rglob("*")
    )
