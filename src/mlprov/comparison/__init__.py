"""Comparing what the registry holds: two versions side by side, and a registered
version's files with a re-derived copy's. Pure: records, manifests, snapshots and
trust sets in (a side is verified with :mod:`mlprov.verification`), differences out; it
opens no file, socket or database, so the local registry and a client reading a server
over HTTP run exactly this code on what they loaded (ADR 0055).

Stable API (this module's ``__all__``)::

    compare_files(left, right) -> FileComparison      # added, removed, changed, unchanged
    diff_versions(left, right) -> VersionDiff          # two VersionSides: sections + files
    diff_deployments(left, right) -> DeploymentDiff    # two DeploymentSides: roles + metadata
    version_side(snapshot, trust, manifest, ...)       # a snapshot verified -> VersionSide
    deployment_side(record, current, members, trust, ...)  # a statement checked -> side
    changed_roles(left, right) -> set[str]             # the members a deployment diff loads
    compare_values(before, after) -> ValueChanges      # two mappings key by key

What each section is read from is in :mod:`mlprov.comparison._versions`; docs/diff.md
shows the command and its JSON.
"""

from __future__ import annotations

from mlprov.comparison._deployments import (
    DeploymentDiff,
    DeploymentSide,
    DeploymentSummary,
    RoleChange,
    changed_roles,
    deployment_side,
    diff_deployments,
)
from mlprov.comparison._files import FileChange, FileComparison, compare_files
from mlprov.comparison._versions import (
    SECTIONS,
    EvidenceItem,
    Section,
    ValueChange,
    VersionDiff,
    VersionSide,
    VersionSummary,
    compare_values,
    diff_versions,
    version_side,
)

__all__ = [
    "SECTIONS",
    "DeploymentDiff",
    "DeploymentSide",
    "DeploymentSummary",
    "EvidenceItem",
    "FileChange",
    "FileComparison",
    "RoleChange",
    "Section",
    "ValueChange",
    "VersionDiff",
    "VersionSide",
    "VersionSummary",
    "changed_roles",
    "compare_files",
    "compare_values",
    "deployment_side",
    "diff_deployments",
    "diff_versions",
    "version_side",
]
