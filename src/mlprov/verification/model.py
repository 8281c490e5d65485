"""What the verification engine takes and gives: pure values, no IO.

The registry loads a :class:`VersionSnapshot` (a version's record, its recorded manifest,
its evidence as the exact stored bytes, and the snapshots of its lineage ancestors) and
the :class:`TrustSet` of its active policy; :func:`mlprov.verification.verify_snapshot` checks one
against the other and returns a :class:`VerificationReport`: one :class:`CheckResult` per
check (passed, failed or skipped, and why) and the :class:`VerifiedFacts` it proved, which
the policy engine reads (never the unsigned registry record) for metric thresholds,
datasets, licences, formats and builders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mlprov.manifest import Manifest
from mlprov.records import Evidence, ModelVersion, Revocation
from mlprov.signing import SignerIdentity, Trust

__all__ = [
    "ROLES",
    "CheckResult",
    "CheckStatus",
    "Revocations",
    "StoredEvidence",
    "TrustSet",
    "TrustedSigner",
    "VerificationReport",
    "VerifiedAttestation",
    "VerifiedFacts",
    "VersionSnapshot",
]

#: The roles trust is given for (issue: "model signer, builder, evaluator, approver,
#: registry"). A signer trusted for one role is not trusted for another.
ROLES = ("model-signer", "builder", "evaluator", "approver", "registry")


@dataclass(frozen=True)
class TrustedSigner:
    """One trusted key, certificate root or Sigstore identity, for the roles it holds.

    ``builder_ids`` (builder role only) are the SLSA ``builder.id`` values this signer
    may claim; a provenance naming another builder is not trusted even if signed by it.
    """

    name: str
    roles: frozenset[str]
    trust: Trust
    builder_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrustSet:
    """Everything a registry trusts, by role. Empty means nothing is trusted."""

    signers: tuple[TrustedSigner, ...] = ()

    def for_role(self, role: str) -> tuple[TrustedSigner, ...]:
        return tuple(s for s in self.signers if role in s.roles)


@dataclass(frozen=True)
class Revocations:
    """What is revoked: versions (``name/number``), keys (hints) and identities."""

    versions: Mapping[str, str] = field(default_factory=dict)  # ref -> reason
    key_hints: Mapping[str, str] = field(default_factory=dict)  # hint -> reason
    identities: Mapping[str, str] = field(default_factory=dict)  # identity -> reason

    @classmethod
    def of(cls, found: Iterable[Revocation]) -> Revocations:
        """The revocations as the engine takes them, from the stored (or sent) records."""
        found = tuple(found)
        return cls(
            versions={r.value: r.reason for r in found if r.kind == "version"},
            key_hints={r.value: r.reason for r in found if r.kind == "key"},
            identities={r.value: r.reason for r in found if r.kind == "identity"},
        )


@dataclass(frozen=True)
class StoredEvidence:
    """One piece of evidence: its record and the exact bytes stored."""

    record: Evidence
    bundle: bytes = field(repr=False)


@dataclass(frozen=True)
class VersionSnapshot:
    """A version as the registry holds it, loaded in one read transaction.

    ``ancestors`` maps each registered lineage target (``name/number``) to its own
    snapshot, loaded up to the registry's lineage depth bound; a target beyond the bound
    maps to None (its check is skipped, and says so).
    """

    record: ModelVersion
    manifest: Manifest
    evidence: tuple[StoredEvidence, ...]
    ancestors: Mapping[str, VersionSnapshot | None] = field(default_factory=dict)
    #: path -> lower-case hex SHA-256 of each file's bytes (its blob key). Needed only
    #: when the manifest is not plain SHA-256: an attestation attached from a CI system
    #: may name one of the model's files by its SHA-256 instead of the model digest.
    file_sha256: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return self.record.ref


class CheckStatus(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One check: a stable id (``signature``, ``provenance.builder``, ``lineage.parent``,
    ...), its status, one line saying why, and the version it is about."""

    id: str
    status: CheckStatus
    message: str
    subject: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "message": self.message,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class VerifiedAttestation:
    """A statement whose signature verified against a trusted signer of ``role``."""

    kind: str  # evidence kind: provenance, bom, model-card, attestation, approval, ...
    predicate_type: str
    signer: SignerIdentity
    signer_name: str  # the TrustedSigner's name in the policy
    role: str
    predicate: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class VerifiedFacts:
    """What the verified evidence proves; the policy engine reads only this."""

    model_signers: tuple[tuple[str, SignerIdentity], ...] = ()  # (policy name, identity)
    builder_id: str | None = None
    build_type: str | None = None
    attestations: tuple[VerifiedAttestation, ...] = ()
    #: Metrics read from signed evidence (the ML-BOM, the model card, evaluation results
    #: from trusted evaluators), keyed as mlprov.provenance normalises them: "auc", or
    #: "auc[region=eu,segment=retail]" for a subgroup (factors sorted). Look one up with
    #: :meth:`metric`, which also reads the CLI's "auc@segment=retail" spelling.
    metrics: Mapping[str, float] = field(default_factory=dict)
    datasets: tuple[tuple[str, str, str], ...] = ()  # (name, uri, digest) from signed docs
    licenses: tuple[str, ...] = ()  # SPDX ids from the signed ML-BOM
    formats: tuple[str, ...] = ()  # artefact formats recorded in the signed ML-BOM
    card_sections: frozenset[str] = frozenset()  # filled model card sections

    def metric(self, key: str) -> float | None:
        """The verified value of a metric, or None: ``auc``, ``auc[segment=retail]`` or
        ``auc@segment=retail`` (factors in any order). Raises InvalidInputError (exit 2)
        for a key that is not a metric name."""
        from mlprov.provenance import MetricKey, parse_metric_flag  # noqa: PLC0415

        text = key.strip()
        if "@" in text:
            canonical, _ = parse_metric_flag(f"{text}=0")
        else:
            canonical = str(MetricKey.parse(text))
        return self.metrics.get(canonical)

    def to_json(self) -> dict[str, Any]:
        """The facts as plain JSON (attestations without their predicates)."""
        return {
            "model_signers": [
                {"name": name, "signer": identity.to_json_value()}
                for name, identity in self.model_signers
            ],
            "builder_id": self.builder_id,
            "build_type": self.build_type,
            "attestations": [
                {
                    "kind": a.kind,
                    "predicate_type": a.predicate_type,
                    "signer_name": a.signer_name,
                    "role": a.role,
                    "signer": a.signer.to_json_value(),
                }
                for a in self.attestations
            ],
            "metrics": dict(self.metrics),
            "datasets": [{"name": n, "uri": u, "digest": d} for n, u, d in self.datasets],
            "licenses": list(self.licenses),
            "formats": list(self.formats),
            "card_sections": sorted(self.card_sections),
        }


@dataclass(frozen=True)
class VerificationReport:
    subject: str
    checks: tuple[CheckResult, ...]
    facts: VerifiedFacts = VerifiedFacts()

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.status != CheckStatus.FAILED for c in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status == CheckStatus.FAILED)

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
        }
