"""Two registered versions side by side, facts from verified evidence.

What a reviewer reads before ``mlprov approve`` must be what the signed documents say,
not what a database row says (ADR 0031): each section's values for a side come from
that side's verification report when its evidence verified, and from the registry's
record otherwise, and the section says which (``verified`` per side):

* ``params``, ``code``: the newest verified SLSA provenance mlprov signed
  (``externalParameters.params`` flattened to dotted keys, ``externalParameters.source``);
* ``metrics`` (subgroups as ``auc[segment=retail]``): ``VerifiedFacts.metrics``, when a
  verified ML-BOM, model card or evaluation result exists;
* ``datasets``: ``VerifiedFacts.datasets``, when verified provenance or an ML-BOM exists;
* ``lineage``: the recorded edges, verified when ``registry.records`` passed (the edges
  equal the signed documents') and no ``lineage.*`` check failed.

Evidence is listed per side with who the registry recorded as its signer and the
verdict of its check, so unverified evidence shows as such. Files are compared by
digest (:func:`~mlprov.comparison.compare_files`).

A deployment diff compares members by role, each pair with :func:`diff_versions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlprov.canonical import canonical_json
from mlprov.comparison._files import FileComparison, compare_files
from mlprov.config import Limits
from mlprov.errors import InvalidInputError
from mlprov.manifest import Manifest
from mlprov.provenance import (
    SLSA_PREDICATE_TYPE,
    flatten_params,
    normalize_metrics,
)
from mlprov.records import ModelVersion
from mlprov.verification import (
    CheckStatus,
    Revocations,
    TrustSet,
    VerificationReport,
    VersionSnapshot,
    evidence_check_ids,
    verify_snapshot,
)

__all__ = [
    "SECTIONS",
    "EvidenceItem",
    "Section",
    "ValueChange",
    "VersionDiff",
    "VersionSide",
    "VersionSummary",
    "compare_values",
    "diff_versions",
    "version_side",
]

#: The sections of a version diff, in the order they are shown.
SECTIONS = ("params", "metrics", "datasets", "code", "lineage")

#: A check status -> how a piece of evidence is shown.
_EVIDENCE_STATUS = {
    CheckStatus.PASSED: "verified",
    CheckStatus.FAILED: "unverified",
    CheckStatus.SKIPPED: "not counted",
}


@dataclass(frozen=True)
class VersionSide:
    """One version as the registry holds it, and what verifying it proved."""

    record: ModelVersion
    manifest: Manifest
    report: VerificationReport
    #: evidence digest -> the id of the report's check about it
    #: (:func:`mlprov.verification.evidence_check_ids`)
    evidence_checks: Mapping[str, str]


def version_side(
    snapshot: VersionSnapshot,
    trust: TrustSet,
    manifest: Manifest,
    *,
    revocations: Revocations,
    limits: Limits,
    now: datetime | None = None,
) -> VersionSide:
    """A version side: ``snapshot`` verified with ``trust``, its files as ``manifest``.
    The one way both data sources (the local registry, a server read over HTTP) make a
    side, so that what a diff shows differs only by what it was given."""
    report = verify_snapshot(snapshot, trust, revocations=revocations, limits=limits, now=now)
    return VersionSide(snapshot.record, manifest, report, evidence_check_ids(snapshot.evidence))


@dataclass(frozen=True)
class ValueChange:
    """One key of a section: its value on each side (None when absent there)."""

    key: str
    left: Any
    right: Any
    change: str  # same | changed | added | removed

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "left": self.left, "right": self.right, "change": self.change}


@dataclass(frozen=True)
class Section:
    name: str
    entries: tuple[ValueChange, ...]
    #: whether each side's values come from verified evidence (else from the record)
    verified: tuple[bool, bool]

    @property
    def differences(self) -> tuple[ValueChange, ...]:
        return tuple(e for e in self.entries if e.change != "same")

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": {"left": self.verified[0], "right": self.verified[1]},
            "entries": [e.to_json() for e in self.entries],
        }


@dataclass(frozen=True)
class EvidenceItem:
    """One piece of evidence stored with a version and the verdict of its check."""

    kind: str
    predicate_type: str
    digest: str
    signer: str  # as the registry recorded it
    status: str  # verified | unverified | not counted | not checked
    check: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "predicate_type": self.predicate_type,
            "digest": self.digest,
            "signer": self.signer,
            "status": self.status,
            "check": self.check,
            "message": self.message,
        }


@dataclass(frozen=True)
class VersionSummary:
    ref: str
    digest: str
    created_at: str
    created_by: str
    verified: bool  # every check of its report passed or was skipped
    failed_checks: tuple[str, ...]
    evidence: tuple[EvidenceItem, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "verified": self.verified,
            "failed_checks": list(self.failed_checks),
            "evidence": [e.to_json() for e in self.evidence],
        }


@dataclass(frozen=True)
class VersionDiff:
    left: VersionSummary
    right: VersionSummary
    sections: tuple[Section, ...]
    files: FileComparison

    def section(self, name: str) -> Section:
        return next(s for s in self.sections if s.name == name)

    @property
    def identical(self) -> bool:
        """Same files and no difference in any section (evidence aside)."""
        return self.files.identical and not any(s.differences for s in self.sections)

    def to_json(self) -> dict[str, Any]:
        return {
            "left": self.left.to_json(),
            "right": self.right.to_json(),
            **{s.name: s.to_json() for s in self.sections},
            "files": self.files.to_json(),
        }


def diff_versions(left: VersionSide, right: VersionSide) -> VersionDiff:
    """Compare ``left`` -> ``right`` (module docstring). Both manifests must use one
    digest algorithm; the registry gives SHA-256 ones when the versions' differ."""
    sections = tuple(
        _section(name, reader(left), reader(right)) for name, reader in _READERS.items()
    )
    return VersionDiff(
        _summary(left), _summary(right), sections, compare_files(left.manifest, right.manifest)
    )


