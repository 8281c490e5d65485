"""in-toto Statement v1 as typed models, and the one deterministic JSON serialisation.

Every document mlprov signs is produced here as bytes that depend only on the inputs:

* object keys sorted, separators ``(",", ":")``, UTF-8 without ``\\u`` escapes;
* integers stay integers (``3`` never becomes ``3.0``, unlike protobuf ``Struct``);
* floats are written with Python's shortest round-trip ``repr`` (stable across
  processes and platforms since Python 3.1);
* NaN, infinities, non-string keys and values JSON cannot hold are refused
  (:class:`~mlprov.errors.InvalidInputError`), never written as something a peer parser
  would read differently.

The models follow the in-toto Attestation Framework v1 (``spec/v1/statement.md`` and
``spec/v1/resource_descriptor.md``). They are for statements mlprov *writes*: strict
(``extra="forbid"``) and frozen. Nothing here opens a file.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlprov.canonical import canonical_json, check_json_value
from mlprov.errors import InvalidInputError
from mlprov.manifest import Digest

__all__ = [
    "STATEMENT_TYPE",
    "ResourceDescriptor",
    "Statement",
    "canonical_json",
    "check_json_value",
    "digest_set",
    "format_timestamp",
]

#: in-toto Statement v1 ``_type`` (spec/v1/statement.md).
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

# in-toto digest set keys are lower-case algorithm names, or the registered
# camel-case ones such as gitCommit (spec/v1/digest_set.md).
_DIGEST_KEY = re.compile(r"\A[a-z][A-Za-z0-9_]*\Z")
_HEX = re.compile(r"\A[0-9a-f]+\Z")


def format_timestamp(value: datetime | str, what: str = "timestamp") -> str:
    """RFC 3339 in UTC with a ``Z``: ``2026-01-02T03:04:05Z``, or with microseconds
    when there are any (``...05.123456Z``). Naive datetimes are refused, not guessed."""
    if isinstance(value, str):
        text = value.strip()
        # Python 3.10's fromisoformat does not read the "Z" suffix RFC 3339 allows.
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as e:
            raise InvalidInputError(
                f"{what}: {value[:60]!r} is not an RFC 3339 timestamp "
                "(use e.g. 2026-01-02T03:04:05Z)"
            ) from e
    else:
        parsed = value
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInputError(f"{what}: {str(value)[:60]!r} has no time zone; give UTC (Z)")
    utc = parsed.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def digest_set(digest: Digest | str) -> dict[str, str]:
    """An in-toto digest set ``{algorithm: hex}`` for an mlprov digest (``sha256:...``).

    The algorithm names of :data:`mlprov.manifest.HASH_ALGORITHMS` are in-toto's own
    (``blake2b`` is BLAKE2b-512 in both), so they map one to one.
    """
    parsed = Digest.parse(digest) if isinstance(digest, str) else digest
    return {parsed.algorithm: parsed.hex}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)

    def to_json(self) -> dict[str, Any]:
        """The plain JSON structure (camel-case names, absent fields left out)."""
        return self.model_dump(mode="python", by_alias=True, exclude_none=True)


class ResourceDescriptor(_Model):
    """in-toto ResourceDescriptor v1: at least one of ``uri``, ``digest``, ``content``."""

    name: str | None = None
    uri: str | None = None
    digest: dict[str, str] | None = None
    content: str | None = None  # base64, as the spec's JSON mapping of bytes
    download_location: str | None = Field(default=None, alias="downloadLocation")
    media_type: str | None = Field(default=None, alias="mediaType")
    annotations: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> ResourceDescriptor:
        if self.uri is None and not self.digest and self.content is None:
            raise InvalidInputError(
                f"resource descriptor {self.name or ''!r} needs a uri, a digest or content"
            )
        for key, value in (self.digest or {}).items():
            if not _DIGEST_KEY.match(key) or not value or not _HEX.match(value):
                raise InvalidInputError(
                    f"resource descriptor {self.name or self.uri or ''!r}: digest "
                    f"{key!r}: {value[:80]!r} is not an algorithm and lower-case hex"
                )
        if self.annotations is not None:
            check_json_value(self.annotations, "annotations")
        return self


class Statement(_Model):
    """in-toto Statement v1: subjects (each with a digest), a predicate type, a predicate."""

    type: str = Field(default=STATEMENT_TYPE, alias="_type")
    subject: tuple[ResourceDescriptor, ...]
    predicate_type: str = Field(alias="predicateType")
    predicate: dict[str, Any]

    @model_validator(mode="after")
    def _check(self) -> Statement:
        if self.type != STATEMENT_TYPE:
            raise InvalidInputError(f"statement _type must be {STATEMENT_TYPE}")
        if not self.subject:
            raise InvalidInputError("a statement needs at least one subject")
        for item in self.subject:
            if not item.digest:
                raise InvalidInputError(f"subject {item.name or ''!r} has no digest")
        if not self.predicate_type:
            raise InvalidInputError("a statement needs a predicate type")
        check_json_value(self.predicate, "predicate")
        return self

    def to_bytes(self) -> bytes:
        """The statement's deterministic bytes: what is put in a DSSE envelope and signed."""
        return canonical_json(self.to_json(), "statement")
