"""The :class:`Registry` facade (see :mod:`mlprov.registry`): it only wires, each method
one use case in its own module of this package."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.access import Principal, Role
from mlprov.artifacts import ArtifactStore, StoredBlob, open_artifact_store
from mlprov.config import Limits, RegistryConfig
from mlprov.events import WebhookSettings
from mlprov.lineage import LineageGraph
from mlprov.manifest import Manifest
from mlprov.records import (
    AliasEvent,
    AliasState,
    AuditEntry,
    Evidence,
    LineageEdge,
    ModelVersion,
    RegisteredModel,
    Stage,
    StageEvent,
    TokenRecord,
)
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext
from mlprov.registry.api import RegistryApi
from mlprov.registry.gate import Gate, OpenGate, PolicyGate
from mlprov.registry.gc import DEFAULT_GRACE
from mlprov.registry.inputs import LineageInput, VersionInput
from mlprov.registry.tokens import TokenCache
from mlprov.registry.types import (
    EvidenceCheck,
    IssuedToken,
    PreparedVersion,
    SignedVersion,
    StoredDocument,
    StoredFiles,
    VerifiedDocument,
)
from mlprov.store import MetadataStore, open_metadata_store
from mlprov.store.deployments import Deployment, DeploymentVersion
from mlprov.store.policies import StoredPolicySet
from mlprov.store.revocations import Revocation
from mlprov.store.versions import StoredFile
from mlprov.store.webhooks import OutboxEvent, WebhookDelivery, WebhookSubscription

if TYPE_CHECKING:
    from mlprov.comparison import DeploymentDiff, VersionDiff
    from mlprov.registry.approvals import Approval
    from mlprov.registry.archive_writing import ExportClosure, ExportedArchive
    from mlprov.registry.deployment_judge import PulledDeployment
    from mlprov.registry.download import VerifiedInstall
    from mlprov.registry.gc import GcReport
    from mlprov.registry.importing import ImportedArchive
    from mlprov.registry.policies import Judgement
    from mlprov.registry.pull import PulledVersion
    from mlprov.registry.rebuild import RebuildCheck
    from mlprov.registry.status import AliasStatus
    from mlprov.registry.uploads import UploadedFile
    from mlprov.registry.versions import EvidenceMaker
    from mlprov.registry.waivers import Waiver
    from mlprov.registry.webhooks import DispatchReport
    from mlprov.serving import Resolution, ResolutionState
    from mlprov.signing import Signer, Trust, VerificationReport

__all__ = ["ProgressCallback", "Registry", "open_registry"]

#: Called with a byte count as a long copy or hash proceeds (versions.ProgressCallback).
ProgressCallback = Callable[[int], None]


class Registry:
    """Registered models, versions, evidence, aliases, stages and the audit log."""

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        *,
        actor: str | None = None,
        limits: Limits | None = None,
        gate: Gate | None = None,
    ) -> None:
        self._context = RegistryContext(
            metadata=metadata,
            artifacts=artifacts,
            limits=limits or Limits(),
            gate=gate or OpenGate(),
            fixed_actor=actor,
        )
        #: Only the registry that opened the stores closes them (not one made by acting_as).
        self._owns_stores = True
        if gate is None:
            # The registry's own gate: the active policy set decides (ARCHITECTURE.md,
            # registry/gate.py); it needs the context it judges with.
            self._context.gate = PolicyGate(self._context)

    @property
    def metadata(self) -> MetadataStore:
        return self._context.metadata

    @property
    def artifacts(self) -> ArtifactStore:
        return self._context.artifacts

    @property
    def limits(self) -> Limits:
        return self._context.limits

    @property
    def actor(self) -> str:
        return self._context.actor

    def close(self) -> None:
        if self._owns_stores:
            self._context.metadata.dispose()

    def acting_as(self, principal: Principal) -> Registry:
        """This registry (same stores, limits, gate and caches) with ``principal.actor``
        as the actor of everything it records. Closing it leaves the stores open; close
        the registry it came from. Authorisation is the caller's
        (:func:`mlprov.access.authorize`)."""
        acting = object.__new__(Registry)
        acting._context = dataclasses.replace(self._context, fixed_actor=principal.actor)
        acting._owns_stores = False
        return acting

    # -- models ------------------------------------------------------------------------

    def create_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        from mlprov.registry import models  # noqa: PLC0415

        return models.create_model(self._context, name, description=description, tags=tags)

    def get_model(self, name: str) -> RegisteredModel:
        from mlprov.registry import models  # noqa: PLC0415

        return models.get_model(self._context, name)

    def list_models(
        self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None
    ) -> list[RegisteredModel]:
        from mlprov.registry import models  # noqa: PLC0415

        return models.list_models(self._context, prefix=prefix, tags=tags)

    def tag_model(
        self, name: str, changes: Mapping[str, str | None], *, reason: str = ""
    ) -> RegisteredModel:
        from mlprov.registry import models  # noqa: PLC0415

        return models.tag_model(self._context, name, changes, reason=reason)

    def describe_model(self, name: str, description: str) -> RegisteredModel:
        from mlprov.registry import models  # noqa: PLC0415

        return models.describe_model(self._context, name, description)

    # -- versions ----------------------------------------------------------------------

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
    ) -> ModelVersion:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.register(
            self._context,
            path,
            name,
            info,
            hash_algorithm=hash_algorithm,
            ignore_paths=ignore_paths,
            allow_symlinks=allow_symlinks,
            progress=progress,
        )

    def prepare_version(
        self,
        path: Path,
        name: str,
        info: VersionInput | None = None,
        *,
        hash_algorithm: str = "sha256",
        ignore_paths: Sequence[str | Path] = (),
        allow_symlinks: bool = False,
    ) -> PreparedVersion:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.prepare_version(
            self._context,
            path,
            name,
            info,
            hash_algorithm=hash_algorithm,
            ignore_paths=ignore_paths,
            allow_symlinks=allow_symlinks,
        )

    def store_files(
        self, prepared: PreparedVersion, *, progress: ProgressCallback | None = None
    ) -> StoredFiles:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.store_files(self._context, prepared, progress=progress)

    def commit_version(
        self,
        prepared: PreparedVersion,
        stored: StoredFiles,
        *,
        evidence_for: EvidenceMaker | None = None,
    ) -> ModelVersion:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.commit_version(self._context, prepared, stored, evidence_for=evidence_for)

    def register_uploaded(
        self,
        name: str,
        files: Sequence[UploadedFile],
        info: VersionInput | None = None,
        *,
        artifact_name: str | None = None,
        signature: bytes | None = None,
        idempotency_key: str | None = None,
        contents: Mapping[str, bytes] | None = None,
    ) -> ModelVersion:
        """Register the next version from blobs already stored, or for the paths in
        ``contents`` from the bytes given there (see
        :func:`mlprov.registry.uploads.register_uploaded`); with ``idempotency_key`` a
        repeated request returns the version the first one made."""
        from mlprov.registry import uploads  # noqa: PLC0415

        return uploads.register_uploaded(
            self._context,
            name,
            files,
            info,
            artifact_name=artifact_name,
            signature=signature,
            idempotency_key=idempotency_key,
            contents=contents,
        )

    def store_blob(self, chunks: Iterable[bytes], sha256: str) -> StoredBlob:
        """Store bytes arriving as chunks as blob ``sha256`` in one pass (refused, nothing
        kept, if they hash to anything else)."""
        from mlprov.registry import blobs  # noqa: PLC0415

        return blobs.store_blob(self._context, chunks, sha256)

    def blob_exists(self, sha256: str) -> bool:
        from mlprov.registry import blobs  # noqa: PLC0415

        return blobs.blob_exists(self._context, sha256)

    def blob_size(self, sha256: str) -> int:
        from mlprov.registry import blobs  # noqa: PLC0415

        return blobs.blob_size(self._context, sha256)

    def blob_models(self, sha256: str) -> list[str]:
        """The models whose versions use a blob."""
        from mlprov.registry import blobs  # noqa: PLC0415

        return blobs.blob_models(self._context, sha256)

    def blob_chunks(self, sha256: str) -> Iterator[bytes]:
        """A blob's bytes, digest-checked by the artefact store as they stream."""
        from mlprov.registry import blobs  # noqa: PLC0415

        return blobs.blob_chunks(self._context, sha256)

    def get_version(self, ref: ModelRef | str) -> ModelVersion:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.get_version(self._context, ref)

    resolve = get_version

    def list_versions(self, name: str) -> list[ModelVersion]:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.list_versions(self._context, name)

    def manifest(self, ref: ModelRef | str) -> Manifest:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.manifest(self._context, ref)

    def version_files(self, ref: ModelRef | str) -> list[StoredFile]:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.version_files(self._context, ref)

    def tag_version(
        self, ref: ModelRef | str, changes: Mapping[str, str | None], *, reason: str = ""
    ) -> ModelVersion:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.tag_version(self._context, ref, changes, reason=reason)

    def describe_version(self, ref: ModelRef | str, description: str) -> ModelVersion:
        from mlprov.registry import versions  # noqa: PLC0415

        return versions.describe_version(self._context, ref, description)

    def check_lineage(self, edges: Sequence[LineageInput]) -> list[LineageEdge]:
        from mlprov.registry import lineage  # noqa: PLC0415

        return lineage.check_lineage(self._context, edges)

    def lineage(
        self, ref: ModelRef | str, *, descendants: bool = False, max_depth: int | None = None
    ) -> LineageGraph:
        from mlprov.registry import lineage  # noqa: PLC0415

        return lineage.lineage(self._context, ref, descendants=descendants, max_depth=max_depth)

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
    ) -> SignedVersion:
        """Hash, store, sign and register in one step (see
        :func:`mlprov.registry.signatures.sign_and_register` for the options)."""
        from mlprov.registry import signatures  # noqa: PLC0415

        return signatures.sign_and_register(
            self._context, path, name, signer, info, with_documents=with_documents, **options
        )

    def signature_of(self, ref: ModelRef | str) -> bytes:
        from mlprov.registry import signatures  # noqa: PLC0415

        return signatures.signature_of(self._context, ref)

    def verify_version(
        self, ref: ModelRef | str, trust: Trust, *, path: Path | None = None, **options: Any
    ) -> VerificationReport:
        from mlprov.registry import signatures  # noqa: PLC0415

        return signatures.verify_version(self._context, ref, trust, path=path, **options)

    def attest(
        self, ref: ModelRef | str, predicate_type: str, predicate: dict[str, Any], signer: Signer
    ) -> Evidence:
        from mlprov.registry import evidence  # noqa: PLC0415

        return evidence.attest(self._context, ref, predicate_type, predicate, signer)

    def attach(self, ref: ModelRef | str, bundle: bytes, trust: Trust, **options: Any) -> Evidence:
        """Store a bundle signed elsewhere after verifying it: an OMS signature of this
        version becomes its signature, anything else an attestation about it."""
        from mlprov.registry import signatures  # noqa: PLC0415

        return signatures.attach(self._context, ref, bundle, trust, **options)

    def sign_version(self, ref: ModelRef | str, signer: Signer) -> Evidence:
        """Sign a version registered without a signature (its recorded manifest)."""
        from mlprov.registry import signatures  # noqa: PLC0415

        return signatures.sign_version(self._context, ref, signer)

    def document(self, ref: ModelRef | str, kind: str) -> StoredDocument:
        from mlprov.registry import evidence  # noqa: PLC0415

        return evidence.document(self._context, ref, kind)

    def verified_document(
        self, ref: ModelRef | str, kind: str, trust: Trust | None = None, **options: Any
    ) -> VerifiedDocument:
        from mlprov.registry import evidence  # noqa: PLC0415

        return evidence.verified_document(self._context, ref, kind, trust, **options)

    def evidence(self, ref: ModelRef | str, *, kind: str | None = None) -> list[Evidence]:
        from mlprov.registry import evidence  # noqa: PLC0415

        return evidence.evidence(self._context, ref, kind=kind)

    def verified_evidence(
        self, ref: ModelRef | str, trust: Trust | None = None, **options: Any
    ) -> list[EvidenceCheck]:
        from mlprov.registry import evidence  # noqa: PLC0415

        return evidence.verified_evidence(self._context, ref, trust, **options)

    def evidence_content(self, ref: ModelRef | str, digest: str) -> bytes:
        from mlprov.registry import evidence  # noqa: PLC0415

        return evidence.evidence_content(self._context, ref, digest)

    def diff(self, left: ModelRef | str, right: ModelRef | str) -> VersionDiff | DeploymentDiff:
        """Two versions side by side (params, metrics, datasets, code, lineage, evidence,
        files), each fact from verified evidence where there is some; or two deployment
        versions by role, each changed member as two versions; reads only."""
        from mlprov.registry import diff  # noqa: PLC0415

        return diff.diff(self._context, left, right)

    def rebuild_check(
        self, ref: ModelRef | str, path: Path, *, signer: Signer | None = None, **options: Any
    ) -> RebuildCheck:
        """Hash ``path`` and compare it with version ``ref``'s files; with ``signer``,
        record the result as a signed attestation (:data:`REBUILD_PREDICATE_TYPE`)."""
        from mlprov.registry import rebuild  # noqa: PLC0415

        return rebuild.rebuild_check(self._context, ref, path, signer=signer, **options)

    def approve(
        self, ref: ModelRef | str, target: str, signer: Signer, *, comment: str = ""
    ) -> Evidence:
        """Sign and store an approval of a version for an alias (or ``stage:NAME``)."""
        from mlprov.registry import approvals  # noqa: PLC0415

        return approvals.approve(self._context, ref, target, signer, comment=comment)

    def attach_trusted(self, ref: ModelRef | str, bundle: bytes) -> Evidence:
        """Attach a bundle signed elsewhere, verified against the registry's own trust
        (the active policy set's signers)."""
        from mlprov.registry import signed_evidence  # noqa: PLC0415

        return signed_evidence.attach_trusted(self._context, ref, bundle)

    def add_signed_documents(
        self, ref: ModelRef | str, bundles: Mapping[str, bytes]
    ) -> list[Evidence]:
        """Store a version's provenance, ML-BOM and card its model signer signed
        elsewhere (a client over HTTP), each checked to be the registry's own statement."""
        from mlprov.registry import own_documents  # noqa: PLC0415

        return own_documents.add_signed_documents(self._context, ref, bundles)

    def add_signed_attestation(self, ref: ModelRef | str, bundle: bytes) -> Evidence:
        """Store an attestation its signer made elsewhere (``attest`` over HTTP)."""
        from mlprov.registry import signed_evidence  # noqa: PLC0415

        return signed_evidence.add_signed_attestation(self._context, ref, bundle)

    def add_signed_signature(self, ref: ModelRef | str, bundle: bytes) -> Evidence:
        """Store the OMS signature of an unsigned version, made elsewhere (``sign REF``)."""
        from mlprov.registry import signed_evidence  # noqa: PLC0415

        return signed_evidence.add_signed_signature(self._context, ref, bundle)

    def add_signed_approval(self, ref: ModelRef | str, bundle: bytes) -> Evidence:
        """Store an approval its approver signed elsewhere (the gate judges the signer)."""
        from mlprov.registry import signed_evidence  # noqa: PLC0415

        return signed_evidence.add_signed_approval(self._context, ref, bundle)

    def add_signed_waiver(self, ref: ModelRef | str, bundle: bytes) -> Evidence:
        """Store one holder's waiver signed elsewhere (the gate judges the signers)."""
        from mlprov.registry import signed_evidence  # noqa: PLC0415

        return signed_evidence.add_signed_waiver(self._context, ref, bundle)

    def approvals(self, ref: ModelRef | str, *, target: str | None = None) -> list[Approval]:
        from mlprov.registry import approvals  # noqa: PLC0415

        return approvals.approvals(self._context, ref, target=target)

    # -- policy and serving ------------------------------------------------------------

    def verify(
        self,
        ref: ModelRef | str,
        *,
        deep: bool = False,
        narrow: Trust | None = None,
        progress: ProgressCallback | None = None,
    ) -> Judgement:
        """Verify a version with the registry's trust (and, for ``NAME@ALIAS``, judge it
        by the alias's policy and check its pointer against the audit log); ``narrow``
        must also verify the model signature (trust options narrow, never widen);
        ``deep`` re-hashes the stored bytes of the version and its ancestors too."""
        from mlprov.registry import verify  # noqa: PLC0415

        return verify.verify_registered(
            self._context, ref, deep=deep, narrow=narrow, progress=progress
        )

    def status(self) -> list[AliasStatus]:
        """Every alias and whether its version verifies and passes its policy now."""
        from mlprov.registry import status  # noqa: PLC0415

        return status.status(self._context)

    def pull(
        self,
        ref: ModelRef | str,
        to: Path,
        *,
        progress: ProgressCallback | None = None,
        sync: bool = True,
    ) -> PulledVersion:
        """Install ``NAME@ALIAS`` only if it verifies and passes the alias's policy
        (fsynced unless ``sync`` is false)."""
        from mlprov.registry import pull  # noqa: PLC0415

        return pull.pull(self._context, ref, to, progress=progress, sync=sync)

    def signed_resolution(self, name: str, alias: str, signer: Signer, *, ttl: timedelta) -> bytes:
        """The registry's signed answer to what ``name@alias`` names now (version,
        manifest digest, generation), valid for ``ttl``; reads only, writes nothing."""
        from mlprov.registry import resolution  # noqa: PLC0415

        return resolution.signed_resolution(self._context, name, alias, signer, ttl=ttl)

    def pull_resolved(
        self,
        ref: ModelRef | str,
        to: Path,
        statement: bytes,
        trust: Trust,
        state: ResolutionState,
        *,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
        sync: bool = True,
    ) -> tuple[PulledVersion, Resolution]:
        """Pull ``NAME@ALIAS`` only as the signed resolution ``statement`` names it, after
        ``state`` refused nothing (rollback, replay, expiry)."""
        from mlprov.registry import resolution  # noqa: PLC0415

        return resolution.pull_resolved(
            self._context, ref, to, statement, trust, state, now=now, progress=progress, sync=sync
        )

    def apply_policy(self, files: Mapping[str, bytes], *, reason: str = "") -> StoredPolicySet:
        """Validate a policy folder's files and make them the active set (audited)."""
        from mlprov.registry import policies  # noqa: PLC0415

        return policies.apply_policy(self._context, files, reason=reason)

    def policy(self, version: int | None = None) -> StoredPolicySet | None:
        """The active policy set (or an earlier version), None when none was applied."""
        from mlprov.registry import policies  # noqa: PLC0415

        return policies.show_policy(self._context, version)

    def check_policy(
        self,
        ref: ModelRef | str,
        target: str,
        *,
        policy_files: Mapping[str, bytes] | None = None,
    ) -> Judgement:
        """Judge moving ``target`` to ``ref`` as the gate would; changes nothing."""
        from mlprov.registry import policies  # noqa: PLC0415

        return policies.check_policy(self._context, ref, target, policy_files=policy_files)

    def waive(
        self,
        ref: ModelRef | str,
        target: str,
        signer: Signer,
        *,
        reason: str,
        expires_in: timedelta,
        requirements: tuple[str, ...] = (),
    ) -> Evidence:
        """Sign and store one holder's waiver for moving a version to ``target``."""
        from mlprov.registry import waivers  # noqa: PLC0415

        return waivers.waive(
            self._context,
            ref,
            target,
            signer,
            reason=reason,
            expires_in=expires_in,
            requirements=requirements,
        )

    def waivers(self, ref: ModelRef | str) -> list[Waiver]:
        from mlprov.registry import waivers  # noqa: PLC0415

        return waivers.waivers(self._context, ref)

    def revoke(
        self,
        *,
        reason: str,
        signer: Signer,
        version: ModelRef | str | None = None,
        key_pem: bytes | None = None,
        identity: str | None = None,
    ) -> Revocation:
        """Revoke a version, a public key or a signer identity (signed and audited)."""
        from mlprov.registry import revocation  # noqa: PLC0415

        return revocation.revoke(
            self._context,
            reason=reason,
            signer=signer,
            version=version,
            key_pem=key_pem,
            identity=identity,
        )

    def add_signed_revocation(self, bundle: bytes) -> Revocation:
        """Store a revocation its revoker signed elsewhere (audited)."""
        from mlprov.registry import revocation  # noqa: PLC0415

        return revocation.add_signed_revocation(self._context, bundle)

    def revocation_claim(self, bundle: bytes) -> tuple[str, str]:
        """What a revocation bundle claims to revoke (kind, value), not yet trusted."""
        from mlprov.registry import revocation  # noqa: PLC0415

        return revocation.revocation_claim(self._context, bundle)

    def revocations(self) -> list[Revocation]:
        from mlprov.registry import revocation  # noqa: PLC0415

        return revocation.revocations(self._context)

    # -- tokens ------------------------------------------------------------------------

    def create_token(
        self,
        role: Role | str,
        *,
        name: str,
        models: Sequence[str] = ("*",),
        expires: timedelta | None = None,
    ) -> IssuedToken:
        """A new bearer token (audited); its secret is in the result, and only there."""
        from mlprov.registry import tokens  # noqa: PLC0415

        return tokens.create_token(self._context, role, name=name, models=models, expires=expires)

    def tokens(self) -> list[TokenRecord]:
        from mlprov.registry import tokens  # noqa: PLC0415

        return tokens.tokens(self._context)

    def revoke_token(self, token_id: str, *, reason: str) -> TokenRecord:
        from mlprov.registry import tokens  # noqa: PLC0415

        return tokens.revoke_token(self._context, token_id, reason=reason)

    def authenticate(self, secret: str) -> Principal:
        """The principal a token secret stands for, or AuthenticationError; reads only."""
        from mlprov.registry import tokens  # noqa: PLC0415

        return tokens.authenticate(self._context, secret)

    def authenticate_cached(self, secret: str) -> Principal | None:
        """:meth:`authenticate` from the token cache alone (no store access); None when
        the token's row is not cached (or there is no cache)."""
        from mlprov.registry import tokens  # noqa: PLC0415

        return tokens.authenticate_cached(self._context, secret)

    def cache_tokens(self, seconds: float) -> TokenCache:
        """Let :meth:`authenticate` reuse a token row read less than ``seconds`` ago (a
        server's choice, bounding how late a revocation made elsewhere takes effect:
        :class:`~mlprov.registry.tokens.TokenCache`). Returns the new cache."""
        cache = self._context.token_cache = TokenCache(seconds)
        return cache

    # -- aliases and stages ------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> AliasEvent | None:
        """Point ``name@alias`` at ``version`` through the gate. Returns the move, or None
        when the alias already pointed there (a no-op). With ``expected_generation`` a
        lost race is a ConflictError and nothing changes."""
        from mlprov.registry import pointers  # noqa: PLC0415

        return pointers.set_alias(
            self._context,
            name,
            alias,
            version,
            reason=reason,
            expected_generation=expected_generation,
        )

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        reason: str = "",
        expected_generation: int | None = None,
    ) -> AliasEvent:
        from mlprov.registry import pointers  # noqa: PLC0415

        return pointers.delete_alias(
            self._context, name, alias, reason=reason, expected_generation=expected_generation
        )

    def get_alias(self, name: str, alias: str) -> AliasState:
        from mlprov.registry import pointers  # noqa: PLC0415

        return pointers.get_alias(self._context, name, alias)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        from mlprov.registry import pointers  # noqa: PLC0415

        return pointers.alias_history(self._context, name, alias)

    def set_stage(
        self, name: str, version: int, stage: Stage | str, *, reason: str = ""
    ) -> list[StageEvent]:
        from mlprov.registry import pointers  # noqa: PLC0415

        return pointers.set_stage(self._context, name, version, stage, reason=reason)

    def stage_history(self, name: str) -> list[StageEvent]:
        from mlprov.registry import pointers  # noqa: PLC0415

        return pointers.stage_history(self._context, name)

    # -- deployments -------------------------------------------------------------------

    def create_deployment(self, name: str, *, description: str = "") -> Deployment:
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.create_deployment(self._context, name, description=description)

    def release_deployment(
        self,
        name: str,
        members: Mapping[str, ModelRef | str],
        signer: Signer,
        *,
        metadata: Mapping[str, str] | None = None,
        reason: str = "",
    ) -> DeploymentVersion:
        """Sign and store the next version of a deployment: ``members`` by role, each a
        pinned ``MODEL/VERSION`` with a model signature (see registry/deployments.py)."""
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.release_deployment(
            self._context, name, members, signer, metadata=metadata, reason=reason
        )

    def deployment_statement(
        self,
        name: str,
        members: Mapping[str, ModelRef | str],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> bytes:
        """The statement the next version would be released with, to sign elsewhere."""
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.deployment_statement(self._context, name, members, metadata=metadata)

    def release_signed_deployment(
        self, name: str, bundle: bytes, *, reason: str = ""
    ) -> DeploymentVersion:
        """Store a release whose statement (:meth:`deployment_statement`) was signed elsewhere."""
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.release_signed_deployment(self._context, name, bundle, reason=reason)

    def get_deployment(self, name: str) -> Deployment:
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.get_deployment(self._context, name)

    def list_deployments(self) -> list[Deployment]:
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.list_deployments(self._context)

    def deployment_version(self, ref: ModelRef | str) -> DeploymentVersion:
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.deployment_version(self._context, ref)

    def deployment_versions(self, name: str) -> list[DeploymentVersion]:
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.deployment_versions(self._context, name)

    def is_deployment(self, name: str) -> bool:
        from mlprov.registry import deployments  # noqa: PLC0415

        return deployments.is_deployment(self._context, name)

    def pull_deployment(
        self,
        ref: ModelRef | str,
        to: Path,
        *,
        progress: ProgressCallback | None = None,
        sync: bool = True,
    ) -> PulledDeployment:
        """Install every member of ``DEPLOYMENT@ALIAS`` at ``to/ROLE``, verified, as a whole."""
        from mlprov.registry import deployment_judge  # noqa: PLC0415

        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        return deployment_judge.pull_deployment(
            self._context, parsed, to, progress=progress, sync=sync
        )

    # -- webhooks ----------------------------------------------------------------------

    def add_webhook(
        self, url: str, *, events: Sequence[str] = (), models: Sequence[str] = ()
    ) -> WebhookSubscription:
        """Subscribe ``url`` to events (all when ``events`` is empty) about models matching
        ``models`` (all when empty); audited. The result's ``secret`` is shown only now."""
        from mlprov.registry import webhooks  # noqa: PLC0415

        return webhooks.add_webhook(self._context, url, events=events, models=models)

    def webhooks(self, *, include_removed: bool = False) -> list[WebhookSubscription]:
        from mlprov.registry import webhooks  # noqa: PLC0415

        return webhooks.webhooks(self._context, include_removed=include_removed)

    def remove_webhook(self, webhook_id: int) -> WebhookSubscription:
        from mlprov.registry import webhooks  # noqa: PLC0415

        return webhooks.remove_webhook(self._context, webhook_id)

    def webhook_deliveries(
        self,
        *,
        webhook_id: int | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[WebhookDelivery]:
        from mlprov.registry import webhooks  # noqa: PLC0415

        return webhooks.deliveries(self._context, webhook_id=webhook_id, state=state, limit=limit)

    def redeliver(self, delivery_id: int) -> WebhookDelivery:
        """Send a delivered or failed delivery's event again (a new delivery; audited)."""
        from mlprov.registry import webhooks  # noqa: PLC0415

        return webhooks.redeliver(self._context, delivery_id)

    def outbox(self, *, limit: int | None = None) -> list[OutboxEvent]:
        from mlprov.registry import webhooks  # noqa: PLC0415

        return webhooks.outbox(self._context, limit=limit)

    def dispatch_webhooks(
        self,
        *,
        owner: str,
        settings: WebhookSettings | None = None,
        now: datetime | None = None,
    ) -> DispatchReport:
        """One dispatcher pass (use :class:`Dispatcher`, which names the ``owner``)."""
        from mlprov.registry import webhooks  # noqa: PLC0415

        return webhooks.dispatch(
            self._context, owner=owner, settings=settings or WebhookSettings(), now=now
        )

    # -- download and audit ------------------------------------------------------------

    def download(
        self, ref: ModelRef | str, to: Path, *, progress: ProgressCallback | None = None
    ) -> ModelVersion:
        from mlprov.registry import download  # noqa: PLC0415

        return download.download(self._context, ref, to, progress=progress)

    def install_verified(
        self,
        ref: ModelRef | str,
        to: Path,
        trust: Trust,
        *,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
        sync: bool = True,
    ) -> VerifiedInstall:
        """Resolve once, verify the stored signature against ``trust``, install (see
        :func:`mlprov.registry.download.install_verified`); raise on any failure."""
        from mlprov.registry import download  # noqa: PLC0415

        return download.install_verified(
            self._context, ref, to, trust, now=now, progress=progress, sync=sync
        )

    def collect_garbage(
        self,
        grace: timedelta = DEFAULT_GRACE,
        dry_run: bool = False,
        *,
        staging_grace: timedelta | None = None,
    ) -> GcReport:
        """Remove blobs no version references, written more than ``grace`` ago, that no
        registration holds (audited as ``gc.run``); ``dry_run`` only reports them.
        Unfinished uploads go after ``staging_grace`` (default: ``grace``, at least 1 h)."""
        from mlprov.registry import gc  # noqa: PLC0415

        return gc.collect_garbage(
            self._context, grace, dry_run=dry_run, staging_grace=staging_grace
        )

    def export(
        self,
        ref: ModelRef | str,
        to: Path,
        signer: Signer,
        *,
        with_ancestors: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ExportedArchive:
        """Write a version, its evidence and its lineage closure to one signed archive."""
        from mlprov.registry import transfer  # noqa: PLC0415

        return transfer.export_version(
            self._context, ref, to, signer, with_ancestors=with_ancestors, progress=progress
        )

    def export_closure(self, ref: ModelRef | str, *, with_ancestors: bool = False) -> ExportClosure:
        """What an archive of ``ref`` would hold (the server's answer to a client that
        exports from it)."""
        from mlprov.registry import transfer  # noqa: PLC0415

        return transfer.export_closure(self._context, ref, with_ancestors=with_ancestors)

    def record_export(
        self,
        ref: ModelRef | str,
        archive_digest: str,
        *,
        with_ancestors: bool = False,
        idempotency_key: str | None = None,
        closure: ExportClosure | None = None,
    ) -> ExportClosure:
        """Audit an archive of ``ref`` a client wrote from what this registry sent; with
        ``idempotency_key`` a repeat of the request is answered as the first and audits
        nothing; ``closure`` is ``ref``'s, if already worked out
        (:func:`mlprov.registry.transfer.record_export`)."""
        from mlprov.registry import transfer  # noqa: PLC0415

        return transfer.record_export(
            self._context,
            ref,
            archive_digest,
            with_ancestors=with_ancestors,
            idempotency_key=idempotency_key,
            closure=closure,
        )

    def import_archive(
        self,
        path: Path,
        *,
        rename: str | None = None,
        authorize: Callable[[str], None] | None = None,
    ) -> ImportedArchive:
        """Import an archive after verifying all of it with this registry's own trust;
        ``authorize(model)`` may refuse a model before anything of it is written."""
        from mlprov.registry import importing  # noqa: PLC0415

        return importing.import_archive(self._context, path, rename=rename, authorize=authorize)

    def promote(
        self,
        ref: ModelRef | str,
        to: RegistryApi,
        signer: Signer,
        *,
        alias: str | None = None,
        with_ancestors: bool = False,
        reason: str = "",
    ) -> ImportedArchive:
        """Export ``ref`` and import it into the registry ``to``, local or a server (its
        trust and its gate decide)."""
        from mlprov.registry import importing  # noqa: PLC0415

        return importing.promote(
            self._context,
            to,
            ref,
            signer,
            alias=alias,
            with_ancestors=with_ancestors,
            reason=reason,
        )

    def audit_log(
        self, *, subject: str | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        from mlprov.registry import audit  # noqa: PLC0415

        return audit.audit_log(self._context, subject=subject, limit=limit)

    def audit_chain(self) -> tuple[int, str, list[AuditEntry]]:
        """The audit chain head (sequence, hash) and every entry, read together."""
        from mlprov.registry import audit  # noqa: PLC0415

        return audit.audit_chain(self._context)

    def audit_chain_page(self, *, after: int, limit: int) -> tuple[int, str, list[AuditEntry]]:
        """The head and at most ``limit`` entries after sequence ``after``, read together."""
        from mlprov.registry import audit  # noqa: PLC0415

        return audit.audit_chain_page(self._context, after=after, limit=limit)

    def verify_audit(
        self, *, checkpoint: bytes | None = None, trust: Trust | None = None, **options: Any
    ) -> int:
        """Recompute the chain and the state it vouches for; with a signed ``checkpoint``
        (verified against ``trust``) also refuse a log truncated or rewritten since."""
        from mlprov.registry import audit  # noqa: PLC0415

        return audit.verify_audit(self._context, checkpoint=checkpoint, trust=trust, **options)

    def check_ready(self) -> None:
        """Raise StorageError unless the metadata and artefact stores both answer."""
        from mlprov.registry import readiness  # noqa: PLC0415

        readiness.check_ready(self._context)

    def record_access_denied(
        self, *, actor: str | None, action: str, subject: str, status: int, reason: str
    ) -> AuditEntry:
        """Audit a refused request of the HTTP API (401 or 403); nothing else changes."""
        from mlprov.registry import denials  # noqa: PLC0415

        return denials.record_access_denied(
            self._context, actor=actor, action=action, subject=subject, status=status, reason=reason
        )

    def checkpoint_audit(self, signer: Signer) -> bytes:
        """A signed checkpoint of the audit chain head (a bundle to keep elsewhere)."""
        from mlprov.registry import audit  # noqa: PLC0415

        return audit.checkpoint(self._context, signer)

    def add_signed_checkpoint(self, bundle: bytes) -> AuditEntry:
        """Audit a checkpoint of this registry's chain signed elsewhere (``audit.checkpoint``,
        as a local one); refused unless the entry it names is in the chain with its hash."""
        from mlprov.registry import audit  # noqa: PLC0415

        return audit.add_signed_checkpoint(self._context, bundle)


def open_registry(
    config: RegistryConfig | None = None, *, actor: str | None = None, gate: Gate | None = None
) -> Registry:
    """Open the registry a config names (default: ``$MLPROV_HOME``, SQLite and a folder)."""
    config = config or RegistryConfig.from_environment()
    # The artefact store first: a refused one (memory://) must not leave a new database.
    artifacts = open_artifact_store(config.resolved_artifact_uri)
    metadata = open_metadata_store(config.resolved_metadata_uri)
    return Registry(metadata, artifacts, actor=actor, limits=config.limits, gate=gate)


#: mypy checks here that the local registry satisfies the API the HTTP client implements.
_LOCAL_API: type[RegistryApi] = Registry
