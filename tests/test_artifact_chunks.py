"""``ArtifactStore.put_chunks`` (what an import streams archive members through): the
bytes become a blob in one pass, and what ``hold`` raises leaves no blob behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlprov.artifacts import ArtifactStore, open_artifact_store
from mlprov.errors import VerificationError


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
