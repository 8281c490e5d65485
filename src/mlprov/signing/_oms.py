"""The OMS v1.0 in-toto statement: built deterministically from a Manifest, parsed back.

Shape (OMS spec v1.0, sections 5 and 6.5-6.6)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": <model name>, "digest": {"sha256": <root digest>}}],
     "predicateType": "https://model_signing/signature/v1.0",
     "predicate": {"resources": [{"name", "algorithm", "digest"}, ...],
                   "serialization": {"method": "files", "hash_type", "allow_symlinks",
                                     "ignore_paths": [...]}}}

Building is deterministic: keys sorted, compact separators, resources in manifest order,
``ignore_paths`` sorted and de-duplicated; the same inputs give the same bytes in any
process. The reference tool's bytes are not deterministic, so parsing never compares
bytes, only the parsed values.

With a shard manifest, ``serialization`` is ``{method: "shards", shard_size: <int>, ...}``
and each resource is named ``"<path>:<start>:<end>"`` (OMS v1.0 section 6.3.2).

A single-file model is written with the one resource named ``"."`` (``".:<start>:<end>"``
for shards), as ``model_signing`` 1.1 writes and expects it; when verifying, resources
named after the file are accepted too (what the spec text asks for; docs/adr/0011).

Statements of model_signing 0.2 (predicate ``https://model_signing/Digests/v0.1``: one
subject per file, no predicate body) are read as a ``files``/``sha256`` manifest, as the
reference verifier reads them (docs/adr/0010); they are never written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.hashing import DEFAULT_IGNORED_NAMES
from mlprov.manifest import (
    HASH_ALGORITHMS,
    Digest,
    FileEntry,
    Manifest,
    find_path_collision,
    parse_shard_name,
)
from mlprov.signing._json import parse_json_object

__all__ = [
    "LEGACY_PREDICATE_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "ModelStatement",
    "Serialization",
    "build_statement",
    "normalise_ignore_path",
    "parse_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: model_signing 0.2 wrote this predicate with per-file subjects; OMS deprecates it.
LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"

_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class Serialization:
    """How the files were enumerated and hashed (the predicate's ``serialization``)."""

    method: str = "files"
    hash_type: str = "sha256"
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()
    #: Bytes per shard; set exactly when ``method`` is ``"shards"``.
    shard_size: int | None = None

    def to_json_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "allow_symlinks": self.allow_symlinks,
            "hash_type": self.hash_type,
            "ignore_paths": list(self.ignore_paths),
            "method": self.method,
        }
        if self.shard_size is not None:
            # OMS v1.0 section 5.2.2: an integer (model_signing 1.1 writes a float).
            value["shard_size"] = self.shard_size
        return value


@dataclass(frozen=True)
class ModelStatement:
    """A parsed OMS statement: what a signature claims about a model."""

    model_name: str
    manifest: Manifest
    serialization: Serialization
    subject_digest: Digest
    #: The exact statement bytes (the DSSE payload).
    payload: bytes = field(repr=False)


def normalise_ignore_path(path: str) -> str:
    """A user ignore path as a canonical relative POSIX path; refuse what OMS forbids.

    OMS v1.0 section 6.2.1: no glob characters, no leading ``/``, no ``..`` components.
    """
    text = path
    if not text or text.startswith("/"):
        raise InvalidInputError(f"ignore path {path!r} must be relative to the model root")
    if _GLOB.intersection(text):
        raise InvalidInputError(f"ignore path {path!r} must not contain glob characters * ? [")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidInputError(f"ignore path {path!r} must stay inside the model folder")
    return "/".join(parts)


def _dumps(value: Any) -> bytes:
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        # OMS v1.0 section 6.1.2 step 7: names must be valid UTF-8.
        raise InvalidInputError(
            f"a file name is not valid UTF-8 and cannot be signed: {e.object[e.start : e.end]!r}"
        ) from e


def build_statement(
    manifest: Manifest,
    model_name: str,
    *,
    ignore_paths: Iterable[str] = (),
    allow_symlinks: bool = False,
) -> bytes:
    """The OMS statement for ``manifest`` as deterministic UTF-8 JSON bytes."""
    if not model_name or not isinstance(model_name, str):
        raise InvalidInputError("the model name in the statement must be a non-empty string")
    if not manifest.files:
        raise InvalidInputError("the model has no files to sign (OMS v1.0 section 6.1)")
    ignored = sorted({*DEFAULT_IGNORED_NAMES, *(normalise_ignore_path(p) for p in ignore_paths)})
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": manifest.digest.hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": [
                {
                    "algorithm": entry.digest.algorithm
                    if manifest.shard_size is None
                    else shard_algorithm(entry.digest.algorithm, manifest.shard_size),
                    "digest": entry.digest.hex,
                    "name": entry.path,
                }
                for entry in manifest.files
            ],
            "serialization": Serialization(
                "files" if manifest.shard_size is None else "shards",
                manifest.algorithm,
                allow_symlinks,
                tuple(ignored),
                manifest.shard_size,
            ).to_json_value(),
        },
    }
    return _dumps(statement)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise MalformedDocumentError(message)


