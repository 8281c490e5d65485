"""What a caller gives the registry to record with a version, and its normalisation.

Everything here is checked before any write: a value that fails a check is an
:class:`~mlprov.errors.InvalidInputError` and nothing is stored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlprov.errors import InvalidInputError
from mlprov.manifest import Digest

__all__ = [
    "LINEAGE_RELATIONS",
    "DatasetInput",
    "LineageInput",
    "VersionInput",
    "check_tag",
    "check_tag_changes",
    "json_document",
    "normalised",
]

#: Relations a lineage edge may name (DESIGN.md, "Lineage edge").
LINEAGE_RELATIONS = (
    "parent",
    "base",
    "teacher",
    "adapter-of",
    "merged-from",
    "quantized-from",
)


@dataclass(frozen=True)
class DatasetInput:
    """A dataset named at registration: ``NAME=URI@sha256:HEX``."""

    name: str
    uri: str
    digest: str

    @classmethod
    def parse(cls, text: str) -> DatasetInput:
        name, sep, rest = text.partition("=")
        uri, at, digest = rest.rpartition("@")
        if not sep or not at or not name.strip() or not uri:
            raise InvalidInputError(f"invalid dataset {text[:120]!r}: use NAME=URI@sha256:HEX")
        return cls(name.strip(), uri, str(Digest.parse(digest)))


@dataclass(frozen=True)
class LineageInput:
    """A lineage edge named at registration: a registered ``NAME@VERSION`` (or NAME/3,
    NAME@alias) or an external artefact ``URI@ALGORITHM:HEX``."""

    relation: str
    target: str

    def __post_init__(self) -> None:
        if self.relation not in LINEAGE_RELATIONS:
            raise InvalidInputError(
                f"unknown lineage relation {self.relation!r}: use one of "
                f"{', '.join(LINEAGE_RELATIONS)}"
            )


@dataclass
class VersionInput:
    """Everything recorded with a new version besides its files."""

    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    datasets: list[DatasetInput] = field(default_factory=list)
    lineage: list[LineageInput] = field(default_factory=list)
    source_uri: str | None = None
    run_id: str | None = None
    code_repo: str | None = None
    code_commit: str | None = None
    code_dirty: bool | None = None
    builder_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    environment: list[str] | None = None
    card: dict[str, Any] | None = None


_COMMIT = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")


def normalised(info: VersionInput) -> VersionInput:
    """The canonical form of what a version records, so that every document made from it
    later (provenance, ML-BOM, card) accepts it: subgroup metrics in one flat shape, a
    full commit id, a repository URL without credentials, a sorted environment lock and
    a validated model card."""
    from mlprov import provenance  # noqa: PLC0415 - only when registering

    if info.code_commit is not None and not _COMMIT.match(info.code_commit):
        raise InvalidInputError(
            f"invalid commit {info.code_commit[:80]!r}: give the full lower-case hex "
            "commit id (40 or 64 characters), which provenance binds to"
        )
    environment = (
        provenance.Environment.from_lock(info.environment).lock_lines
        if info.environment is not None
        else None
    )
    card = provenance.ModelCardSpec.parse(info.card).to_json() if info.card is not None else None
    if info.started_at is not None and info.finished_at is not None:
        started = _instant(provenance.format_timestamp(info.started_at, "started"))
        finished = _instant(provenance.format_timestamp(info.finished_at, "finished"))
        if finished < started:
            raise InvalidInputError(
                f"the run finished ({info.finished_at}) before it started ({info.started_at})"
            )
    return dataclasses.replace(
        info,
        metrics=provenance.normalize_metrics(info.metrics, numbers_only=False),
        code_repo=provenance.normalize_repo_url(info.code_repo) or None if info.code_repo else None,
        environment=environment,
        card=card,
    )


def _instant(text: str) -> datetime:
    # format_timestamp gives RFC 3339 UTC with a "Z", which 3.10's fromisoformat cannot read.
    return datetime.fromisoformat(text.removesuffix("Z") + "+00:00")


def json_document(value: Mapping[str, Any], what: str) -> str:
    """Canonical JSON for params/metrics; NaN, infinities and non-JSON values are refused."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping of names to values")

    def check(item: Any, where: str) -> None:
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidInputError(f"{what}: {where} is {item}, which JSON cannot represent")
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(f"{what}: key {key!r} under {where} is not a string")
                check(sub, f"{where}.{key}" if where else key)
        elif isinstance(item, list | tuple):
            for index, sub in enumerate(item):
                check(sub, f"{where}[{index}]")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise InvalidInputError(f"{what}: {where} has unsupported type {type(item).__name__}")

    check(value, "")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_tag(key: str, value: str | None) -> None:
    if not key or len(key) > 256 or any(ch in key for ch in "\x00\n\r"):
        raise InvalidInputError(f"invalid tag key {key[:60]!r}: 1-256 characters, one line")
    if value is not None and (len(value) > 4096 or "\x00" in value):
        raise InvalidInputError(f"tag {key!r}: value too long or contains NUL")


def check_tag_changes(changes: Mapping[str, str | None]) -> None:
    if not changes:
        raise InvalidInputError("nothing to do: give tags to set or remove")
    for key, value in changes.items():
        check_tag(key, value)
