"""``mlprov diff A B``: two versions, or two deployment versions, side by side, facts
from verified evidence.

Both versions, their evidence as the exact stored bytes, the active policy set and the
revocations are read in one read transaction; then each version is verified with the
registry's trust (the active policy set's signers, ADR 0030) outside it, and the pure
comparison engine (:mod:`mlprov.comparison`) lays the two side by side. Nothing is
written. With no policy set applied the registry trusts no one: every section then says
its values come from the registry's records, unverified.

Two deployment references (ADR 0050: one namespace with models) compare the deployment
versions by role (:func:`mlprov.comparison.diff_deployments`): each bundle statement is
checked with the same trust (:func:`mlprov.verification.deployment_checks`), and each
role naming another model version is compared as two versions are. A version and a
deployment are not compared.
"""

from __future__ import annotations

from datetime import datetime, timezone

from mlprov.comparison import (
    DeploymentDiff,
    VersionDiff,
    VersionSide,
    changed_roles,
    deployment_side,
    diff_deployments,
    diff_versions,
    version_side,
)
from mlprov.errors import InvalidInputError
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, resolve
from mlprov.registry._snapshot import load_snapshot
from mlprov.registry.deployments import resolve_deployment
from mlprov.registry.policies import load_policy
from mlprov.store import StoreTransaction
from mlprov.store.versions import VersionKey
from mlprov.verification import Revocations, TrustSet, VersionSnapshot

__all__ = ["diff"]


def diff(
    context: RegistryContext, left: ModelRef | str, right: ModelRef | str
) -> VersionDiff | DeploymentDiff:
    """Compare ``left`` -> ``right``: two versions (numbers, aliases or ``latest``; they
    may be versions of different models) or two deployment versions."""
    left_ref, right_ref = coerce_ref(left), coerce_ref(right)
    with context.metadata.read() as tx:
        kinds = tuple(_is_deployment(tx, ref.name) for ref in (left_ref, right_ref))
    if kinds[0] != kinds[1]:
        deployment, version = (left_ref, right_ref) if kinds[0] else (right_ref, left_ref)
        raise InvalidInputError(
            f"{deployment} is a deployment and {version} a model version: diff compares "
            "two versions or two deployments"
        )
    if kinds[0]:
        return _diff_deployments(context, left_ref, right_ref)
    return _diff_versions(context, left_ref, right_ref)


def _is_deployment(tx: StoreTransaction, name: str) -> bool:
    return tx.models.find(name) is None and tx.deployments.find(name) is not None


def _trust(tx: StoreTransaction, context: RegistryContext) -> tuple[TrustSet, Revocations]:
    """The active policy set's trust (none without one) and the revocations."""
    stored_policy = tx.policies.active()
    revocations = Revocations.of(tx.revocations.all())
    trust = (
        load_policy(stored_policy.files, context, stored_policy.digest).trust
        if stored_policy is not None
        else TrustSet()
    )
    return trust, revocations


def _diff_versions(
    context: RegistryContext, left_ref: ModelRef, right_ref: ModelRef
) -> VersionDiff:
    depth = context.limits.max_lineage_depth
    with context.metadata.read() as tx:
        # Both resolved before anything is loaded: a bad second reference fails fast.
        keys = (resolve(tx, left_ref), resolve(tx, right_ref))
        snapshots = tuple(load_snapshot(tx, key, depth) for key in keys)
        blob_manifests = tuple(_sha256_manifest(tx, key) for key in keys)
        trust, revocations = _trust(tx, context)
    # Digests of different algorithms say nothing about equal bytes: compare by the
    # SHA-256 blob keys then (every stored file has one).
    same_algorithm = snapshots[0].manifest.algorithm == snapshots[1].manifest.algorithm
    sides = [
        _side(context, snapshot, trust, revocations, snapshot.manifest if same_algorithm else blobs)
        for snapshot, blobs in zip(snapshots, blob_manifests, strict=True)
    ]
    return diff_versions(sides[0], sides[1])


def _diff_deployments(
    context: RegistryContext, left_ref: ModelRef, right_ref: ModelRef
) -> DeploymentDiff:
    depth = context.limits.max_lineage_depth
    with context.metadata.read() as tx:
        keys = (resolve_deployment(tx, left_ref), resolve_deployment(tx, right_ref))
        records = tuple(tx.deployments.version_record(key) for key in keys)
        changed = changed_roles(records[0], records[1])
        current: list[dict[str, str]] = []  # per side: role -> the member's digest now
        loaded: list[dict[str, tuple[VersionSnapshot, Manifest]]] = []
        for record in records:
            digests, members = {}, {}
            for member in record.members:
                model = tx.models.find(member.model)
                key = tx.versions.find(model, member.version) if model is not None else None
                digests[member.role] = key.digest if key is not None else "(missing)"
                if key is not None and member.role in changed:
                    members[member.role] = (
                        load_snapshot(tx, key, depth),
                        _sha256_manifest(tx, key),
                    )
            current.append(digests)
            loaded.append(members)
        trust, revocations = _trust(tx, context)
    now = datetime.now(timezone.utc)
    sides = [
        deployment_side(
            record,
            digests,
            {
                role: (_side(context, snapshot, trust, revocations, snapshot.manifest), blobs)
                for role, (snapshot, blobs) in members.items()
            },
            trust,
            now=now,
            limits=context.limits,
        )
        for record, digests, members in zip(records, current, loaded, strict=True)
    ]
    return diff_deployments(sides[0], sides[1])


def _side(
    context: RegistryContext,
    snapshot: VersionSnapshot,
    trust: TrustSet,
    revocations: Revocations,
    manifest: Manifest,
) -> VersionSide:
    return version_side(snapshot, trust, manifest, revocations=revocations, limits=context.limits)


def _sha256_manifest(tx: StoreTransaction, key: VersionKey) -> Manifest:
    return Manifest.of(
        "sha256",
        (FileEntry(f.path, Digest("sha256", f.blob), f.size) for f in tx.versions.files(key)),
    )
