"""``mlprov diff A B`` against a ``mlprov serve``, verified here (docs/diff.md, "Against a
server"; ADR 0055).

The server is only the data source: this module fetches each version's record, its
file list, its evidence as the exact stored bytes (each must hash to the digest the
server lists, :func:`mlprov.client._checks.stored_bundle`) and its registered lineage
ancestors, builds the same :class:`~mlprov.verification.VersionSnapshot` the local
registry loads in one transaction, and hands it to the same code a local diff runs
(:func:`mlprov.comparison.version_side`, :func:`~mlprov.comparison.diff_versions`,
:func:`~mlprov.comparison.deployment_side`, :func:`~mlprov.comparison.diff_deployments`).
What differs is the trust: not the server's policy (that would be the server's word),
but the caller's trust options, held for the model-signer role
(:func:`mlprov.client._deployments.given_trust`), as ``verify`` over HTTP holds them.

A server that edits a record's values cannot change what a section shows as verified:
those come from the signed documents, and the ``registry.records`` check then fails for
that side. A server that sends evidence bytes other than the ones it lists makes the
diff fail (DigestMismatchError, exit 1) before anything is shown.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mlprov.config import Limits
from mlprov.errors import InvalidInputError, NotFoundError
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.records import DeploymentVersion, ModelVersion
from mlprov.refs import ModelRef

if TYPE_CHECKING:
    from mlprov.client._registry import HttpRegistry
    from mlprov.comparison import DeploymentDiff, VersionDiff, VersionSide
    from mlprov.signing import Trust
    from mlprov.verification import Revocations, TrustSet, VersionSnapshot

__all__ = ["diff"]

#: A member whose version is gone, or whose signature does not verify with the trust
#: given: no digest is proven for it, so ``deployment.members`` fails for that member.
_MISSING = "(missing)"
_UNPROVEN = "(not verified)"


def diff(
    client: HttpRegistry,
    left: ModelRef | str,
    right: ModelRef | str,
    trust: Trust,
    *,
    now: datetime | None = None,
) -> VersionDiff | DeploymentDiff:
    """Compare ``left`` -> ``right`` (two versions or two deployment versions) with the
    values a local diff shows, the evidence verified here against ``trust``."""
    from mlprov.client._deployments import given_trust  # noqa: PLC0415
    from mlprov.verification import Revocations  # noqa: PLC0415

    refs = (_parsed(left), _parsed(right))
    kinds = tuple(client.is_deployment(ref.name) for ref in refs)
    if kinds[0] != kinds[1]:
        deployment, version = refs if kinds[0] else (refs[1], refs[0])
        raise InvalidInputError(
            f"{deployment} is a deployment and {version} a model version: diff compares "
            "two versions or two deployments"
        )
    trust_set = given_trust(trust)
    moment = now or datetime.now(timezone.utc)
    if kinds[0]:
        return _diff_deployments(client, refs, trust, trust_set, moment)
    # Both resolved before anything else is fetched: a bad second reference fails fast.
    records = (client.get_version(refs[0]), client.get_version(refs[1]))
    revocations = Revocations.of(client.revocations())
    from mlprov.comparison import diff_versions  # noqa: PLC0415

    loaded = [_load(client, record) for record in records]
    same_algorithm = loaded[0][0].manifest.algorithm == loaded[1][0].manifest.algorithm
    sides = [
        _side(
            snapshot, trust_set, revocations, snapshot.manifest if same_algorithm else blobs, moment
        )
        for snapshot, blobs in loaded
    ]
    return diff_versions(sides[0], sides[1])


def _parsed(ref: ModelRef | str) -> ModelRef:
    return ModelRef.parse(ref) if isinstance(ref, str) else ref


def _side(
    snapshot: VersionSnapshot,
    trust: TrustSet,
    revocations: Revocations,
    manifest: Manifest,
    now: datetime,
) -> VersionSide:
    from mlprov.comparison import version_side  # noqa: PLC0415

    return version_side(
        snapshot, trust, manifest, revocations=revocations, limits=Limits(), now=now
    )


def _load(client: HttpRegistry, record: ModelVersion) -> tuple[VersionSnapshot, Manifest]:
    """A version's snapshot as the local registry loads it (record, recorded manifest,
    evidence bytes, ancestors to the lineage depth bound), and its files by their
    SHA-256 blob keys: everything from the server, the evidence bytes checked."""
    from mlprov.client._checks import stored_bundle  # noqa: PLC0415
    from mlprov.verification import StoredEvidence, VersionSnapshot  # noqa: PLC0415

    loaded: dict[str, VersionSnapshot] = {}
    blob_manifest: Manifest | None = None

    def load(current: ModelVersion, remaining: int) -> VersionSnapshot:
        nonlocal blob_manifest
        if current.ref in loaded:
            return loaded[current.ref]
        files = client.version_files(current.ref)
        if blob_manifest is None:  # the first call is the version itself
            blob_manifest = Manifest.of(
                "sha256", (FileEntry(f.path, Digest("sha256", f.blob), f.size) for f in files)
            )
        manifest = Manifest.of(
            current.hash_algorithm,
            (FileEntry(f.path, Digest.parse(f.digest), f.size) for f in files),
        )
        evidence = tuple(
            StoredEvidence(item, stored_bundle(client, current, item.digest))
            for item in current.evidence
        )
        ancestors: dict[str, VersionSnapshot | None] = {}
        for edge in current.lineage:
            if not edge.registered:
                continue
            if remaining <= 0:
                ancestors[edge.target] = None
                continue
            try:
                target = client.get_version(edge.target)
            except NotFoundError:
                ancestors[edge.target] = None
                continue
            ancestors[edge.target] = load(target, remaining - 1)
        snapshot = VersionSnapshot(current, manifest, evidence, ancestors)
        loaded[current.ref] = snapshot
        return snapshot

    snapshot = load(record, Limits().max_lineage_depth)
    assert blob_manifest is not None
    return snapshot, blob_manifest


def _member_digest(client: HttpRegistry, ref: str, trust: Trust, now: datetime) -> str:
    """A member's manifest digest as its stored signature signs it, verified here
    against ``trust`` (the server's recorded digest is not taken on its word)."""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.client._checks import stored_bundle  # noqa: PLC0415

    try:
        record = client.get_version(ref)
    except NotFoundError:
        return _MISSING
    signatures = [e for e in record.evidence if e.kind == "signature"]
    if not signatures:
        return _UNPROVEN
    report = signing.verify_bundle_report(
        stored_bundle(client, record, signatures[-1].digest), trust, limits=Limits(), now=now
    )
    if not report.passed or report.signature is None:
        return _UNPROVEN
    return str(report.signature.manifest.digest)


def _diff_deployments(
    client: HttpRegistry,
    refs: tuple[ModelRef, ModelRef],
    trust: Trust,
    trust_set: TrustSet,
    now: datetime,
) -> DeploymentDiff:
    from mlprov.comparison import changed_roles, deployment_side, diff_deployments  # noqa: PLC0415
    from mlprov.verification import Revocations  # noqa: PLC0415

    records: tuple[DeploymentVersion, DeploymentVersion] = (
        client.deployment_version(refs[0]),
        client.deployment_version(refs[1]),
    )
    changed = changed_roles(records[0], records[1])
    revocations = Revocations.of(client.revocations())
    sides = []
    for record in records:
        current = {m.role: _member_digest(client, m.ref, trust, now) for m in record.members}
        members: dict[str, tuple[VersionSide, Manifest]] = {}
        for member in record.members:
            if member.role not in changed or current[member.role] == _MISSING:
                continue
            snapshot, blobs = _load(client, client.get_version(member.ref))
            members[member.role] = (
                _side(snapshot, trust_set, revocations, snapshot.manifest, now),
                blobs,
            )
        sides.append(deployment_side(record, current, members, trust_set, now=now, limits=Limits()))
    return diff_deployments(sides[0], sides[1])