#: (values by key, whether they come from verified evidence)
_Values = tuple[dict[str, Any], bool]


def _same(a: Any, b: Any) -> bool:
    try:
        return canonical_json(a, "value") == canonical_json(b, "value")
    except InvalidInputError:
        return bool(a == b)


def compare_values(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[ValueChange, ...]:
    """Every key of ``before`` and ``after``, in key order, with how it changed."""
    entries = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            change = "added"
        elif key not in after:
            change = "removed"
        else:
            change = "same" if _same(before[key], after[key]) else "changed"
        entries.append(ValueChange(key, before.get(key), after.get(key), change))
    return tuple(entries)


def _section(name: str, left: _Values, right: _Values) -> Section:
    return Section(name, compare_values(left[0], right[0]), (left[1], right[1]))


def _verified_provenance(side: VersionSide) -> Mapping[str, Any] | None:
    """``externalParameters`` of the newest verified SLSA provenance, if it has them."""
    found = [
        a
        for a in side.report.facts.attestations
        if a.kind == "provenance" and a.predicate_type == SLSA_PREDICATE_TYPE
    ]
    if not found:
        return None
    definition = found[-1].predicate.get("buildDefinition")
    external = definition.get("externalParameters") if isinstance(definition, dict) else None
    return external if isinstance(external, dict) else None


def _params(side: VersionSide) -> _Values:
    external = _verified_provenance(side)
    signed = external.get("params") if external is not None else None
    if isinstance(signed, dict):
        return flatten_params(signed), True
    return flatten_params(side.record.params), False


def _metrics(side: VersionSide) -> _Values:
    facts = side.report.facts
    if facts.metrics or any(a.kind in ("bom", "model-card") for a in facts.attestations):
        return dict(facts.metrics), True
    try:
        return normalize_metrics(side.record.metrics, numbers_only=False), False
    except InvalidInputError:
        return dict(side.record.metrics), False


def _datasets(side: VersionSide) -> _Values:
    facts = side.report.facts
    if any(a.kind in ("provenance", "bom") for a in facts.attestations):
        return {n: {"uri": u, "digest": d} for n, u, d in facts.datasets}, True
    return {d.name: {"uri": d.uri, "digest": d.digest} for d in side.record.datasets}, False


def _code(side: VersionSide) -> _Values:
    external = _verified_provenance(side)
    if external is not None:
        source = external.get("source")
        values: dict[str, Any] = {}
        if isinstance(source, dict):
            values = {
                k: source[k] for k in ("commit", "repository") if isinstance(source.get(k), str)
            }
        return values, True
    record = side.record
    values = {"commit": record.code_commit, "repository": record.code_repo}
    return {k: v for k, v in values.items() if v is not None}, False


def _lineage(side: VersionSide) -> _Values:
    checks = side.report.checks
    records_passed = any(
        c.id == "registry.records" and c.status == CheckStatus.PASSED for c in checks
    )
    lineage_failed = any(
        c.id.startswith("lineage.") and c.status == CheckStatus.FAILED for c in checks
    )
    edges = {f"{e.relation} {e.target}": e.digest for e in side.record.lineage}
    return edges, records_passed and not lineage_failed


_READERS: dict[str, Callable[[VersionSide], _Values]] = {
    "params": _params,
    "metrics": _metrics,
    "datasets": _datasets,
    "code": _code,
    "lineage": _lineage,
}


def _summary(side: VersionSide) -> VersionSummary:
    checks = {c.id: c for c in side.report.checks}
    evidence = []
    for item in side.record.evidence:
        check_id = side.evidence_checks.get(item.digest)
        check = checks.get(check_id) if check_id is not None else None
        evidence.append(
            EvidenceItem(
                kind=item.kind,
                predicate_type=item.predicate_type,
                digest=item.digest,
                signer=item.signer,
                status=_EVIDENCE_STATUS[check.status] if check is not None else "not checked",
                check=check_id if check is not None else None,
                message=check.message if check is not None else "no check judged it",
            )
        )
    record = side.record
    return VersionSummary(
        ref=record.ref,
        digest=record.digest,
        created_at=record.created_at,
        created_by=record.created_by,
        verified=side.report.passed,
        failed_checks=tuple(c.id for c in side.report.failures),
        evidence=tuple(evidence),
    )
