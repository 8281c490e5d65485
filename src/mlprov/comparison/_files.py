"""Two manifests of one algorithm compared file by file: what was added, removed and
changed (sizes and digests), and how many files are the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlprov.errors import InvalidInputError
from mlprov.manifest import FileEntry, Manifest

__all__ = ["FileChange", "FileComparison", "compare_files"]


@dataclass(frozen=True)
class FileChange:
    """One file that differs: ``added`` (only on the right), ``removed`` (only on the
    left) or ``changed`` (both, with different digests)."""

    path: str
    change: str
    left: FileEntry | None
    right: FileEntry | None

    def to_json(self, left_name: str = "left", right_name: str = "right") -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.change,
            left_name: _entry_json(self.left),
            right_name: _entry_json(self.right),
        }


def _entry_json(entry: FileEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"size": entry.size, "digest": str(entry.digest)}


@dataclass(frozen=True)
class FileComparison:
    """Every difference between two manifests, in path order."""

    algorithm: str
    added: tuple[FileChange, ...]
    removed: tuple[FileChange, ...]
    changed: tuple[FileChange, ...]
    unchanged: int

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def changes(self) -> tuple[FileChange, ...]:
        """Every difference, in path order."""
        return tuple(sorted((*self.added, *self.removed, *self.changed), key=lambda c: c.path))

    def summary(self) -> str:
        """``identical (3 files)`` or ``1 added, 0 removed, 2 changed, 5 unchanged``."""
        if self.identical:
            return f"identical ({self.unchanged} files)"
        return (
            f"{len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {self.unchanged} unchanged"
        )

    def to_json(self, left_name: str = "left", right_name: str = "right") -> dict[str, Any]:
        def items(changes: tuple[FileChange, ...]) -> list[dict[str, Any]]:
            return [c.to_json(left_name, right_name) for c in changes]

        return {
            "algorithm": self.algorithm,
            "identical": self.identical,
            "added": items(self.added),
            "removed": items(self.removed),
            "changed": items(self.changed),
            "unchanged": self.unchanged,
        }


def compare_files(left: Manifest, right: Manifest) -> FileComparison:
    """``left`` -> ``right`` file by file. Both must use one digest algorithm (digests of
    different algorithms say nothing about whether bytes are equal)."""
    if left.algorithm != right.algorithm:
        raise InvalidInputError(
            f"cannot compare a {left.algorithm} manifest with a {right.algorithm} one"
        )
    if left.shard_size is not None or right.shard_size is not None:
        raise InvalidInputError("shard manifests are compared by their files' manifests only")
    before, after = left.by_path(), right.by_path()
    added, removed, changed = [], [], []
    unchanged = 0
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old is None:
            added.append(FileChange(path, "added", None, new))
        elif new is None:
            removed.append(FileChange(path, "removed", old, None))
        elif old.digest != new.digest:
            changed.append(FileChange(path, "changed", old, new))
        else:
            unchanged += 1
    return FileComparison(left.algorithm, tuple(added), tuple(removed), tuple(changed), unchanged)