def _parse_serialization(value: object) -> Serialization:
    _require(isinstance(value, dict), "statement predicate.serialization is not an object")
    assert isinstance(value, dict)
    method = value.get("method")
    _require(
        method in ("files", "shards"),
        f"statement serialization.method {str(method)[:100]!r} is not 'files' or 'shards'",
    )
    shard_size: int | None = None
    if method == "files":
        _require("shard_size" not in value, "statement serialization.shard_size is set for 'files'")
    else:
        shard_size = _parse_shard_size(value.get("shard_size"))
    hash_type = value.get("hash_type")
    _require(
        isinstance(hash_type, str) and hash_type in HASH_ALGORITHMS,
        f"statement serialization.hash_type {hash_type!r} is not one of "
        f"{', '.join(HASH_ALGORITHMS)}",
    )
    allow_symlinks = value.get("allow_symlinks")
    _require(
        isinstance(allow_symlinks, bool), "statement serialization.allow_symlinks is not a boolean"
    )
    raw_ignore = value.get("ignore_paths", [])
    _require(
        isinstance(raw_ignore, list) and all(isinstance(p, str) and p for p in raw_ignore),
        "statement serialization.ignore_paths is not a list of non-empty strings",
    )
    assert isinstance(hash_type, str)
    assert isinstance(allow_symlinks, bool)
    return Serialization(str(method), hash_type, allow_symlinks, tuple(raw_ignore), shard_size)


