"""The pure comparison engine: manifests compared file by file."""

from __future__ import annotations

import pytest

from mlprov.comparison import compare_files
from mlprov.errors import InvalidInputError
from mlprov.manifest import Digest, FileEntry, Manifest


def _manifest(files: dict[str, bytes], algorithm: str = "sha256") -> Manifest:
    return Manifest.of(
        algorithm,
        (FileEntry(p, Digest.of_bytes(b, algorithm), len(b)) for p, b in files.items()),
    )


BASE = {"a.txt": b"a", "b/c.bin": b"cc", "d": b"ddd"}


@pytest.mark.parametrize(
    ("name", "other", "added", "removed", "changed", "unchanged"),
    [
        ("identical", dict(BASE), [], [], [], 3),
        ("one changed", {**BASE, "d": b"DDDD"}, [], [], ["d"], 2),
        ("one added", {**BASE, "e": b""}, ["e"], [], [], 3),
        ("one removed", {"a.txt": b"a", "d": b"ddd"}, [], ["b/c.bin"], [], 2),
        (
            "renamed",
            {"a.txt": b"a", "b/x.bin": b"cc", "d": b"ddd"},
            ["b/x.bin"],
            ["b/c.bin"],
            [],
            2,
        ),
    ],
)
def test_compare_files(
    name: str,
    other: dict[str, bytes],
    added: list[str],
    removed: list[str],
    changed: list[str],
    unchanged: int,
) -> None:
    result = compare_files(_manifest(BASE), _manifest(other))
    assert [c.path for c in result.added] == added, name
    assert [c.path for c in result.removed] == removed, name
    assert [c.path for c in result.changed] == changed, name
    assert result.unchanged == unchanged, name
    assert result.identical == (not (added or removed or changed)), name
    shown = result.to_json("registered", "rebuilt")
    assert [c["path"] for c in shown["changed"]] == changed
    for item in shown["changed"]:
        assert item["registered"]["size"] == len(BASE[item["path"]])
        assert item["rebuilt"]["size"] == len(other[item["path"]])
    for item in shown["added"]:
        assert item["registered"] is None


def test_summary_counts_each_kind() -> None:
    result = compare_files(_manifest(BASE), _manifest({"a.txt": b"A", "z": b"z"}))
    assert result.summary() == "1 added, 2 removed, 1 changed, 0 unchanged"
    assert [c.path for c in result.changes] == ["a.txt", "b/c.bin", "d", "z"]
    assert compare_files(_manifest(BASE), _manifest(BASE)).summary() == "identical (3 files)"


def test_digests_of_different_algorithms_are_not_compared() -> None:
    with pytest.raises(InvalidInputError):
        compare_files(_manifest(BASE), _manifest(BASE, "blake2b"))
