"""Public values the registry's use cases take and return (beyond :mod:`mlprov.records`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.records import DatasetRef, Evidence, LineageEdge, ModelVersion

if TYPE_CHECKING:
    from mlprov.hashing import ModelFile
    from mlprov.manifest import Manifest
    from mlprov.registry.inputs import VersionInput
    from mlprov.signing import SignerIdentity

__all__ = [
    "NewEvidence",
    "PreparedVersion",
    "SignedVersion",
    "StoredDocument",
    "StoredFiles",
]


@dataclass(frozen=True)
class PreparedVersion:
    """A validated registration, not yet written anywhere."""

    name: str
    path: Path
    files: list[ModelFile]
    hash_algorithm: str
    params: str
    metrics: str
    info: VersionInput
    datasets: list[DatasetRef]
    lineage: list[LineageEdge]


@dataclass(frozen=True)
class StoredFiles:
    """The manifest of a prepared version and the blob key of each of its files."""

    manifest: Manifest
    blobs: dict[str, str]


@dataclass(frozen=True)
class NewEvidence:
    """A signature or attestation to store with a version: the exact signed bytes."""

    kind: str
    media_type: str
    predicate_type: str
    content: bytes = field(repr=False)
    signer: str


@dataclass(frozen=True)
class SignedVersion:
    """A version registered with its signature."""

    version: ModelVersion
    signature_path: Path | None
    signer: SignerIdentity
    bundle: bytes


@dataclass(frozen=True)
class StoredDocument:
    """One piece of evidence: its record, the exact stored bundle, and its statement."""

    evidence: Evidence
    bundle: bytes = field(repr=False)
    payload: bytes = field(repr=False)
    statement: dict[str, Any] = field(repr=False)