def _parse_shard_size(value: object) -> int:
    """A positive integer; an integral float is read as that integer (docs/adr/0012).

    model_signing 1.1 writes ``shard_size`` through a protobuf Struct, which turns every
    number into a float (``1000000000.0``); the value is the same number of bytes.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        f"statement serialization.shard_size {str(value)[:40]!r} is not a positive integer",
    )
    assert isinstance(value, int)
    return value


def _parse_subject(value: object) -> tuple[str, Digest]:
    _require(isinstance(value, list), "statement subject is not a list")
    assert isinstance(value, list)
    _require(len(value) == 1, f"statement must have exactly one subject, it has {len(value)}")
    subject = value[0]
    _require(isinstance(subject, dict), "statement subject[0] is not an object")
    name = subject.get("name")
    _require(isinstance(name, str) and bool(name), "statement subject[0].name is not a string")
    digests = subject.get("digest")
    _require(isinstance(digests, dict), "statement subject[0].digest is not an object")
    sha256 = digests.get("sha256")
    _require(isinstance(sha256, str), "statement subject[0].digest has no sha256")
    try:
        digest = Digest("sha256", sha256)
    except InvalidInputError as e:
        raise MalformedDocumentError(f"statement subject[0].digest.sha256: {e}") from e
    assert isinstance(name, str)
    return name, digest


def shard_algorithm(hash_type: str, shard_size: int) -> str:
    """The resource ``algorithm`` of a shard, as model_signing 1.1 writes and compares it
    (``sha256-sharded-1000000000``); OMS v1.0 section 6.3.2 says plain ``hash_type``.
    mlprov writes this form so the reference verifier accepts its shard signatures and
    accepts both when verifying (docs/adr/0012)."""
    return f"{hash_type}-sharded-{shard_size}"


def _parse_resources(
    value: object, hash_type: str, limits: Limits, *, shard_size: int | None
) -> list[FileEntry]:
    _require(isinstance(value, list), "statement predicate.resources is not a list")
    assert isinstance(value, list)
    _require(bool(value), "statement predicate.resources is empty (OMS needs at least one file)")
    _require(
        len(value) <= limits.max_manifest_files,
        f"statement lists {len(value)} files, more than the limit of {limits.max_manifest_files}",
    )
    entries: list[FileEntry] = []
    for index, item in enumerate(value):
        _require(isinstance(item, dict), f"statement resource #{index} is not an object")
        name, algorithm, digest = item.get("name"), item.get("algorithm"), item.get("digest")
        _require(isinstance(name, str), f"statement resource #{index} has no name")
        allowed = {hash_type}
        if shard_size is not None:
            allowed.add(shard_algorithm(hash_type, shard_size))
        _require(
            algorithm in allowed,
            f"statement resource {name[:200]!r} uses {str(algorithm)[:100]!r}, serialization "
            f"says {hash_type!r}",
        )
        _require(isinstance(digest, str), f"statement resource {name!r} has no digest")
        assert isinstance(name, str)
        assert isinstance(digest, str)
        size = None
        if shard_size is not None:
            _, start, end = parse_shard_name(name)
            size = end - start
        try:
            entries.append(FileEntry(name, Digest(hash_type, digest), size))
        except MalformedDocumentError:
            raise
        except InvalidInputError as e:
            raise MalformedDocumentError(f"statement resource {name[:200]!r}: {e}") from e
    return entries


def root_digest(digests: Iterable[Digest]) -> Digest:
    """SHA-256 over the raw digests in the given order (OMS v1.0 section 6.5.1)."""
    root = hashlib.sha256()
    for digest in digests:
        root.update(digest.raw)
    return Digest("sha256", root.hexdigest())


def parse_statement(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> ModelStatement:
    """Parse and check an OMS statement; MalformedDocumentError naming the first problem.

    Checks: statement and predicate types, exactly one subject, serialization fields,
    every resource path safe (no ``..``, no absolute path, no duplicates), one algorithm
    for all, and the subject digest equal to the root digest of the resources.
    """
    value = parse_json_object(payload, "signed statement", limits)
    statement_type = value.get("_type")
    _require(
        statement_type == STATEMENT_TYPE,
        f"statement _type {str(statement_type)[:100]!r} is not {STATEMENT_TYPE!r}",
    )
    predicate_type = value.get("predicateType")
    if predicate_type == LEGACY_PREDICATE_TYPE:
        return _parse_legacy_statement(value, payload, limits)
    _require(
        predicate_type == PREDICATE_TYPE,
        f"statement predicateType {str(predicate_type)[:100]!r} is not {PREDICATE_TYPE!r}",
    )
    name, subject_digest = _parse_subject(value.get("subject"))
    predicate = value.get("predicate")
    _require(isinstance(predicate, dict), "statement predicate is not an object")
    assert isinstance(predicate, dict)
    serialization = _parse_serialization(predicate.get("serialization"))
    entries = _parse_resources(
        predicate.get("resources"),
        serialization.hash_type,
        limits,
        shard_size=serialization.shard_size,
    )
    # Manifest refuses duplicate paths, a "." entry with siblings, and shards that are
    # not consecutive shard_size ranges.
    manifest = Manifest.of(serialization.hash_type, entries, shard_size=serialization.shard_size)
    # Paths that are one file on macOS or Windows could not be installed as signed.
    paths = (
        {parse_shard_name(entry.path)[0] for entry in entries}
        if serialization.shard_size is not None
        else [entry.path for entry in entries]
    )
    collision = find_path_collision(paths)
    if collision is not None:
        raise MalformedDocumentError(f"signed statement: {collision.sentence}")
    # The signer computed the root over its own resource order; mlprov and model_signing
    # use path order, the spec text says code-point order. Either binding is accepted.
    in_payload_order = root_digest(entry.digest for entry in entries)
    if subject_digest not in (in_payload_order, manifest.digest):
        raise MalformedDocumentError(
            f"statement subject digest {subject_digest.hex} does not match its resources, "
            f"which hash to {manifest.digest.hex}"
        )
    return ModelStatement(name, manifest, serialization, subject_digest, payload)


#: The model name model_signing 1.1 gives a 0.2 statement, which names no model.
LEGACY_MODEL_NAME = "compat-undefined-not-present"


def _parse_legacy_statement(
    value: dict[str, Any], payload: bytes, limits: Limits
) -> ModelStatement:
    """A model_signing 0.2 ``Digests/v0.1`` statement, read as the reference verifier reads
    it: every subject is a file (``name``, ``digest.sha256``), the manifest is ``files`` +
    ``sha256`` without symlinks or signed ignore paths. There is no root digest to bind.
    """
    subjects = value.get("subject")
    _require(isinstance(subjects, list), "statement subject is not a list")
    assert isinstance(subjects, list)
    _require(bool(subjects), "statement (Digests/v0.1) has no subjects")
    _require(
        len(subjects) <= limits.max_manifest_files,
        f"statement lists {len(subjects)} files, more than the limit of "
        f"{limits.max_manifest_files}",
    )
    entries: list[FileEntry] = []
    for index, subject in enumerate(subjects):
        _require(isinstance(subject, dict), f"statement subject #{index} is not an object")
        name = subject.get("name")
        _require(isinstance(name, str), f"statement subject #{index} has no name")
        digests = subject.get("digest")
        _require(isinstance(digests, dict), f"statement subject #{index} has no digest")
        sha256 = digests.get("sha256")
        _require(isinstance(sha256, str), f"statement subject #{index} has no sha256 digest")
        assert isinstance(name, str)
        assert isinstance(sha256, str)
        try:
            entries.append(FileEntry(name, Digest("sha256", sha256)))
        except MalformedDocumentError:
            raise
        except InvalidInputError as e:
            raise MalformedDocumentError(f"statement subject {name[:200]!r}: {e}") from e
    manifest = Manifest.of("sha256", entries)
    return ModelStatement(LEGACY_MODEL_NAME, manifest, Serialization(), manifest.digest, payload)
