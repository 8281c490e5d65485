"""Every requirement kind, passing and failing, over reports and facts built here.

Each case is one policy with one requirement (plus the implicit ``verified`` result) and
one candidate; the decision must allow or deny it, and the requirement's one-line reason
must say why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from mlprov.policy import (
    REQUIREMENT_KINDS,
    GateContext,
    RequirementStatus,
    Residence,
    Target,
    VerifiedApproval,
)
from mlprov.records import LineageEdge
from mlprov.verification import CheckResult, CheckStatus, VerificationReport
from support.policy_samples import (
    NOW,
    PRODUCTION,
    STAGING,
    attestation,
    context,
    decide,
    good_facts,
    identity,
    key_identity,
    later,
    load,
    passed_checks,
    report,
    version_record,
)


@dataclass(frozen=True)
class Case:
    name: str
    requirement: str
    allowed: bool
    says: str
    facts: dict[str, Any] = field(default_factory=dict)
    checks: tuple[CheckResult, ...] | None = None
    gate: dict[str, Any] = field(default_factory=dict)


def _champion(auc: float) -> VerificationReport:
    return report(good_facts(metrics={"val/auc": auc}), subject="credit/1")


def _lineage_check(status: CheckStatus, message: str = "parent verifies") -> CheckResult:
    return CheckResult("lineage.parent", status, message, "credit/2")


_EDGE = LineageEdge(
    relation="parent", target="base/1", digest="sha256:" + "01" * 32, registered=True
)

CASES = [
    # signatures: k of n distinct trusted model signers
    Case("signatures-one", "- signatures: {count: 1}", True, "1 distinct trusted model signer"),
    Case(
        "signatures-two-needed",
        "- signatures: {count: 2, signers: [ci, other-signer]}",
        False,
        "1 distinct of ci, other-signer model signer(s) (ci); 2 required",
    ),
    Case(
        "signatures-two",
        "- signatures: {count: 2, signers: [ci, other-signer]}",
        True,
        "2 distinct",
        facts={
            "model_signers": (
                ("ci", key_identity("ci-hint")),
                ("other-signer", key_identity("other-hint")),
            )
        },
    ),
    Case(
        "signatures-unsigned",
        "- signatures: {count: 1}",
        False,
        "0 distinct trusted model signer(s) (none)",
        facts={"model_signers": ()},
    ),
    Case(
        "signatures-untrusted-name",
        "- signatures: {count: 1}",
        False,
        "0 distinct",
        facts={"model_signers": (("builder", key_identity("builder-hint")),)},
    ),
    Case(
        "signatures-same-signer-twice",
        "- signatures: {count: 2}",
        False,
        "1 distinct",
        facts={"model_signers": (("ci", key_identity("ci-hint")), ("ci", key_identity("ci-hint")))},
    ),
    # provenance: trusted builders, expected build types
    Case(
        "provenance-trusted",
        "- provenance: {builders: [builder], build_types: [https://mlprov.dev/training/v1]}",
        True,
        "built by builder",
    ),
    Case(
        "provenance-untrusted-builder-id",
        "- provenance: {builders: [builder]}",
        False,
        "is not among the allowed builders",
        facts={"builder_id": "https://evil.example/builder"},
    ),
    Case(
        "provenance-none",
        "- provenance: {}",
        False,
        "no verified provenance",
        facts={"builder_id": None, "build_type": None},
    ),
    Case(
        "provenance-wrong-build-type",
        "- provenance: {build_types: [https://example.org/other/v1]}",
        False,
        "build type 'https://mlprov.dev/training/v1' is not one of",
    ),
    # evidence present
    Case(
        "evidence-all",
        "- evidence: {ml_bom: true, model_card: {sections: [intended_use]}, "
        "evaluation: {evaluators: [evaluator], predicate_type: https://mlprov.dev/eval/v1}}",
        True,
        "verified ML-BOM, model card, evaluation by evaluator",
    ),
    Case(
        "evidence-no-bom",
        "- evidence: {ml_bom: true}",
        False,
        "no verified ML-BOM",
        facts={"attestations": ()},
    ),
    Case(
        "evidence-card-section-empty",
        "- evidence: {model_card: {sections: [intended_use, ethical_considerations]}}",
        False,
        "sections ethical_considerations are not filled",
    ),
    Case(
        "evidence-evaluation-wrong-type",
        "- evidence: {evaluation: {predicate_type: https://example.org/other}}",
        False,
        "no verified evaluation attestation of type https://example.org/other",
    ),
    Case(
        "evidence-evaluation-by-non-evaluator",
        "- evidence: {evaluation: {}}",
        False,
        "from a trusted evaluator",
        facts={"attestations": (attestation("attestation", "ci", "model-signer"),)},
    ),
    # metric thresholds, from facts.metrics only
    Case("metric-holds", '- metric: "val/auc >= 0.90"', True, "val/auc = 0.93, required"),
    Case("metric-below", '- metric: "val/auc >= 0.95"', False, "val/auc = 0.93"),
    Case(
        "metric-subgroup-holds",
        '- metric: "val/auc@segment=retail >= 0.85"',
        True,
        "val/auc[segment=retail] = 0.88",
    ),
    Case(
        "metric-subgroup-below",
        '- metric: "val/auc[segment=retail] > 0.9"',
        False,
        "val/auc[segment=retail] = 0.88",
    ),
    Case(
        "metric-only-unsigned",
        '- metric: "test/f1 >= 0.5"',
        False,
        "test/f1 is not in the signed evidence (only in the registry's unsigned metadata",
        gate={"version": version_record(metrics={"test/f1": 0.99})},
    ),
    # no regression against the champion
    Case(
        "no-regression-better",
        "- no_regression: {metric: val/auc, tolerance: 0.01}",
        True,
        "vs champion credit/1",
        gate={"champion": _champion(0.92)},
    ),
    Case(
        "no-regression-within-tolerance",
        "- no_regression: {metric: val/auc, tolerance: 0.01}",
        True,
        "tolerance 0.01",
        gate={"champion": _champion(0.935)},
    ),
    Case(
        "no-regression-worse",
        "- no_regression: {metric: val/auc, tolerance: 0.01}",
        False,
        "val/auc = 0.93 vs champion credit/1 0.95",
        gate={"champion": _champion(0.95)},
    ),
    Case(
        "no-regression-lower-is-better",
        "- no_regression: {metric: val/auc, higher_is_better: false}",
        False,
        "required <= 0.9",
        gate={"champion": _champion(0.9)},
    ),
    Case(
        "no-regression-no-champion",
        "- no_regression: {metric: val/auc}",
        True,
        "no champion holds alias production",
    ),
    Case(
        "no-regression-champion-lacks-metric",
        "- no_regression: {metric: test/f1}",
        False,
        "not in the candidate's signed evidence",
        gate={"champion": _champion(0.9)},
    ),
    # verified lineage
    Case(
        "lineage-passed",
        "- verified_lineage: true",
        True,
        "1 lineage check(s) passed",
        checks=passed_checks(_lineage_check(CheckStatus.PASSED)),
        gate={"version": version_record(lineage=(_EDGE,))},
    ),
    Case(
        "lineage-failed",
        "- verified_lineage: true",
        False,
        "lineage does not verify: lineage.parent: digest differs",
        checks=passed_checks(_lineage_check(CheckStatus.FAILED, "digest differs")),
        gate={"version": version_record(lineage=(_EDGE,))},
    ),
    Case(
        "lineage-skipped-beyond-bound",
        "- verified_lineage: true",
        False,
        "skipped: beyond the depth bound",
        checks=passed_checks(_lineage_check(CheckStatus.SKIPPED, "beyond the depth bound")),
        gate={"version": version_record(lineage=(_EDGE,))},
    ),
    Case("lineage-none", "- verified_lineage: true", True, "the version has no lineage"),
    Case(
        "lineage-unchecked",
        "- verified_lineage: true",
        False,
        "the report has no lineage check",
        gate={"version": version_record(lineage=(_EDGE,))},
    ),
    # dataset allow-list
    Case(
        "datasets-uri-allowed",
        '- datasets: {uris: ["s3://data/credit/*"]}',
        True,
        "1 dataset(s) allowed: train",
    ),
    Case("datasets-name-allowed", "- datasets: {names: [train]}", True, "allowed"),
    Case(
        "datasets-refused",
        '- datasets: {uris: ["s3://data/fraud/*"]}',
        False,
        "dataset(s) not allowed: train (s3://data/credit/train.parquet)",
    ),
    Case(
        "datasets-none-signed",
        "- datasets: {names: [train]}",
        False,
        "no dataset in the signed evidence",
        facts={"datasets": ()},
    ),
    # licence allow-list
    Case("licenses-allowed", "- licenses: {allow: [apache-2.0, MIT]}", True, "Apache-2.0"),
    Case(
        "licenses-refused",
        "- licenses: {allow: [MIT]}",
        False,
        "licence(s) not allowed: GPL-3.0-only",
        facts={"licenses": ("MIT", "GPL-3.0-only")},
    ),
    Case(
        "licenses-unknown",
        "- licenses: {allow: [MIT]}",
        False,
        "no licence in the signed ML-BOM",
        facts={"licenses": ()},
    ),
    # approvals (more cases in test_policy_gate.py)
    Case(
        "approvals-two",
        "- approvals: {count: 2}",
        True,
        "2 distinct approver(s) of 2 required",
        gate={
            "approvals": (
                VerifiedApproval("alice", key_identity("alice-1-hint"), PRODUCTION),
                VerifiedApproval("bob", key_identity("bob-hint"), PRODUCTION),
            )
        },
    ),
    Case(
        "approvals-for-another-target",
        "- approvals: {count: 1}",
        False,
        "0 distinct approver(s) of 1 required",
        gate={"approvals": (VerifiedApproval("bob", key_identity("bob-hint"), STAGING),)},
    ),
    Case(
        "approvals-signer-without-role",
        "- approvals: {count: 1}",
        False,
        "evaluator does not hold the approver role",
        gate={
            "approvals": (
                VerifiedApproval("evaluator", key_identity("evaluator-hint"), PRODUCTION),
            )
        },
    ),
    # minimum time at another alias or stage
    Case(
        "min-time-enough",
        "- min_time: {alias: staging, duration: 24h}",
        True,
        "25h00m at alias staging, 24h00m required",
        gate={"residences": (Residence(STAGING, later(-25)),)},
    ),
    Case(
        "min-time-short",
        "- min_time: {alias: staging, duration: 24h}",
        False,
        "2h00m at alias staging, 24h00m required",
        gate={"residences": (Residence(STAGING, later(-2)),)},
    ),
    Case(
        "min-time-left-early",
        "- min_time: {stage: staging, duration: 1d}",
        False,
        "5h00m at stage Staging",
        gate={"residences": (Residence(Target("stage", "Staging"), later(-30), later(-25)),)},
    ),
    Case(
        "min-time-never",
        "- min_time: {alias: staging, duration: 1h}",
        False,
        "never at alias staging",
    ),
    # formats
    Case("formats-allowed", "- formats: {allow: [safetensors, onnx]}", True, "safetensors"),
    Case(
        "formats-pickle-import-forbidden",
        "- formats: {forbid: [pickle-import]}",
        False,
        "forbidden format(s): pickle-import",
        facts={"formats": ("pickle", "pickle-import")},
    ),
    Case(
        "formats-plain-pickle-not-forbidden",
        "- formats: {forbid: [pickle-import]}",
        True,
        "pickle",
        facts={"formats": ("pickle",)},
    ),
    Case(
        "formats-not-in-allow-list",
        "- formats: {allow: [safetensors]}",
        False,
        "format(s) not allowed: pickle",
        facts={"formats": ("safetensors", "pickle")},
    ),
    Case(
        "formats-unknown",
        "- formats: {forbid: [pickle]}",
        False,
        "no artefact format recorded",
        facts={"formats": ()},
    ),
    # CEL over the version record, the verified facts and the champion
    Case(
        "cel-true",
        "- cel: \"facts.metrics['val/auc'] > 0.9 && version.size < 2048 && champion == null\"",
        True,
        "is true",
    ),
    Case("cel-false", "- cel: \"'pickle' in facts.formats\"", False, "is false"),
    Case(
        "cel-champion",
        "- cel: \"facts.metrics['val/auc'] >= champion.facts.metrics['val/auc']\"",
        False,
        "is false",
        gate={"champion": _champion(0.99)},
    ),
    Case("cel-not-bool", '- cel: "1 + 1"', False, "not a boolean"),
    Case(
        "cel-evaluation-error",
        "- cel: \"facts.metrics['missing'] > 0.5\"",
        False,
        "CEL evaluation error",
    ),
    Case(
        "cel-null-champion-error",
        "- cel: \"facts.metrics['val/auc'] >= champion.facts.metrics['val/auc']\"",
        False,
        "CEL evaluation error",
    ),
]


def test_every_kind_has_a_passing_and_a_failing_case() -> None:
    kinds = {case.requirement.split(":", 1)[0].removeprefix("- ") for case in CASES}
    assert kinds == set(REQUIREMENT_KINDS)
    for kind in REQUIREMENT_KINDS:
        outcomes = {c.allowed for c in CASES if c.requirement.startswith(f"- {kind}:")}
        assert outcomes == {True, False}, kind


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_requirement(case: Case) -> None:
    policy_set = load(case.requirement)
    facts = good_facts(**case.facts)
    candidate = report(facts, case.checks)
    gate: GateContext = context(**case.gate)
    decision = decide(policy_set, candidate, gate)
    assert decision.allowed is case.allowed, decision.message
    (result,) = [r for r in decision.results if r.kind != "verified"]
    assert result.status == (RequirementStatus.PASSED if case.allowed else RequirementStatus.FAILED)
    assert case.says in result.message
    if not case.allowed:
        assert f"{result.id}: {result.message}" in decision.failure_lines()
        assert result.id in decision.message
    assert decision.policy_digest == policy_set.digest
    assert decision.policies == ("prod",)


def test_a_failed_verification_check_denies_unless_the_policy_waives_it() -> None:
    failed = passed_checks(
        CheckResult("signature", CheckStatus.FAILED, "signed by an untrusted key", "credit/2")
    )
    decision = decide(load("- signatures: {count: 1}"), report(checks=failed))
    assert not decision.allowed
    assert [r.id for r in decision.failures] == ["prod/verified"]
    assert "signature: signed by an untrusted key" in decision.failures[0].message

    sandbox = load("- signatures: {count: 1}", options="require_verified: false")
    assert decide(sandbox, report(checks=failed)).allowed


def test_an_empty_report_is_not_verified() -> None:
    decision = decide(load("- signatures: {count: 1}"), report(checks=()))
    assert not decision.allowed
    assert "nothing was verified" in decision.failures[0].message


def test_metric_in_unsigned_metadata_never_counts_even_if_facts_are_empty() -> None:
    candidate = report(good_facts(metrics={}))
    gate = context(version=version_record(metrics={"val/auc": 0.99}))
    decision = decide(load('- metric: "val/auc >= 0.9"'), candidate, gate)
    assert not decision.allowed
    assert "unsigned metadata" in decision.failures[0].message


def test_an_error_inside_a_requirement_is_a_denial_with_the_error() -> None:
    # A champion whose facts carry a metric that is not a number: comparing fails.
    champion = replace(_champion(0.9), facts=good_facts(metrics={"val/auc": "high"}))
    decision = decide(load("- no_regression: {metric: val/auc}"), gate=context(champion=champion))
    assert not decision.allowed
    assert "error while evaluating: TypeError" in decision.failures[0].message


def test_results_render_as_verify_checks() -> None:
    decision = decide(load('- metric: "val/auc >= 0.99"'))
    checks = decision.checks
    assert [c.id for c in checks] == ["policy:prod/verified", "policy:prod/metric"]
    assert [c.status for c in checks] == [CheckStatus.PASSED, CheckStatus.FAILED]
    assert all(c.subject == "credit/2" for c in checks)
    assert decision.to_json()["results"][1]["status"] == "failed"


def test_now_is_the_gates_clock() -> None:
    gate = context(residences=(Residence(STAGING, NOW),))
    policy_set = load("- min_time: {alias: staging, duration: 1h}")
    assert not decide(policy_set, gate=gate).allowed
    assert decide(policy_set, gate=replace(gate, now=later(1))).allowed


def test_pattern_approvers_are_told_apart_by_subject() -> None:
    approvals = tuple(
        VerifiedApproval("reviewers", identity(f"{who}@reviewers.example.org"), PRODUCTION)
        for who in ("erin", "frank")
    )
    decision = decide(load("- approvals: {count: 2}"), gate=context(approvals=approvals))
    assert decision.allowed, decision.message
