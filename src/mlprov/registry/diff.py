"""``mlprov diff A B``: two versions side by side, facts from verified evidence.

Both versions, their evidence as the exact stored bytes, the active policy set and the
revocations are read in one read transaction; then each version is verified with the
registry's trust (the active policy set's signers, ADR 0030) outside it, and the pure
comparison engine (:mod:`mlprov.comparison`) lays the two side by side. Nothing is
written. With no policy set applied the registry trusts no one: every section then says
its values come from the registry's records, unverified.
"""

from __future__ import annotations

from mlprov.comparison import VersionDiff, VersionSide, diff_versions
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, resolve
from mlprov.registry._snapshot import load_snapshot
from mlprov.registry.policies import load_policy
from mlprov.store import StoreTransaction
from mlprov.store.versions import VersionKey
from mlprov.verification import (
    Revocations,
    TrustSet,
    VersionSnapshot,
    evidence_check_ids,
    verify_snapshot,
)

__all__ = ["diff"]


def diff(context: RegistryContext, left: ModelRef | str, right: ModelRef | str) -> VersionDiff:
    """Compare version ``left`` -> ``right`` (numbers, aliases or ``latest``; the two
    may be versions of different models)."""
    left_ref, right_ref = coerce_ref(left), coerce_ref(right)
    depth = context.limits.max_lineage_depth
    with context.metadata.read() as tx:
        # Both resolved before anything is loaded: a bad second reference fails fast.
        keys = (resolve(tx, left_ref), resolve(tx, right_ref))
        snapshots = tuple(load_snapshot(tx, key, depth) for key in keys)
        blob_manifests = tuple(_sha256_manifest(tx, key) for key in keys)
        stored_policy = tx.policies.active()
        found = tx.revocations.all()
    revocations = Revocations(
        versions={r.value: r.reason for r in found if r.kind == "version"},
        key_hints={r.value: r.reason for r in found if r.kind == "key"},
        identities={r.value: r.reason for r in found if r.kind == "identity"},
    )
    trust = (
        load_policy(stored_policy.files, context, stored_policy.digest).trust
        if stored_policy is not None
        else TrustSet()
    )
    # Digests of different algorithms say nothing about equal bytes: compare by the
    # SHA-256 blob keys then (every stored file has one).
    same_algorithm = snapshots[0].manifest.algorithm == snapshots[1].manifest.algorithm
    sides = [
        _side(context, snapshot, trust, revocations, snapshot.manifest if same_algorithm else blobs)
        for snapshot, blobs in zip(snapshots, blob_manifests, strict=True)
    ]
    return diff_versions(sides[0], sides[1])


def _side(
    context: RegistryContext,
    snapshot: VersionSnapshot,
    trust: TrustSet,
    revocations: Revocations,
    manifest: Manifest,
) -> VersionSide:
    report = verify_snapshot(snapshot, trust, revocations=revocations, limits=context.limits)
    return VersionSide(snapshot.record, manifest, report, evidence_check_ids(snapshot.evidence))


def _sha256_manifest(tx: StoreTransaction, key: VersionKey) -> Manifest:
    return Manifest.of(
        "sha256",
        (FileEntry(f.path, Digest("sha256", f.blob), f.size) for f in tx.versions.files(key)),
    )
