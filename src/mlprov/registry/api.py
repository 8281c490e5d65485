""":class:`RegistryApi`: what a caller may ask of a registry, wherever it is.

Two implementations: :class:`mlprov.registry.Registry` (the stores opened in this
process) and :class:`mlprov.client.HttpRegistry` (a ``mlprov serve`` reached over
HTTP). The CLI and :func:`mlprov.connect` hand out a ``RegistryApi``, so a command
written against it works in both modes with the same results, errors and exit codes.
mypy checks that both classes satisfy it (the assertions at the end of
``mlprov.registry`` and ``mlprov.client``).

Only what both can do with the same meaning is here, audit checkpoints included (over
HTTP the client signs the head it recomputed and the server records the checkpoint:
ADR 0055). What needs the stores themselves (tokens, webhooks, ``verify`` with the
registry's trust) stays on ``Registry``; the CLI refuses those commands against a
server in one line (docs/client.md). ``verify_version``, ``verified_evidence``
and ``verified_document`` check over HTTP what the server sends, here, against the
trust the caller gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlprov.lineage import LineageGraph
from mlprov.manifest import Manifest
from mlprov.records import (
    AliasEvent,
    AliasState,
    AuditEntry,
    Deployment,
    DeploymentVersion,
    Evidence,
    ModelVersion,
    RegisteredModel,
    Revocation,
    Stage,
    StageEvent,
    StoredFile,
    StoredPolicySet,
)
from mlprov.refs import ModelRef
from mlprov.registry.inputs import VersionInput
from mlprov.registry.types import (
    AliasStatus,
    Approval,
    EvidenceCheck,
    ImportedArchive,
    SignedVersion,
    VerifiedDocument,
    VerifiedInstall,
    Waiver,
)

if TYPE_CHECKING:
    from mlprov.registry.archive_writing import ExportedArchive
    from mlprov.signing import Signer, Trust, VerificationReport

__all__ = ["ProgressCallback", "RegistryApi"]

ProgressCallback = Callable[[int], None]


class RegistryApi(Protocol):
    """The registry's API, implemented locally and over HTTP (module docstring)."""

    @property
    def actor(self) -> str: ...

    def close(self) -> None: ...

    # -- models ------------------------------------------------------------------------

    def create_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel: ...

    def get_model(self, name: str) -> RegisteredModel: ...

    def list_models(
        self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None
    ) -> list[RegisteredModel]: ...

    def tag_model(
        self, name: str, changes: Mapping[str, str | None], *, reason: str = ""
    ) -> RegisteredModel: ...

    def describe_model(self, name: str, description: str) -> RegisteredModel: ...

    # -- versions ----------------------------------------------------------------------

    def get_version(self, ref: ModelRef | str) -> ModelVersion: ...

    def resolve(self, ref: ModelRef | str) -> ModelVersion: ...

    def list_versions(self, name: str) -> list[ModelVersion]: ...

    def manifest(self, ref: ModelRef | str) -> Manifest: ...

    def version_files(self, ref: ModelRef | str) -> list[StoredFile]: ...

    def tag_version(
        self, ref: ModelRef | str, changes: Mapping[str, str | None], *, reason: str = ""
    ) -> ModelVersion: ...

    def describe_version(self, ref: ModelRef | str, description: str) -> ModelVersion: ...

    def register(
        self,
        path: Path,
        name: str,
        info: VersionInput | None = None,
        *,
        hash_algorithm: str = "sha256",
        ignore_paths: Sequence[str | Path] = (),
        allow_symlinks: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ModelVersion: ...

    # -- signatures and evidence -------------------------------------------------------

    def sign_and_register(
        self,
        path: Path,
        name: str,
        signer: Signer,
        info: VersionInput | None = None,
        *,
        with_documents: bool = True,
        **options: Any,
    ) -> SignedVersion: ...

    def signature_of(self, ref: ModelRef | str) -> bytes: ...

    def evidence(self, ref: ModelRef | str, *, kind: str | None = None) -> list[Evidence]: ...

    def evidence_content(self, ref: ModelRef | str, digest: str) -> bytes: ...

    def verify_version(
        self,
        ref: ModelRef | str,
        trust: Trust,
        *,
        path: Path | None = None,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> VerificationReport: ...

    def verified_evidence(
        self, ref: ModelRef | str, trust: Trust | None = None, *, now: datetime | None = None
    ) -> list[EvidenceCheck]: ...

    def verified_document(
        self,
        ref: ModelRef | str,
        kind: str,
        trust: Trust | None = None,
        *,
        now: datetime | None = None,
    ) -> VerifiedDocument: ...

    def lineage(
        self, ref: ModelRef | str, *, descendants: bool = False, max_depth: int | None = None
    ) -> LineageGraph: ...

    def attest(
        self, ref: ModelRef | str, predicate_type: str, predicate: dict[str, Any], signer: Signer
    ) -> Evidence: ...

    def attach(
        self, ref: ModelRef | str, bundle: bytes, trust: Trust, **options: Any
    ) -> Evidence: ...

    def sign_version(self, ref: ModelRef | str, signer: Signer) -> Evidence: ...

    def approve(
        self, ref: ModelRef | str, target: str, signer: Signer, *, comment: str = ""
    ) -> Evidence: ...

    def approvals(self, ref: ModelRef | str, *, target: str | None = None) -> list[Approval]: ...

    def waive(
        self,
        ref: ModelRef | str,
        target: str,
        signer: Signer,
        *,
        reason: str,
        expires_in: timedelta,
        requirements: tuple[str, ...] = (),
    ) -> Evidence: ...

    def waivers(self, ref: ModelRef | str) -> list[Waiver]: ...

    def revoke(
        self,
        *,
        reason: str,
        signer: Signer,
        version: ModelRef | str | None = None,
        key_pem: bytes | None = None,
        identity: str | None = None,
    ) -> Revocation: ...

    def revocations(self) -> list[Revocation]: ...

    # -- policy and status -------------------------------------------------------------

    def status(self) -> list[AliasStatus]: ...

    def apply_policy(self, files: Mapping[str, bytes], *, reason: str = "") -> StoredPolicySet: ...

    def policy(self, version: int | None = None) -> StoredPolicySet | None: ...

    # -- aliases and stages ------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> AliasEvent | None: ...

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> AliasEvent: ...

    def get_alias(self, name: str, alias: str) -> AliasState: ...

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]: ...

    def set_stage(
        self, name: str, version: int, stage: Stage | str, *, reason: str = ""
    ) -> list[StageEvent]: ...

    def stage_history(self, name: str) -> list[StageEvent]: ...

    # -- deployments -------------------------------------------------------------------

    def create_deployment(self, name: str, *, description: str = "") -> Deployment: ...

    def get_deployment(self, name: str) -> Deployment: ...

    def list_deployments(self) -> list[Deployment]: ...

    def is_deployment(self, name: str) -> bool: ...

    def deployment_version(self, ref: ModelRef | str) -> DeploymentVersion: ...

    def deployment_versions(self, name: str) -> list[DeploymentVersion]: ...

    def release_deployment(
        self,
        name: str,
        members: Mapping[str, ModelRef | str],
        signer: Signer,
        *,
        metadata: Mapping[str, str] | None = None,
        reason: str = "",
    ) -> DeploymentVersion: ...

    # -- download and audit ------------------------------------------------------------

    def download(
        self, ref: ModelRef | str, to: Path, *, progress: ProgressCallback | None = None
    ) -> ModelVersion: ...

    def install_verified(
        self,
        ref: ModelRef | str,
        to: Path,
        trust: Trust,
        *,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
        sync: bool = True,
    ) -> VerifiedInstall: ...

    def export(
        self,
        ref: ModelRef | str,
        to: Path,
        signer: Signer,
        *,
        with_ancestors: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ExportedArchive: ...

    def import_archive(self, path: Path, *, rename: str | None = None) -> ImportedArchive: ...

    def promote(
        self,
        ref: ModelRef | str,
        to: RegistryApi,
        signer: Signer,
        *,
        alias: str | None = None,
        with_ancestors: bool = False,
        reason: str = "",
    ) -> ImportedArchive: ...

    def audit_log(
        self, *, subject: str | None = None, limit: int | None = None
    ) -> list[AuditEntry]: ...

    def audit_chain(self) -> tuple[int, str, list[AuditEntry]]: ...

    def verify_audit(
        self, *, checkpoint: bytes | None = None, trust: Trust | None = None, **options: Any
    ) -> int: ...

    def checkpoint_audit(self, signer: Signer) -> bytes: ...
