"""Capturing what went into a training run: the IO edge of the provenance documents.

Everything that reads the outside world for provenance lives here, in small explicit
functions, so the document builders stay pure:

* :func:`load_document` / :func:`load_params` / :func:`load_metrics` read a user's JSON or
  YAML file through :mod:`mlprov.documents` (bounded; no aliases, tags or duplicate keys);
* :func:`flatten_params` turns a nested training config into dotted keys;
* :class:`MetricKey`, :func:`parse_metric_flag`, :func:`normalize_metrics` define the one
  metrics shape (below);
* :func:`capture_dataset` hashes a local dataset (a file: its own digest; a folder: the
  manifest digest), or requires the digest of a remote one;
* :func:`detect_git` finds the repository URL (credentials removed), commit and dirty flag;
* :func:`capture_environment` lists the installed Python distributions (the
  "environment lock") and :class:`Environment` digests that list;
* :func:`start_run` / :meth:`RunInfo.finish` record run id, builder id and times.

Metrics shape
-------------
Metrics are a flat mapping of *metric keys* to numbers. A key is a metric name, or a
name with a subgroup (slice) in brackets::

    {"auc": 0.91, "auc[segment=retail]": 0.88, "f1[region=eu,segment=retail]": 0.7}

Inside the brackets are ``factor=value`` pairs separated by commas, sorted by factor in
the canonical form. Two other spellings are accepted and normalised to it:

* a ``subgroups`` object in a metrics file:
  ``{"auc": 0.91, "subgroups": {"segment=retail": {"auc": 0.88}}}``;
* the command-line flag ``--metric auc@segment=retail=0.88`` (``NAME[@SLICE]=VALUE``).

``subgroups`` is therefore a reserved name at the top level of a metrics file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import re
import stat
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mlprov import documents
from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import (
    DigestMismatchError,
    InvalidInputError,
    MalformedDocumentError,
    NotFoundError,
    StorageError,
    UnsafePathError,
)
from mlprov.hashing import hash_file, hash_files, list_model_files
from mlprov.manifest import SINGLE_FILE_NAME, Digest
from mlprov.provenance._statement import check_json_value, format_timestamp
from mlprov.records import DatasetRef

if TYPE_CHECKING:
    from mlprov.provenance._model_card import ModelCardSpec

__all__ = [
    "LOCAL_BUILDER_ID",
    "Environment",
    "GitInfo",
    "MetricKey",
    "Package",
    "RunInfo",
    "capture_dataset",
    "capture_environment",
    "detect_git",
    "flatten_params",
    "load_card",
    "load_document",
    "load_metrics",
    "load_params",
    "normalize_metrics",
    "normalize_repo_url",
    "parse_dataset_spec",
    "parse_metric_flag",
    "start_run",
    "utc_timestamp",
]

#: The builder id used when none is given: "the training host itself said so". A
#: verifier should trust it only together with a signer it trusts for that role.
LOCAL_BUILDER_ID = "https://mlprov.dev/builders/local/v1"

#: Reserved top-level key of a metrics file holding per-subgroup metrics.
SUBGROUPS_KEY = "subgroups"

# -- documents ------------------------------------------------------------------------------


def _read_bounded(source: Path, what: str, limits: Limits) -> bytes:
    """The bytes of a user's document file, refused before reading when too large.

    Opened without blocking (a FIFO named as a params file must not hang the command),
    checked to be a regular file, its size taken from ``fstat``; then at most the limit
    plus one byte is read, so a file that grows after the check is refused too.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(source, flags)
    except FileNotFoundError as e:
        raise NotFoundError(f"{source}: no such {what} file") from e
    except PermissionError as e:
        raise UnsafePathError(f"{source}: permission denied") from e
    except IsADirectoryError as e:
        raise InvalidInputError(f"{source}: is a directory, expected a {what} file") from e
    except OSError as e:
        raise StorageError(f"{source}: cannot read: {e.strerror}") from e
    with os.fdopen(fd, "rb", buffering=0) as stream:
        info = os.fstat(stream.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInputError(f"{source}: is a directory, expected a {what} file")
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{source}: not a regular file, expected a {what} file")
        if info.st_size > limits.max_document_bytes:
            raise MalformedDocumentError(
                f"{source} is {info.st_size} bytes, more than the limit of "
                f"{limits.max_document_bytes} bytes; refused without reading it"
            )
        chunks: list[bytes] = []
        remaining = limits.max_document_bytes + 1
        try:
            while remaining > 0:
                chunk = stream.read(remaining)
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
        except OSError as e:
            raise StorageError(f"{source}: cannot read: {e.strerror}") from e
    return b"".join(chunks)


def load_document(
    path: Path | str,
    *,
    what: str = "document",
    limits: Limits = DEFAULT_LIMITS,
    syntax: str | None = None,
) -> dict[str, Any]:
    """Read a JSON (``.json``) or YAML (``.yaml``/``.yml``) file whose top level is a mapping.

    ``syntax`` ("json" or "yaml") overrides the suffix. Parsed by
    :mod:`mlprov.documents`, so refused with a one-line error, exit 2: other suffixes,
    files over ``limits.max_document_bytes`` (before reading them), invalid UTF-8,
    duplicate keys, NaN/Infinity and numbers that overflow or exceed
    ``limits.max_number_length``, YAML aliases, merge keys, tags and dates, nesting deeper
    than ``limits.max_json_depth``.
    """
    source = Path(path)
    if syntax is None:
        suffix = source.suffix.lower()
        if suffix not in (".json", ".yaml", ".yml"):
            raise InvalidInputError(f"{source}: a {what} file must end in .json, .yaml or .yml")
        syntax = "json" if suffix == ".json" else "yaml"
    data = _read_bounded(source, what, limits)
    if syntax == "json":
        loaded = documents.load_json(data, str(source), limits)
    else:
        loaded = documents.load_yaml(data, str(source), limits)
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise MalformedDocumentError(
            f"{source}: the top level of a {what} file must be a mapping, "
            f"not {type(loaded).__name__}"
        )
    return loaded


def load_params(path: Path | str, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A training config file, nested as written (flatten it with :func:`flatten_params`)."""
    return load_document(path, what="params", limits=limits)


def load_metrics(path: Path | str, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A metrics file, normalised to the flat shape of the module docstring."""
    document = load_document(path, what="metrics", limits=limits)
    try:
        return normalize_metrics(document)
    except InvalidInputError as e:
        raise MalformedDocumentError(f"{path}: {e.message}") from e


def load_card(path: Path | str, *, limits: Limits = DEFAULT_LIMITS) -> ModelCardSpec:
    """A user-written model card file, validated strictly (a misspelt key is an error)."""
    from mlprov.provenance._model_card import ModelCardSpec  # noqa: PLC0415 - avoids a cycle

    return ModelCardSpec.parse(load_document(path, what="model card", limits=limits), str(path))


# -- params -------------------------------------------------------------------------------


def flatten_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys for every leaf: ``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``.

    Lists and empty mappings are leaves. Two paths that flatten to the same key
    (``{"a.b": 1, "a": {"b": 2}}``) are refused rather than one silently winning.
    """
    check_json_value(params, "params")
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, sub in value.items():
                if not key:
                    raise InvalidInputError(f"params: empty key under {prefix or 'the top level'}")
                walk(f"{prefix}.{key}" if prefix else key, sub)
            return
        if prefix in flat:
            raise InvalidInputError(f"params: two entries flatten to the same key {prefix!r}")
        flat[prefix] = value

    for key, value in params.items():
        if not key:
            raise InvalidInputError("params: empty key at the top level")
        walk(key, value)
    return dict(sorted(flat.items()))


# -- metrics ------------------------------------------------------------------------------

_METRIC_NAME = re.compile(r"\A[^\s\[\]=@,]+(?: [^\s\[\]=@,]+)*\Z")
_SLICED_KEY = re.compile(r"\A(?P<name>[^\[\]]+)\[(?P<slice>[^\[\]]+)\]\Z")
_SLICE_PART = re.compile(r"\A(?P<factor>[^\s\[\]=@,]+)=(?P<value>[^\[\]=,]+)\Z")
_INTEGER = re.compile(r"\A[+-]?[0-9]+\Z")


@dataclass(frozen=True, order=True)
class MetricKey:
    """A metric name and the subgroup it was computed on (empty: the whole population)."""

    name: str
    slice: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise InvalidInputError(
                f"invalid metric name {self.name[:60]!r}: no brackets, '=', '@', ',' "
                "or leading/trailing spaces"
            )
        factors = [factor for factor, _ in self.slice]
        if len(set(factors)) != len(factors):
            raise InvalidInputError(f"metric {self.name!r}: a factor appears twice in its slice")
        for factor, value in self.slice:
            if not _SLICE_PART.match(f"{factor}={value}") or value != value.strip():
                raise InvalidInputError(
                    f"metric {self.name!r}: invalid subgroup {factor}={value!r}"
                )
        object.__setattr__(self, "slice", tuple(sorted(self.slice)))

    @classmethod
    def parse(cls, key: str) -> MetricKey:
        """Parse ``auc`` or ``auc[segment=retail,region=eu]``."""
        match = _SLICED_KEY.match(key)
        if match is None:
            return cls(key)
        return cls(match["name"], parse_slice(match["slice"]))

    @property
    def slice_text(self) -> str:
        """``region=eu,segment=retail``; empty for the whole population."""
        return ",".join(f"{factor}={value}" for factor, value in self.slice)

    @property
    def factors(self) -> tuple[str, ...]:
        return tuple(factor for factor, _ in self.slice)

    def __str__(self) -> str:
        return f"{self.name}[{self.slice_text}]" if self.slice else self.name


def parse_slice(text: str) -> tuple[tuple[str, str], ...]:
    """``segment=retail,region=eu`` -> ``(("segment", "retail"), ("region", "eu"))``."""
    pairs = []
    for part in text.split(","):
        match = _SLICE_PART.match(part.strip())
        if match is None:
            raise InvalidInputError(
                f"invalid subgroup {text[:80]!r}: use FACTOR=VALUE[,FACTOR=VALUE...]"
            )
        pairs.append((match["factor"], match["value"].strip()))
    return tuple(pairs)


def _metric_number(text: str, flag: str) -> int | float:
    value = text.strip()
    try:
        number: int | float = int(value) if _INTEGER.match(value) else float(value)
    except ValueError as e:
        raise InvalidInputError(f"metric {flag[:80]!r}: {value[:40]!r} is not a number") from e
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidInputError(f"metric {flag[:80]!r}: {value!r} is not a finite number")
    return number


def parse_metric_flag(text: str) -> tuple[str, int | float]:
    """Parse ``NAME=VALUE`` or ``NAME@FACTOR=VALUE[,FACTOR=VALUE]=VALUE`` into a
    canonical metric key and its number: ``auc@segment=retail=0.88`` ->
    ``("auc[segment=retail]", 0.88)``."""
    left, sep, value = text.rpartition("=")
    if not sep or not left:
        raise InvalidInputError(
            f"invalid metric {text[:80]!r}: use NAME=VALUE or NAME@FACTOR=GROUP=VALUE"
        )
    name, at, slice_text = left.partition("@")
    key = MetricKey(name.strip(), parse_slice(slice_text) if at else ())
    return str(key), _metric_number(value, text)


def _metric_value(key: str, value: Any, numbers_only: bool) -> Any:
    if numbers_only and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise InvalidInputError(
            f"metric {key!r}: value must be a number, not {type(value).__name__}"
        )
    check_json_value(value, f"metric {key!r}")
    return value


def normalize_metrics(metrics: Mapping[str, Any], *, numbers_only: bool = True) -> dict[str, Any]:
    """The canonical flat metrics of the module docstring, keys sorted.

    Accepts flat keys (``auc[segment=retail]``) and a ``subgroups`` object
    (``{"segment=retail": {"auc": 0.88}}``) together; a key given twice is refused.
    Values must be numbers unless ``numbers_only`` is false (then any JSON value).
    """
    flat: dict[str, Any] = {}

    def put(key: MetricKey, value: Any) -> None:
        text = str(key)
        if text in flat:
            raise InvalidInputError(f"metric {text!r} is given twice")
        flat[text] = _metric_value(text, value, numbers_only)

    for name, value in metrics.items():
        if name == SUBGROUPS_KEY:
            if not isinstance(value, Mapping):
                raise InvalidInputError(
                    f"metrics: {SUBGROUPS_KEY!r} must map 'factor=value' to metrics"
                )
            for slice_text, group in value.items():
                if not isinstance(group, Mapping):
                    raise InvalidInputError(
                        f"metrics: {SUBGROUPS_KEY}.{slice_text} must map metric names to numbers"
                    )
                pairs = parse_slice(slice_text)
                for metric, number in group.items():
                    put(MetricKey(metric, pairs), number)
            continue
        put(MetricKey.parse(name), value)
    return dict(sorted(flat.items()))


# -- datasets -----------------------------------------------------------------------------

_DIGEST_SUFFIX = re.compile(r"@(?P<digest>[a-z0-9]+:[0-9a-fA-F]+)\Z")


def _is_remote(location: str) -> bool:
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() != "file"


def parse_dataset_spec(text: str) -> tuple[str, str, str | None]:
    """``NAME=LOCATION[@ALGORITHM:HEX]`` -> (name, location, digest or None).

    ``@`` only starts a digest when what follows looks like one, so ``user@host`` in a
    URI is left alone.
    """
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest:
        raise InvalidInputError(
            f"invalid dataset {text[:120]!r}: use NAME=PATH or NAME=URI@sha256:HEX"
        )
    match = _DIGEST_SUFFIX.search(rest)
    if match is None:
        return name.strip(), rest, None
    return name.strip(), rest[: match.start()], str(Digest.parse(match["digest"]))


def capture_dataset(
    name: str,
    location: str | Path,
    *,
    digest: str | None = None,
    algorithm: str = "sha256",
) -> DatasetRef:
    """A dataset bound by digest.

    A local file (a path or ``file://`` URI) gets its own digest: for SHA-256 what
    ``sha256sum`` prints, the same digest ``NAME=URI@sha256:HEX`` names for the same file
    stored remotely. A local folder is hashed like a model (:func:`mlprov.hashing.hash_model`)
    and gets the manifest digest (SHA-256 over the per-file digests in path order); its URI
    ends in ``/``, which is how the provenance and the ML-BOM tell a manifest digest from a
    file's (:attr:`~mlprov.records.DatasetRef.digest_of`). A given ``digest`` must match
    (:class:`~mlprov.errors.DigestMismatchError`, exit 1: the bytes are not the ones the
    caller vouched for). A remote dataset (any other scheme) cannot be hashed here, so its
    digest must be given.
    """
    if not name or not name.strip():
        raise InvalidInputError("a dataset needs a name")
    text = str(location)
    expected = Digest.parse(digest) if digest is not None else None
    if _is_remote(text):
        if expected is None:
            raise InvalidInputError(
                f"dataset {name!r} at {text[:120]} is remote and cannot be hashed here: "
                "give its digest (NAME=URI@sha256:HEX)"
            )
        return DatasetRef(name=name.strip(), uri=text, digest=str(expected))
    path = Path(unquote(urlsplit(text).path)) if text.lower().startswith("file://") else Path(text)
    files = list_model_files(path)
    if len(files) == 1 and files[0].name == SINGLE_FILE_NAME:
        # One file: its own digest, in the algorithm the caller named if it named one.
        actual, _ = hash_file(files[0].path, expected.algorithm if expected else algorithm)
        uri = path.resolve().as_uri()
        what = "file digest (what sha256sum prints)"
    else:
        actual = hash_files(files, algorithm).digest
        uri = path.resolve().as_uri() + "/"
        what = "folder manifest digest (SHA-256 over its files' digests in path order)"
    if expected is not None and expected != actual:
        raise DigestMismatchError(
            f"dataset {name!r} at {path}: expected {expected}, its {what} is {actual}"
        )
    return DatasetRef(name=name.strip(), uri=uri, digest=str(actual))


# -- git ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitInfo:
    """Where the training code came from: repository URL (no credentials), commit, and
    whether the checkout had uncommitted changes (then the commit does not describe
    the code that ran)."""

    commit: str
    dirty: bool
    repo_url: str | None = None


_SCP_LIKE = re.compile(r"\A(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>[^/].*|/.*)\Z")


def normalize_repo_url(url: str) -> str:
    """A repository URL safe to publish: user info (tokens), query and fragment removed.

    ``https://x-access-token:SECRET@github.com/o/r.git`` -> ``https://github.com/o/r.git``;
    scp-like ``git@github.com:o/r.git`` -> ``ssh://github.com/o/r.git``. Local paths are
    kept as they are.
    """
    text = url.strip()
    if "://" not in text:
        match = _SCP_LIKE.match(text)
        if match is None or "/" in match["host"]:
            return text
        path = match["path"] if match["path"].startswith("/") else "/" + match["path"]
        return f"ssh://{match['host']}{path}"
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _git(args: Sequence[str], cwd: Path, executable: str) -> str | None:
    env = {
        key: value
        for key, value in os.environ.items()
        # The path given decides the repository, not a GIT_DIR inherited from a hook.
        if key not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CEILING_DIRECTORIES")
    }
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
    try:
        result = subprocess.run(
            [executable, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # git absent, not executable, or hung: no code information
    if result.returncode != 0:
        return None
    return result.stdout


def detect_git(
    path: Path | str = ".", *, include_untracked: bool = True, git: str = "git"
) -> GitInfo | None:
    """The checkout containing ``path``, or None when git is absent, ``path`` is not in
    a repository, or the repository has no commit yet.

    ``dirty`` is true when tracked files differ from the commit, or (with
    ``include_untracked``) when files that are neither tracked nor ignored exist.
    """
    where = Path(path)
    if not where.is_dir():
        where = where.parent
    commit = _git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], where, git)
    if commit is None or not commit.strip():
        return None
    untracked = "normal" if include_untracked else "no"
    status = _git(["status", "--porcelain", f"--untracked-files={untracked}"], where, git)
    if status is None:
        return None
    remote = _git(["config", "--get", "remote.origin.url"], where, git)
    return GitInfo(
        commit=commit.strip(),
        dirty=bool(status.strip()),
        repo_url=normalize_repo_url(remote) if remote and remote.strip() else None,
    )


# -- environment --------------------------------------------------------------------------

_DIST_NAME = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\Z")


def _normalize_name(name: str) -> str:
    # PEP 503 normalisation: what pip and package URLs (pkg:pypi) compare.
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, order=True)
class Package:
    """One installed distribution: PEP 503 normalised name and version."""

    name: str
    version: str

    def __post_init__(self) -> None:
        if not _DIST_NAME.match(self.name):
            raise InvalidInputError(f"invalid distribution name {self.name[:80]!r}")
        if not self.version or any(ch.isspace() for ch in self.version):
            raise InvalidInputError(f"{self.name}: invalid version {self.version[:40]!r}")
        object.__setattr__(self, "name", _normalize_name(self.name))


@dataclass(frozen=True)
class Environment:
    """The Python environment of a run: distributions sorted by name, each once.

    Its *lock* is the text ``name==version\\n`` per distribution in that order, and
    :attr:`digest` is the SHA-256 of the lock's UTF-8 bytes: what SLSA provenance
    records as a resolved dependency.
    """

    packages: tuple[Package, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        by_name: dict[str, Package] = {}
        for package in self.packages:
            known = by_name.get(package.name)
            if known is not None and known.version != package.version:
                raise InvalidInputError(
                    f"distribution {package.name} is listed as {known.version} "
                    f"and {package.version}"
                )
            by_name[package.name] = package
        object.__setattr__(self, "packages", tuple(sorted(by_name.values())))

    @classmethod
    def of(cls, packages: Mapping[str, str] | Iterable[tuple[str, str]]) -> Environment:
        pairs = packages.items() if isinstance(packages, Mapping) else packages
        return cls(tuple(Package(name, version) for name, version in pairs))

    @classmethod
    def from_lock(cls, lines: Iterable[str]) -> Environment:
        """Parse ``name==version`` lines (what :attr:`lock_lines` gives and a version records)."""
        pairs = []
        for line in lines:
            name, sep, version = line.strip().partition("==")
            if not sep:
                raise InvalidInputError(f"environment lock line {line[:80]!r}: use NAME==VERSION")
            pairs.append((name, version))
        return cls.of(pairs)

    @property
    def lock_lines(self) -> list[str]:
        return [f"{p.name}=={p.version}" for p in self.packages]

    @property
    def lock_text(self) -> str:
        return "".join(f"{p.name}=={p.version}\n" for p in self.packages)

    @property
    def digest(self) -> Digest:
        return Digest("sha256", hashlib.sha256(self.lock_text.encode("utf-8")).hexdigest())


def capture_environment(paths: Sequence[str] | None = None) -> Environment:
    """The distributions importable from ``paths`` (default ``sys.path``).

    When a name is installed twice (shadowed), the one found first on the path is the
    one Python imports, so that one is kept. Distributions without a usable name or
    version (broken metadata) are skipped.
    """
    found: dict[str, Package] = {}
    found_dists = (
        importlib.metadata.distributions(path=list(paths))
        if paths is not None
        else importlib.metadata.distributions()
    )
    for dist in found_dists:
        name = dist.metadata["Name"] if dist.metadata is not None else None
        version = dist.version
        if not name or not version:
            continue
        try:
            package = Package(name, version)
        except InvalidInputError:
            continue
        found.setdefault(package.name, package)
    return Environment(tuple(found.values()))


# -- run ----------------------------------------------------------------------------------


def utc_timestamp(at: datetime | None = None) -> str:
    """RFC 3339 UTC text for ``at`` (default: now), to the second."""
    moment = at if at is not None else datetime.now(timezone.utc)
    return format_timestamp(moment.replace(microsecond=0))


@dataclass(frozen=True)
class RunInfo:
    """One training run: its id, who ran it (builder id, a URI) and when."""

    run_id: str
    builder_id: str
    started_on: str
    finished_on: str | None = None

    def __post_init__(self) -> None:
        if not self.run_id.strip():
            raise InvalidInputError("a run id cannot be empty")
        if not self.builder_id.strip():
            raise InvalidInputError("a builder id cannot be empty")
        object.__setattr__(self, "started_on", format_timestamp(self.started_on, "started"))
        if self.finished_on is not None:
            finished = format_timestamp(self.finished_on, "finished")
            if datetime.fromisoformat(finished) < datetime.fromisoformat(self.started_on):
                raise InvalidInputError(
                    f"run {self.run_id}: finished ({finished}) before it started "
                    f"({self.started_on})"
                )
            object.__setattr__(self, "finished_on", finished)

    def finish(self, at: datetime | None = None) -> RunInfo:
        """This run, finished ``at`` (default: now)."""
        return replace(self, finished_on=utc_timestamp(at))


def start_run(
    *, run_id: str | None = None, builder_id: str | None = None, at: datetime | None = None
) -> RunInfo:
    """A run starting ``at`` (default: now). The run id defaults to a random UUID, the
    builder id to ``$MLPROV_BUILDER_ID``, else :data:`LOCAL_BUILDER_ID`."""
    return RunInfo(
        run_id=run_id or str(uuid.uuid4()),
        builder_id=builder_id or os.environ.get("MLPROV_BUILDER_ID") or LOCAL_BUILDER_ID,
        started_on=utc_timestamp(at),
    )
