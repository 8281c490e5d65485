"""Public values the registry's use cases take and return (beyond :mod:`mlprov.records`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlprov.records import (
    DatasetRef,
    DeploymentVersion,
    Evidence,
    FileFormat,
    LineageEdge,
    ModelVersion,
    TokenRecord,
)

if TYPE_CHECKING:
    from mlprov.hashing import ModelFile
    from mlprov.manifest import Manifest
    from mlprov.registry.inputs import VersionInput
    from mlprov.signing import SignerIdentity, VerifiedSignature

__all__ = [
    "AliasStatus",
    "Approval",
    "BlobWatch",
    "EvidenceCheck",
    "ImportedArchive",
    "IssuedToken",
    "NewEvidence",
    "PreparedVersion",
    "SignatureCheck",
    "SignedVersion",
    "StoredDocument",
    "StoredFiles",
    "VerifiedDocument",
    "VerifiedInstall",
    "Waiver",
]


@dataclass(frozen=True)
class PreparedVersion:
    """A validated registration, not yet written anywhere.

    ``path`` and ``files`` are where the bytes are read from for a version registered
    from local files. A version registered from blobs already stored has no local files
    (``files`` is empty): its ``formats`` were detected while the blobs were read back,
    digest-checked, and ``artifact_name`` is the name it asked for."""

    name: str
    path: Path
    files: list[ModelFile]
    hash_algorithm: str
    params: str
    metrics: str
    info: VersionInput
    datasets: list[DatasetRef]
    lineage: list[LineageEdge]
    formats: list[FileFormat] | None = None
    artifact_name: str | None = None


@dataclass(frozen=True)
class BlobWatch:
    """What a registration from stored blobs saw before it read them: the highest claim
    number then (``blob_removals``), and when it looked (``time.monotonic``). Its commit
    checks that no claim on ``digests`` came after (ADR 0045, amendment)."""

    digests: tuple[str, ...]
    mark: int
    started: float


@dataclass(frozen=True)
class StoredFiles:
    """The manifest of a prepared version and the blob key of each of its files, with
    the gc lease token of each blob it stored or found stored, or, for blobs it did not
    store itself, what it saw of gc before reading them (ADR 0045)."""

    manifest: Manifest
    blobs: dict[str, str]
    leases: dict[str, str] = field(default_factory=dict)
    watch: BlobWatch | None = None


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


#: How an envelope's signature was checked before it was shown: against the trust the
#: caller gave, only with the key or certificate its bundle carries (integrity, not who
#: is trusted), or not at all (a key-mode bundle names its key but does not carry it).
SignatureCheck = Literal["trusted", "integrity-only", "unchecked"]


@dataclass(frozen=True)
class EvidenceCheck:
    """What was checked about one stored envelope before it is shown: its statement
    names this version (``subject``), the signer the registry recorded is the bundle's,
    and its signature verified as ``signature`` says."""

    #: The version the evidence is about, ``NAME/VERSION``.
    ref: str
    evidence: Evidence
    signer: SignerIdentity
    signature: SignatureCheck
    #: The subject digest that names this version (``sha256:...``): the model digest, or
    #: for an attached attestation possibly the SHA-256 of one of its files.
    subject: str

    @property
    def trusted(self) -> bool:
        return self.signature == "trusted"

    def to_json(self) -> dict[str, Any]:
        return {
            "signer": self.signer.to_json_value(),
            "signature": self.signature,
            "trusted": self.trusted,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class VerifiedDocument:
    """A stored piece of evidence whose envelope was checked (:class:`EvidenceCheck`):
    the exact stored bundle, its signed payload and the statement parsed from it."""

    check: EvidenceCheck
    bundle: bytes = field(repr=False)
    payload: bytes = field(repr=False)
    statement: dict[str, Any] = field(repr=False)

    @property
    def evidence(self) -> Evidence:
        return self.check.evidence


@dataclass(frozen=True)
class IssuedToken:
    """A token just created and its secret: the only time the secret exists outside the
    holder's hands (only its SHA-256 is stored)."""

    token: TokenRecord
    secret: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {**self.token.to_json(), "secret": self.secret}


@dataclass(frozen=True)
class Approval:
    """A stored approval as its statement says (its signature is checked by the gate)."""

    evidence: Evidence
    target: str
    comment: str
    time: str

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "comment": self.comment,
            "time": self.time,
            "signer": self.evidence.signer,
            "digest": self.evidence.digest,
        }


@dataclass(frozen=True)
class AliasStatus:
    """One alias: where it points, and whether that version verifies and passes the
    alias's policy now (with the registry's trust). ``problem`` says why not."""

    model: str
    alias: str
    version: int
    generation: int
    ok: bool
    revoked: bool
    problem: str | None
    #: ``model`` names a deployment (its alias judged by the deployment policies).
    deployment: bool = False

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "generation": self.generation,
            "ok": self.ok,
            "revoked": self.revoked,
            "problem": self.problem,
        }
        if self.deployment:
            value["deployment"] = True
        return value


@dataclass(frozen=True)
class ImportedArchive:
    """What an import did: the archive's digest, the version it carried (as named here;
    None for a deployment archive, whose release is ``deployment``), what it wrote (empty
    for a no-op) and the versions already present."""

    archive_digest: str
    root: ModelVersion | None
    written: tuple[str, ...]
    present: tuple[str, ...]
    origin_registry: str
    origin_version: str
    deployment: DeploymentVersion | None = None

    @property
    def ref(self) -> str:
        """What the archive carried, as named here: ``MODEL/N`` or ``DEPLOYMENT/N``."""
        if self.deployment is not None:
            return self.deployment.ref
        assert self.root is not None
        return self.root.ref

    def to_json(self) -> dict[str, Any]:
        return {
            "archive_digest": self.archive_digest,
            "version": self.root.to_json() if self.root is not None else None,
            "deployment": self.deployment.to_json() if self.deployment is not None else None,
            "written": list(self.written),
            "present": list(self.present),
            "origin_registry": self.origin_registry,
            "origin_version": self.origin_version,
        }


@dataclass(frozen=True)
class VerifiedInstall:
    """What :func:`install_verified` installed: which version, signed by whom, where."""

    version: ModelVersion
    signature: VerifiedSignature = field(repr=False)
    path: Path
    #: The stored signature as written in the folder (``model.sig``, or ``NAME.sig``
    #: beside a single-file model).
    signature_path: Path


@dataclass(frozen=True)
class Waiver:
    """A stored waiver as its statement says (the gate verifies who signed it)."""

    evidence: Evidence
    target: str
    requirements: tuple[str, ...]
    reason: str
    granted: str
    expires: str

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "requirements": list(self.requirements),
            "reason": self.reason,
            "granted": self.granted,
            "expires": self.expires,
            "signer": self.evidence.signer,
            "digest": self.evidence.digest,
        }
