"""Is an installed copy still what was installed? The check behind readiness probes.

``mlprov pull`` and :func:`~mlprov.registry.download.install_verified` write, inside the
staging folder and so atomically with the install, an install record
(``.mlprov-installed.json``, beside ``model.sig``): every installed file with its size
and modification time in nanoseconds, and the SHA-256 of the signature file the install
verified. The record is not part of the model and is never signed; it only remembers
what the install wrote.

* fast (:func:`check_installed` with ``full=False``): the signature file's digest is the
  recorded one and every file's size and mtime are the recorded ones, and no file was
  added or removed. A ``stat`` per file: cheap enough for a readiness probe every few
  seconds. It detects drift (a volume rewritten, a file truncated, touched, added or
  deleted), not someone who rewrites the files, the signature and the record together;
  that needs ``full``, where the digests come from the signature.
* full: every file re-hashed and compared with the manifest the signature file signs
  (and, when the record is there, the signature file's digest with the recorded one).

Exit 0 ready; a change is an :class:`~mlprov.errors.VerificationError` (exit 1) naming
the first changed file in path order; a folder that is not an installed copy is bad
input (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.documents import load_json
from mlprov.errors import (
    InvalidInputError,
    MalformedDocumentError,
    MlprovError,
    NotFoundError,
    StorageError,
    VerificationError,
)

__all__ = [
    "INSTALL_RECORD_NAME",
    "InstalledCopy",
    "check_installed",
    "install_record",
]

#: The install record's file name, beside the signature file in the installed folder.
INSTALL_RECORD_NAME = ".mlprov-installed.json"
_FORMAT_VERSION = 1
_MAX_RECORD_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InstalledCopy:
    """An installed copy that checked out: where, which signature, how many files."""

    path: Path
    signature_path: Path
    files: int
    bytes: int
    full: bool

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "signature": str(self.signature_path),
            "files": self.files,
            "bytes": self.bytes,
            "mode": "full" if self.full else "fast",
            "ready": True,
        }


def _walk(folder: Path) -> dict[str, os.stat_result]:
    """Every entry under ``folder`` but the record, by relative POSIX path, not following
    symlinks; folders are left out (an empty folder carries no bytes)."""
    found: dict[str, os.stat_result] = {}
    for root, dirs, names in os.walk(folder, followlinks=False):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = os.path.join(root, name)
            relative = Path(full).relative_to(folder).as_posix()
            if relative == INSTALL_RECORD_NAME:
                continue
            try:
                found[relative] = os.lstat(full)
            except FileNotFoundError:
                continue
    return found


def install_record(folder: Path, signature_name: str, signature: bytes) -> bytes:
    """The record of an install whose files are all in ``folder`` now (the staging folder
    of the install, before it moves into place: a rename keeps sizes and mtimes)."""
    entries = []
    for relative, info in sorted(_walk(Path(folder)).items()):
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(f"{relative}: not a regular file in the installed copy")
        entries.append({"path": relative, "size": info.st_size, "mtimeNs": info.st_mtime_ns})
    if signature_name not in {e["path"] for e in entries}:
        raise InvalidInputError(f"the installed copy has no signature file {signature_name}")
    document = {
        "version": _FORMAT_VERSION,
        "signature": signature_name,
        "signatureDigest": "sha256:" + hashlib.sha256(signature).hexdigest(),
        "files": entries,
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")


@dataclass(frozen=True)
class _Record:
    signature: str
    signature_digest: str
    files: dict[str, tuple[int, int]]


def _read_record(folder: Path, limits: Limits) -> _Record | None:
    path = folder / INSTALL_RECORD_NAME
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_RECORD_BYTES:
        raise VerificationError(f"{INSTALL_RECORD_NAME}: changed (not a regular record file)")
    try:
        data = path.read_bytes()
        document = load_json(data, f"install record {path}", limits)
    except OSError as e:
        raise StorageError(f"{path}: cannot read: {e.strerror}") from e
    except MalformedDocumentError as e:
        raise VerificationError(f"{INSTALL_RECORD_NAME}: changed (does not parse)") from e
    parsed = _parse_record(document)
    if parsed is None:
        raise VerificationError(f"{INSTALL_RECORD_NAME}: changed (malformed)")
    signature, digest, files = parsed
    if signature not in files or "/" in signature:
        raise VerificationError(f"{INSTALL_RECORD_NAME}: changed (no signature file)")
    return _Record(signature, digest, files)


def _parse_record(document: object) -> tuple[str, str, dict[str, tuple[int, int]]] | None:
    """(signature name, its digest, {path: (size, mtime ns)}), or None if malformed."""
    if not isinstance(document, dict) or document.get("version") != _FORMAT_VERSION:
        return None
    signature, digest, items = (
        document.get("signature"),
        document.get("signatureDigest"),
        document.get("files"),
    )
    if not isinstance(signature, str) or not isinstance(digest, str) or not isinstance(items, list):
        return None
    files: dict[str, tuple[int, int]] = {}
    for item in items:
        if not isinstance(item, dict):
            return None
        path, size, mtime_ns = item.get("path"), item.get("size"), item.get("mtimeNs")
        if not isinstance(path, str) or not isinstance(size, int) or not isinstance(mtime_ns, int):
            return None
        files[path] = (size, mtime_ns)
    return signature, digest, files


def _find_signature(folder: Path, present: dict[str, os.stat_result]) -> str:
    """Without a record: ``model.sig``, or the one ``FILE.sig`` beside a single file."""
    if "model.sig" in present:
        return "model.sig"
    candidates = [p for p in present if p.endswith(".sig") and "/" not in p]
    if len(candidates) == 1:
        return candidates[0]
    raise InvalidInputError(
        f"{folder}: not an installed copy (no {INSTALL_RECORD_NAME} and no model.sig); "
        "install it with `mlprov pull`"
    )


def check_installed(
    folder: Path, *, full: bool = False, limits: Limits = DEFAULT_LIMITS
) -> InstalledCopy:
    """Check an installed copy (module docstring); raise VerificationError naming the
    first changed file, InvalidInputError when ``folder`` is not an installed copy."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise InvalidInputError(f"{folder}: not a folder")
    present = _walk(folder)
    record = _read_record(folder, limits)
    if record is None:
        if not present:
            raise InvalidInputError(f"{folder}: empty, nothing is installed")
        signature_name = _find_signature(folder, present)
        if not full:
            raise VerificationError(
                f"{INSTALL_RECORD_NAME}: removed (or installed without one): "
                "`check-installed --full` checks the files against the signature instead"
            )
    else:
        signature_name = record.signature
    signature_path = folder / signature_name
    signature = _read_signature(signature_path, signature_name, limits)
    if record is not None:
        actual = "sha256:" + hashlib.sha256(signature).hexdigest()
        if actual != record.signature_digest:
            raise VerificationError(
                f"{signature_name}: changed (its digest is {actual}, the install recorded "
                f"{record.signature_digest})"
            )
    for relative, info in sorted(present.items()):
        if not stat.S_ISREG(info.st_mode):
            raise VerificationError(f"{relative}: changed (not a regular file now)")
    if record is not None:
        _compare_with_record(record, present, compare_times=not full)
    total = sum(info.st_size for info in present.values())
    if full:
        _compare_with_signature(folder, present, signature_name, signature, limits)
    return InstalledCopy(folder, signature_path, len(present) - 1, total, full)


