"""Frozen value objects for digests and manifests: the pure core every other part shares.

A :class:`Manifest` lists every file of a model artefact with its relative POSIX path,
size and digest. Its content model is that of the OpenSSF Model Signing (OMS) "files"
serialization, so the same manifest is what a registry version records and what an OMS
signature covers:

* files are ordered component by component as paths (``a/b`` < ``a-c`` < ``a.d``), the
  order the reference tool ``model_signing`` 1.1 uses (``sorted(..., key=PurePosixPath)``);
* the root digest is SHA-256 over the raw (not hex) per-file digests concatenated in that
  order, whatever the per-file algorithm is (OMS spec v1.0, "subject"; the reference tool
  agrees), so file names are not part of it: the signature over the manifest protects them.

A manifest with a ``shard_size`` is a shard manifest (OMS v1.0 section 6.3.2): each entry
is one byte range of a file, named ``"<path>:<start>:<end>"`` (end exclusive), every range
``shard_size`` bytes long except the last of each file, empty files left out. Entries are
ordered by path (as above), then by start offset as a number, the order the reference tool
writes (the spec text sorts the names as strings; see docs/adr/0011).

Nothing here opens a file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from mlprov.errors import InvalidInputError, MalformedDocumentError

__all__ = [
    "HASH_ALGORITHMS",
    "SINGLE_FILE_NAME",
    "Digest",
    "FileEntry",
    "Manifest",
    "PathCollision",
    "check_relative_path",
    "find_path_collision",
    "parse_shard_name",
    "shard_count",
    "shard_name",
    "shard_ranges",
]

#: Algorithm name -> hex digest length. Names are those of the OMS predicate.
HASH_ALGORITHMS: dict[str, int] = {"sha256": 64, "blake2b": 128, "blake3": 64}

#: The resource name the reference tool (1.1) gives the one file of a single-file model.
SINGLE_FILE_NAME = "."

_HEX = re.compile(r"\A[0-9a-f]+\Z")

# OMS v1.0 section 6.3.2: the byte range is the LAST two colon-separated decimal integers
# (file names may hold colons). Canonical decimals only, so one range has one name.
_SHARD_NAME = re.compile(r"\A(.+):(0|[1-9][0-9]*):(0|[1-9][0-9]*)\Z", re.DOTALL)


@dataclass(frozen=True, order=True)
class Digest:
    """An algorithm and a lower-case hex value; ``str()`` gives ``algorithm:hex``."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        expected = HASH_ALGORITHMS.get(self.algorithm)
        if expected is None:
            raise InvalidInputError(
                f"unsupported digest algorithm {self.algorithm!r}; "
                f"use one of {', '.join(HASH_ALGORITHMS)}"
            )
        if len(self.hex) != expected or not _HEX.match(self.hex):
            raise InvalidInputError(
                f"malformed {self.algorithm} digest {self.hex[:80]!r}: "
                f"expected {expected} lower-case hex characters"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algorithm:hex``."""
        algorithm, sep, value = text.partition(":")
        if not sep:
            raise InvalidInputError(f"malformed digest {text[:80]!r}: expected ALGORITHM:HEX")
        return cls(algorithm, value.lower() if _HEX.match(value.lower()) else value)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, new_hasher(algorithm).update_and_hex(data))

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


class _Hasher:
    """A tiny common face over hashlib and blake3 so callers need not care which."""

    def __init__(self, algorithm: str, *, multithreaded: bool = True) -> None:
        if algorithm == "sha256":
            self._impl: object = hashlib.sha256()
        elif algorithm == "blake2b":
            self._impl = hashlib.blake2b()
        elif algorithm == "blake3":
            import blake3  # noqa: PLC0415 - optional speed path, imported only when asked for

            threads = blake3.blake3.AUTO if multithreaded else 1
            self._impl = blake3.blake3(max_threads=threads)
        else:
            supported = ", ".join(HASH_ALGORITHMS)
            raise InvalidInputError(
                f"unsupported digest algorithm {algorithm!r}; use one of {supported}"
            )
        self.algorithm = algorithm

    def update(self, data: bytes | memoryview) -> None:
        self._impl.update(data)  # type: ignore[attr-defined]

    def hexdigest(self) -> str:
        return str(self._impl.hexdigest())  # type: ignore[attr-defined]

    def update_and_hex(self, data: bytes) -> str:
        self.update(data)
        return self.hexdigest()


def new_hasher(algorithm: str, *, multithreaded: bool = True) -> _Hasher:
    """A streaming hasher for ``algorithm`` (sha256, blake2b or blake3).

    blake3 hashes large updates on every core unless ``multithreaded`` is False (the
    digest is the same either way); the other algorithms use one core regardless.
    """
    return _Hasher(algorithm, multithreaded=multithreaded)


def check_relative_path(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path inside a model folder.

    Refuses what a hostile manifest could use to escape the folder on download or
    verification: absolute paths, ``..`` components, empty components, backslashes, NUL.
    """
    if path == SINGLE_FILE_NAME:
        return path
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise MalformedDocumentError(f"unsafe path {path[:200]!r} in manifest")
    return path


def shard_name(path: str, start: int, end: int) -> str:
    """The resource name of bytes ``[start, end)`` of ``path`` (OMS v1.0 section 6.3.2)."""
    return f"{path}:{start}:{end}"


def parse_shard_name(name: str) -> tuple[str, int, int]:
    """``(path, start, end)`` of a shard resource name; MalformedDocumentError if it is not one.

    The path is checked like any manifest path; ``start < end`` is required.
    """
    match = _SHARD_NAME.match(name)
    if match is None:
        raise MalformedDocumentError(
            f"shard resource {name[:200]!r} is not named '<path>:<start>:<end>'"
        )
    path, start, end = match.group(1), int(match.group(2)), int(match.group(3))
    check_relative_path(path)
    if start >= end:
        raise MalformedDocumentError(f"shard resource {name[:200]!r} is an empty byte range")
    return path, start, end


def shard_ranges(size: int, shard_size: int) -> Iterator[tuple[int, int]]:
    """The ``[start, end)`` ranges of a ``size``-byte file; none for an empty file."""
    for start in range(0, size, shard_size):
        yield start, min(start + shard_size, size)


def shard_count(size: int, shard_size: int) -> int:
    return -(-size // shard_size)


@dataclass(frozen=True)
class PathCollision:
    """Two different manifest paths that name one file where names are normalised or
    case-folded: macOS (APFS, HFS+: Unicode normalisation, and case by default) and
    Windows (NTFS: case). ``first`` sorts before ``second``; ``kind`` says which rule."""

    first: str
    second: str
    kind: str  # "unicode-normalisation" or "case"

    @property
    def sentence(self) -> str:
        how = (
            "only in Unicode normalisation (NFC/NFD)"
            if self.kind == "unicode-normalisation"
            else "only in upper/lower case"
        )
        # !a (ascii): NFC and NFD forms print alike; their escapes show the difference.
        return (
            f"paths {self.first[:200]!a} and {self.second[:200]!a} differ {how}: "
            "such a model cannot be installed faithfully on macOS or Windows"
        )


def find_path_collision(paths: Iterable[str]) -> PathCollision | None:
    """The first two paths (or folders on their way) that collide after NFC normalisation
    or after case folding of the NFC form, or None when all are distinct both ways.

    Folders count too: ``Data/a`` and ``data/b`` land in one folder on a case-insensitive
    file system, and one of them is then installed under a name that was not signed.
    """
    by_nfc: dict[str, str] = {}
    by_folded: dict[str, str] = {}
    for path in sorted(paths):
        parts = path.split("/")
        for end in range(1, len(parts) + 1):
            name = "/".join(parts[:end])
            nfc = unicodedata.normalize("NFC", name)
            known = by_nfc.setdefault(nfc, name)
            if known != name:
                return PathCollision(min(known, name), max(known, name), "unicode-normalisation")
            folded = nfc.casefold()
            known = by_folded.setdefault(folded, name)
            if known != name:
                return PathCollision(min(known, name), max(known, name), "case")
    return None


@dataclass(frozen=True)
class FileEntry:
    """One file of an artefact: relative POSIX path, size in bytes (None if unknown), digest."""

    path: str
    digest: Digest
    size: int | None = None

    def __post_init__(self) -> None:
        check_relative_path(self.path)
        if self.size is not None and self.size < 0:
            raise MalformedDocumentError(f"negative size for {self.path!r}")


def _order_key(entry: FileEntry) -> PurePosixPath:
    return PurePosixPath(entry.path)


def _shard_order_key(entry: FileEntry) -> tuple[PurePosixPath, int, int]:
    path, start, end = parse_shard_name(entry.path)
    return PurePosixPath(path), start, end


def _check_shard_layout(files: tuple[FileEntry, ...], shard_size: int) -> None:
    """Each file's ranges are consecutive from 0, ``shard_size`` long but the last."""
    expected_start: dict[str, int] = {}
    short: set[str] = set()
    for entry in files:
        path, start, end = parse_shard_name(entry.path)
        if path in short or start != expected_start.get(path, 0) or end - start > shard_size:
            raise MalformedDocumentError(
                f"shard {entry.path[:200]!r} does not continue the consecutive "
                f"{shard_size}-byte ranges of {path[:200]!r}"
            )
        if end - start < shard_size:
            short.add(path)
        expected_start[path] = end
    if SINGLE_FILE_NAME in expected_start and len(expected_start) > 1:
        raise MalformedDocumentError("a single-file manifest entry '.' cannot have siblings")


@dataclass(frozen=True)
class Manifest:
    """Every file of an artefact, in OMS order, with the algorithm used for all of them.

    With ``shard_size`` set, every entry is a byte range of a file (a shard manifest).
    """

    algorithm: str
    files: tuple[FileEntry, ...] = field(default_factory=tuple)
    shard_size: int | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in HASH_ALGORITHMS:
            raise InvalidInputError(f"unsupported digest algorithm {self.algorithm!r}")
        if self.shard_size is not None:
            if isinstance(self.shard_size, bool) or self.shard_size < 1:
                raise InvalidInputError(f"shard size {self.shard_size!r} is not a positive integer")
            ordered = tuple(sorted(self.files, key=_shard_order_key))
            _check_shard_layout(ordered, self.shard_size)
        else:
            ordered = tuple(sorted(self.files, key=_order_key))
        seen: set[str] = set()
        for entry in ordered:
            if entry.path in seen:
                raise MalformedDocumentError(f"path {entry.path!r} appears twice in the manifest")
            if entry.digest.algorithm != self.algorithm:
                raise MalformedDocumentError(
                    f"{entry.path!r} uses {entry.digest.algorithm}, the manifest {self.algorithm}"
                )
            seen.add(entry.path)
        if SINGLE_FILE_NAME in seen and len(ordered) > 1:
            raise MalformedDocumentError("a single-file manifest entry '.' cannot have siblings")
        object.__setattr__(self, "files", ordered)

    @classmethod
    def of(
        cls, algorithm: str, files: Iterable[FileEntry], *, shard_size: int | None = None
    ) -> Manifest:
        return cls(algorithm, tuple(files), shard_size)

    def __iter__(self) -> Iterator[FileEntry]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def digest(self) -> Digest:
        """The root digest: SHA-256 over the raw file digests in manifest order (OMS subject)."""
        root = hashlib.sha256()
        for entry in self.files:
            root.update(entry.digest.raw)
        return Digest("sha256", root.hexdigest())

    @property
    def total_size(self) -> int:
        return sum(entry.size or 0 for entry in self.files)

    @property
    def is_single_file(self) -> bool:
        if self.shard_size is not None:
            return {p for p, _, _ in map(parse_shard_name, self.names)} == {SINGLE_FILE_NAME}
        return len(self.files) == 1 and self.files[0].path == SINGLE_FILE_NAME

    @property
    def names(self) -> list[str]:
        """The resource names in order (file paths, or shard names)."""
        return [entry.path for entry in self.files]

    @property
    def file_paths(self) -> list[str]:
        """The paths of the files covered, in order (shards give their file once)."""
        if self.shard_size is None:
            return self.names
        return list(dict.fromkeys(parse_shard_name(name)[0] for name in self.names))

    def by_path(self) -> dict[str, FileEntry]:
        return {entry.path: entry for entry in self.files}

    def compare(self, actual: Manifest) -> list[str]:
        """Differences from this (expected) manifest to ``actual``, one sentence each.

        Empty when both name the same files with the same digests. Sizes are compared
        only where both sides know them.
        """
        problems: list[str] = []
        if self.algorithm != actual.algorithm:
            return [
                f"manifest uses {self.algorithm}, the files were hashed with {actual.algorithm}"
            ]
        expected_files = self.by_path()
        actual_files = actual.by_path()
        for path, entry in expected_files.items():
            other = actual_files.get(path)
            if other is None:
                problems.append(f"{path}: missing")
            elif other.digest != entry.digest:
                problems.append(
                    f"{path}: digest mismatch, expected {entry.digest.hex} got {other.digest.hex}"
                )
        problems.extend(
            f"{path}: extra file not in the manifest"
            for path in actual_files
            if path not in expected_files
        )
        return problems
