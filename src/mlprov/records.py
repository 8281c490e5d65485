"""Registry records: what the registry service returns. Strict, frozen pydantic models.

These are views of committed rows; they never carry unverified input. ``to_json()``
gives the plain structure used by ``--json`` output and the server, one shape per record
type (docs/cli.md, "JSON output"): ``stage`` is null for no stage, ``aliases`` is a mapping
alias -> version number on models and versions alike, audit ``details`` is an object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AliasEvent",
    "AliasState",
    "AuditEntry",
    "DatasetRef",
    "Deployment",
    "DeploymentMember",
    "DeploymentVersion",
    "Evidence",
    "FileFormat",
    "LineageEdge",
    "ModelVersion",
    "RegisteredModel",
    "Revocation",
    "Stage",
    "StageEvent",
    "StoredFile",
    "StoredPolicySet",
    "TokenRecord",
    "VersionFile",
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _stage_json(stage: Stage) -> str | None:
    # "No stage" is the absence of one, not a stage named "None".
    return None if stage is Stage.NONE else stage.value


class Stage(str, Enum):
    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, text: str) -> Stage:
        from mlprov.errors import InvalidInputError  # noqa: PLC0415

        for stage in cls:
            if stage.value.lower() == text.strip().lower():
                return stage
        raise InvalidInputError(
            f"unknown stage {text[:40]!r}: use one of {', '.join(s.value for s in cls)}"
        )


class RegisteredModel(_Record):
    name: str
    description: str
    tags: dict[str, str]
    created_at: str
    created_by: str
    latest_version: int | None
    aliases: dict[str, int]


class DatasetRef(_Record):
    """A dataset a version was trained or evaluated on, bound by digest.

    A URI ending in ``/`` names a folder, whose digest is the manifest digest (SHA-256
    over its files' digests in path order, as for a model); any other URI names one file
    or object, whose digest is that of its bytes (``sha256sum``).
    """

    name: str
    uri: str
    digest: str

    @property
    def digest_of(self) -> str:
        """``"manifest"`` for a folder dataset, ``"file"`` for a single file or object."""
        return "manifest" if self.uri.endswith("/") else "file"


class LineageEdge(_Record):
    """``relation`` (parent, base, teacher, ...) to a registered version or an external artefact."""

    relation: str
    target: str  # "name/3" for a registered version, the URI for an external artefact
    digest: str  # the target's artefact digest: what the edge is bound to
    registered: bool


class VersionFile(_Record):
    path: str
    size: int
    digest: str


class FileFormat(_Record):
    """The format of one artefact file, found from its content, never by loading it
    (docs/provenance.md, "Artefact formats").

    ``format`` is one label (``safetensors``, ``onnx``, ``gguf``, ``npy``, ``hdf5``,
    ``zip``, ``pickle``, ``pickle-import``, ``json``, ``text``, ``unknown``);
    ``imports`` are the ``module.name`` globals its pickles import, sorted; ``note``
    says what was scanned, or why something could not be.
    """

    path: str
    format: str
    imports: list[str] = Field(default_factory=list)
    note: str = ""


class Evidence(_Record):
    """A signature or attestation stored with a version (its bytes are fetched apart)."""

    id: int
    kind: str  # signature, provenance, bom, model-card, attestation
    media_type: str
    predicate_type: str
    digest: str  # sha256 of the exact stored bytes
    signer: str
    created_at: str
    created_by: str


class ModelVersion(_Record):
    name: str
    version: int
    digest: str
    hash_algorithm: str
    size: int
    file_count: int
    single_file: bool
    artifact_name: str
    stage: Stage
    params: dict[str, Any]
    metrics: dict[str, Any]
    tags: dict[str, str]
    description: str
    datasets: list[DatasetRef]
    lineage: list[LineageEdge]
    source_uri: str | None
    run_id: str | None
    code_repo: str | None
    code_commit: str | None
    code_dirty: bool | None = None
    builder_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    environment: list[str] | None = None  # "name==version", sorted
    card: dict[str, Any] | None = None  # the user-written model card spec
    #: Each file's format by content, in path order; None for versions registered
    #: before formats were detected (their ML-BOM records none).
    formats: list[FileFormat] | None = None
    created_at: str
    created_by: str
    aliases: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def to_json(self) -> dict[str, Any]:
        value = super().to_json()
        value["stage"] = _stage_json(self.stage)
        # The same type as RegisteredModel.aliases: a version's is a part of its model's.
        value["aliases"] = dict.fromkeys(sorted(self.aliases), self.version)
        return value


class AliasState(_Record):
    name: str
    alias: str
    version: int | None
    generation: int


class AliasEvent(_Record):
    """One move of an alias: set, rollback or delete."""

    name: str
    alias: str
    kind: str
    from_version: int | None
    to_version: int | None
    generation: int
    actor: str
    at: str
    reason: str


class StageEvent(_Record):
    name: str
    version: int
    from_stage: Stage
    to_stage: Stage
    actor: str
    at: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        value = super().to_json()
        value["from_stage"] = _stage_json(self.from_stage)
        value["to_stage"] = _stage_json(self.to_stage)
        return value


class AuditEntry(_Record):
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: str  # canonical JSON text, exactly as hashed
    reason: str
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        import json  # noqa: PLC0415

        value = super().to_json()
        # The hashed text stays in the store (``audit verify`` recomputes the chain from
        # it); readers get the object it encodes.
        value["details"] = json.loads(self.details) if self.details else {}
        return value


class TokenRecord(_Record):
    """A bearer token as stored, without its secret (which is shown once, at creation,
    and never kept: only its SHA-256 is, and that stays in the store)."""

    id: str
    name: str
    role: str  # a mlprov.access.Role value
    models: tuple[str, ...]
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str | None

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        moment = now or datetime.now(timezone.utc)
        return moment >= datetime.fromisoformat(self.expires_at.removesuffix("Z") + "+00:00")

    def state(self, now: datetime | None = None) -> str:
        """``revoked``, ``expired`` or ``active`` (at ``now``, default the current time)."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired(now) else "active"

    def to_json(self) -> dict[str, Any]:
        value = super().to_json()
        value["state"] = self.state()
        return value


@dataclass(frozen=True)
class DeploymentMember:
    """One pinned member: its role, the model version, and the manifest digest the
    deployment version bound it by."""

    role: str
    model: str
    version: int
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "model": self.model,
            "version": self.version,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class DeploymentVersion:
    """An immutable deployment version: its members by role, free metadata, and the
    signed bundle statement (the exact bundle bytes, with their digest and signer)."""

    deployment: str
    version: int
    members: tuple[DeploymentMember, ...]
    meta: dict[str, str]
    bundle_digest: str
    signer: str
    created_at: str
    created_by: str
    bundle: bytes = field(repr=False, default=b"")

    @property
    def ref(self) -> str:
        return f"{self.deployment}/{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "version": self.version,
            "members": [m.to_json() for m in self.members],
            "metadata": dict(self.meta),
            "bundle_digest": self.bundle_digest,
            "signer": self.signer,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class Deployment:
    """A named deployment: its description, its aliases and its highest version."""

    name: str
    description: str
    created_at: str
    created_by: str
    latest_version: int | None
    aliases: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "latest_version": self.latest_version,
            "aliases": dict(sorted(self.aliases.items())),
        }


@dataclass(frozen=True)
class StoredPolicySet:
    """One applied version of the registry's policy set, with its files' exact bytes."""

    version: int
    digest: str
    applied_at: str
    applied_by: str
    reason: str
    files: dict[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class Revocation:
    """What is revoked (``kind`` version, key or identity; ``value`` the ref, key hint or
    identity), why, by whom, and the signed statement saying so."""

    kind: str
    value: str
    reason: str
    at: str
    actor: str
    signer: str
    bundle: bytes = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "reason": self.reason,
            "at": self.at,
            "actor": self.actor,
            "signer": self.signer,
        }


@dataclass(frozen=True)
class StoredFile:
    """One manifest entry of a version and the blob (SHA-256 key) holding its bytes."""

    path: str
    size: int
    digest: str
    blob: str
