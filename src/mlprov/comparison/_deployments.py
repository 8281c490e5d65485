"""Two deployment versions side by side: members matched by role, each changed member
pair compared as two versions (:func:`~mlprov.comparison.diff_versions`), the metadata,
and each side's bundle statement with the verdict of its checks.

A role is ``added`` (only on the right), ``removed`` (only on the left), ``changed``
(both, naming another model version or binding another manifest digest) or ``same``.
Whether a statement verifies is read from the ``deployment.statement`` and
``deployment.members`` checks (:func:`mlprov.verification.deployment_checks`) run with
the registry's trust; the signer shown beside it is the one the registry recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mlprov.comparison._versions import (
    ValueChange,
    VersionDiff,
    VersionSide,
    compare_values,
    diff_versions,
)
from mlprov.config import Limits
from mlprov.manifest import Manifest
from mlprov.records import DeploymentMember, DeploymentVersion
from mlprov.verification import (
    CheckResult,
    CheckStatus,
    DeploymentSnapshot,
    MemberSnapshot,
    TrustSet,
    deployment_checks,
)

__all__ = [
    "DeploymentDiff",
    "DeploymentSide",
    "DeploymentSummary",
    "RoleChange",
    "changed_roles",
    "deployment_side",
    "diff_deployments",
]

#: The checks about the bundle statement itself (the members' bound digests aside).
_STATEMENT_CHECKS = ("deployment.statement", "deployment.members")


@dataclass(frozen=True)
class DeploymentSide:
    """One deployment version as the registry holds it, the checks of its bundle
    statement, and its members as version sides (by role)."""

    record: DeploymentVersion
    #: :func:`mlprov.verification.deployment_checks` with the registry's trust
    checks: tuple[CheckResult, ...]
    members: Mapping[str, VersionSide]
    #: role -> the member's files by their SHA-256 blob keys, compared instead of the
    #: manifests when the two members were hashed with different algorithms
    sha256_manifests: Mapping[str, Manifest] = field(default_factory=dict)


def changed_roles(left: DeploymentVersion, right: DeploymentVersion) -> set[str]:
    """The roles both versions have that name another model version or bind another
    manifest digest: the members whose two versions a diff must load and compare."""
    after = {m.role: (m.model, m.version, m.digest) for m in right.members}
    return {
        m.role
        for m in left.members
        if m.role in after and after[m.role] != (m.model, m.version, m.digest)
    }


def deployment_side(
    record: DeploymentVersion,
    current: Mapping[str, str],
    members: Mapping[str, tuple[VersionSide, Manifest]],
    trust: TrustSet,
    *,
    now: datetime,
    limits: Limits,
) -> DeploymentSide:
    """A deployment side: the bundle statement's checks with ``trust``, where
    ``current`` holds each role's member digest as the data source knows it now, and
    ``members`` the version side and SHA-256 manifest of each changed role. The one way
    both data sources (the local registry, a server over HTTP) make a side."""
    statement = DeploymentSnapshot(
        record.deployment,
        record.version,
        tuple(
            MemberSnapshot(m.role, m.model, m.version, m.digest, current[m.role])
            for m in record.members
        ),
        record.meta,
        record.bundle,
    )
    return DeploymentSide(
        record,
        deployment_checks(statement, trust, now=now, limits=limits),
        {role: side for role, (side, _blobs) in members.items()},
        {role: blobs for role, (_side, blobs) in members.items()},
    )


@dataclass(frozen=True)
class DeploymentSummary:
    ref: str
    bundle_digest: str
    signer: str  # as the registry recorded it
    created_at: str
    created_by: str
    #: the statement's checks all passed with the registry's trust
    statement_verified: bool
    checks: tuple[CheckResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "bundle_digest": self.bundle_digest,
            "signer": self.signer,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "statement": {
                "verified": self.statement_verified,
                "checks": [
                    {"id": c.id, "status": c.status.value, "message": c.message}
                    for c in self.checks
                ],
            },
        }


@dataclass(frozen=True)
class RoleChange:
    role: str
    change: str  # same | changed | added | removed
    left: DeploymentMember | None
    right: DeploymentMember | None
    #: for a ``changed`` role, its two model versions compared
    diff: VersionDiff | None

    def to_json(self) -> dict[str, Any]:
        def member(m: DeploymentMember | None) -> dict[str, Any] | None:
            if m is None:
                return None
            return {"model": m.model, "version": m.version, "digest": m.digest}

        return {
            "role": self.role,
            "change": self.change,
            "left": member(self.left),
            "right": member(self.right),
            "diff": self.diff.to_json() if self.diff is not None else None,
        }


@dataclass(frozen=True)
class DeploymentDiff:
    left: DeploymentSummary
    right: DeploymentSummary
    roles: tuple[RoleChange, ...]
    metadata: tuple[ValueChange, ...]

    def role(self, name: str) -> RoleChange:
        return next(r for r in self.roles if r.role == name)

    @property
    def identical(self) -> bool:
        """The same members (versions and digests) and the same metadata."""
        return all(r.change == "same" for r in self.roles) and all(
            m.change == "same" for m in self.metadata
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "deployment",
            "left": self.left.to_json(),
            "right": self.right.to_json(),
            "roles": [r.to_json() for r in self.roles],
            "metadata": {"entries": [m.to_json() for m in self.metadata]},
        }


def _summary(side: DeploymentSide) -> DeploymentSummary:
    record = side.record
    statement = tuple(c for c in side.checks if c.id in _STATEMENT_CHECKS)
    # Both checks must be there and pass: a statement that does not verify yields only
    # a failed ``deployment.statement``, and no ``deployment.members`` at all.
    verified = {c.id for c in statement if c.status == CheckStatus.PASSED} == set(
        _STATEMENT_CHECKS
    ) and all(c.status == CheckStatus.PASSED for c in statement)
    return DeploymentSummary(
        ref=record.ref,
        bundle_digest=record.bundle_digest,
        signer=record.signer,
        created_at=record.created_at,
        created_by=record.created_by,
        statement_verified=verified,
        checks=statement,
    )


def _member_diff(left: DeploymentSide, right: DeploymentSide, role: str) -> VersionDiff:
    before, after = left.members[role], right.members[role]
    if before.manifest.algorithm != after.manifest.algorithm:
        # Digests of different algorithms say nothing about equal bytes (as diff A B).
        before = replace(before, manifest=left.sha256_manifests[role])
        after = replace(after, manifest=right.sha256_manifests[role])
    return diff_versions(before, after)


def diff_deployments(left: DeploymentSide, right: DeploymentSide) -> DeploymentDiff:
    """Compare deployment version ``left`` -> ``right`` (module docstring). Each side
    must hold a version side for every role that is ``changed``."""
    before = {m.role: m for m in left.record.members}
    after = {m.role: m for m in right.record.members}
    roles = []
    for role in sorted(set(before) | set(after)):
        old, new = before.get(role), after.get(role)
        if old is None:
            roles.append(RoleChange(role, "added", None, new, None))
        elif new is None:
            roles.append(RoleChange(role, "removed", old, None, None))
        elif (old.model, old.version, old.digest) == (new.model, new.version, new.digest):
            roles.append(RoleChange(role, "same", old, new, None))
        else:
            roles.append(RoleChange(role, "changed", old, new, _member_diff(left, right, role)))
    return DeploymentDiff(
        _summary(left),
        _summary(right),
        tuple(roles),
        compare_values(dict(left.record.meta), dict(right.record.meta)),
    )