def _read_signature(path: Path, name: str, limits: Limits) -> bytes:
    from mlprov.signing import read_signature_file  # noqa: PLC0415

    try:
        return read_signature_file(path, limits)
    except NotFoundError as e:
        raise VerificationError(f"{name}: removed") from e
    except MlprovError as e:
        if isinstance(e, StorageError):
            raise
        raise VerificationError(f"{name}: changed ({e.message})") from e


def _compare_with_record(
    record: _Record, present: dict[str, os.stat_result], *, compare_times: bool
) -> None:
    problems: list[tuple[str, str]] = []
    for path in present:
        if path not in record.files:
            problems.append((path, "added"))
    for path, (size, mtime_ns) in record.files.items():
        info = present.get(path)
        if info is None:
            problems.append((path, "removed"))
        elif info.st_size != size:
            problems.append((path, f"changed (size {info.st_size}, installed {size})"))
        elif compare_times and info.st_mtime_ns != mtime_ns:
            problems.append((path, "changed (modification time differs from the install)"))
    if problems:
        problems.sort()
        path, what = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VerificationError(f"{path}: {what}{more}")


def _compare_with_signature(
    folder: Path,
    present: dict[str, os.stat_result],
    signature_name: str,
    signature: bytes,
    limits: Limits,
) -> None:
    from mlprov import signing  # noqa: PLC0415
    from mlprov.hashing import hash_model  # noqa: PLC0415
    from mlprov.manifest import SINGLE_FILE_NAME  # noqa: PLC0415

    try:
        signed = signing.inspect_signature(signature, limits).statement.manifest
    except MalformedDocumentError as e:
        raise VerificationError(f"{signature_name}: changed (does not parse: {e.message})") from e
    paths = [entry.path for entry in signed.files]
    if paths == [SINGLE_FILE_NAME]:
        # A single-file model is installed as FILE beside FILE.sig.
        model_name = signature_name.removesuffix(".sig")
        others = sorted(p for p in present if p not in (model_name, signature_name))
        if others:
            raise VerificationError(f"{others[0]}: added")
        if model_name not in present:
            raise VerificationError(f"{model_name}: removed")
        actual = hash_model(folder / model_name, signed.algorithm)
    else:
        actual = hash_model(
            folder, signed.algorithm, ignore_paths=[signature_name, INSTALL_RECORD_NAME]
        )
    try:
        signing.match_manifest(signed, actual)
    except VerificationError as e:
        raise VerificationError(f"changed: {e.message}") from e
