"""Decisions about moves: separation of duties, waivers, rollback, deletion, selection."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from mlprov.errors import PolicyDenied
from mlprov.policy import (
    Move,
    RequirementStatus,
    Target,
    VerifiedApproval,
    VerifiedWaiver,
    WaiverGrant,
    evaluate,
    load_policy_set,
)
from mlprov.verification import CheckStatus
from support.policy_samples import (
    NOW,
    PRODUCTION,
    STAGING,
    context,
    decide,
    good_facts,
    identity,
    key_identity,
    later,
    load,
    policy_files,
    report,
)


def _approval(name: str, hint: str | None = None, target: Target = PRODUCTION) -> VerifiedApproval:
    return VerifiedApproval(name, key_identity(hint or f"{name}-hint"), target)


TWO_APPROVALS = "- approvals: {count: 2}"


def _approvals_result(*approvals: VerifiedApproval, **gate: object) -> tuple[bool, str]:
    decision = decide(load(TWO_APPROVALS), gate=context(approvals=approvals, **gate))
    (result,) = [r for r in decision.results if r.kind == "approvals"]
    return decision.allowed, result.message


def test_two_distinct_approvers_pass() -> None:
    allowed, message = _approvals_result(_approval("alice", "alice-1-hint"), _approval("bob"))
    assert allowed, message


def test_one_approver_with_the_same_key_twice_counts_once() -> None:
    allowed, message = _approvals_result(
        _approval("alice", "alice-1-hint"), _approval("alice", "alice-1-hint")
    )
    assert not allowed
    assert message.startswith("1 distinct approver(s) of 2 required")


def test_one_identity_with_two_keys_counts_once() -> None:
    # alice is one declared signer with two keys: two approvals, two keys, one person.
    allowed, message = _approvals_result(
        _approval("alice", "alice-1-hint"), _approval("alice", "alice-2-hint")
    )
    assert not allowed
    assert message.startswith("1 distinct approver(s) of 2 required: alice")


def test_the_creator_cannot_approve_their_own_version() -> None:
    # The version's record says dave created it; dave's approval is not counted.
    dave = VerifiedApproval("dave", identity("dave@example.org"), PRODUCTION)
    allowed, message = _approvals_result(dave, _approval("bob"))
    assert not allowed
    assert "1 distinct approver(s) of 2 required" in message
    assert "not counted: dave (sigstore:dave@example.org (https://accounts.example)) created" in (
        message
    )


def test_the_creator_is_matched_by_identity_subject_too() -> None:
    carol = VerifiedApproval("carol", identity("carol@example.org"), PRODUCTION)
    allowed, message = _approvals_result(carol, _approval("bob"), creator="carol@example.org")
    assert not allowed
    assert "created the version" in message


def test_a_signer_of_the_version_cannot_approve_it() -> None:
    facts = good_facts(
        model_signers=(("ci", key_identity("ci-hint")), ("alice", key_identity("x")))
    )
    approvals = (_approval("alice", "alice-2-hint"), _approval("bob"))
    decision = decide(load(TWO_APPROVALS), report(facts), context(approvals=approvals))
    assert not decision.allowed
    assert "alice (key:alice-2-hint) signed the version" in decision.failures[0].message


def test_a_signer_of_other_evidence_cannot_approve_it() -> None:
    carol = identity("carol@example.org")
    gate = context(
        approvals=(VerifiedApproval("carol", carol, PRODUCTION), _approval("bob")),
        signers=(carol,),
    )
    decision = decide(load(TWO_APPROVALS), gate=gate)
    assert not decision.allowed
    assert "signed the version's evidence" in decision.failures[0].message


# -- waivers ------------------------------------------------------------------------------

WAIVABLE = """\
waivers:
  requirements: [auc]
  approvers: 2
  max_duration: 48h
"""


def _waiver(
    *,
    expires_in: float = 24,
    issued_hours_ago: float = 1,
    grants: tuple[WaiverGrant, ...] | None = None,
    requirements: tuple[str, ...] = ("prod/auc",),
    target: Target = PRODUCTION,
) -> VerifiedWaiver:
    return VerifiedWaiver(
        target=target,
        requirements=requirements,
        reason="hotfix for incident 42",
        issued_at=later(-issued_hours_ago),
        expires_at=later(expires_in),
        granted_by=grants
        if grants is not None
        else (
            WaiverGrant("alice", key_identity("alice-1-hint")),
            WaiverGrant("bob", key_identity("bob-hint")),
        ),
    )


def _waived(waiver: VerifiedWaiver) -> tuple[bool, RequirementStatus, str]:
    policy_set = load('- id: auc\n  metric: "val/auc >= 0.99"', options=WAIVABLE)
    decision = decide(policy_set, gate=context(waivers=(waiver,)))
    (result,) = [r for r in decision.results if r.id == "prod/auc"]
    return decision.allowed, result.status, result.message


def test_a_valid_waiver_admits_and_says_so_loudly() -> None:
    allowed, status, message = _waived(_waiver())
    assert allowed
    assert status == RequirementStatus.WAIVED
    assert "waived until 2026-12-11T12:00:00+00:00: hotfix for incident 42" in message
    policy_set = load('- id: auc\n  metric: "val/auc >= 0.99"', options=WAIVABLE)
    check = decide(policy_set, gate=context(waivers=(_waiver(),))).checks[-1]
    assert check.status == CheckStatus.PASSED
    assert check.message.startswith("WAIVED: ")


def test_an_expired_waiver_waives_nothing() -> None:
    allowed, status, message = _waived(_waiver(expires_in=-1, issued_hours_ago=10))
    assert not allowed
    assert status == RequirementStatus.FAILED
    assert "waiver expired at 2026-12-10T11:00:00+00:00" in message


def test_a_waiver_longer_than_the_policy_allows_waives_nothing() -> None:
    allowed, _, message = _waived(_waiver(expires_in=72))
    assert not allowed
    assert "longer than the policy's maximum of 48h00m" in message


def test_a_waiver_needs_two_distinct_holders_of_the_role() -> None:
    one_person = (
        WaiverGrant("alice", key_identity("alice-1-hint")),
        WaiverGrant("alice", key_identity("alice-2-hint")),
    )
    allowed, _, message = _waived(_waiver(grants=one_person))
    assert not allowed
    assert "granted by 1 distinct holder(s) of the approver role" in message
    no_role = (WaiverGrant("bob", key_identity("bob-hint")), WaiverGrant("ci", key_identity("c")))
    assert not _waived(_waiver(grants=no_role))[0]


def test_a_waiver_for_another_requirement_or_target_waives_nothing() -> None:
    assert not _waived(_waiver(requirements=("prod/signatures",)))[0]
    assert not _waived(_waiver(target=STAGING))[0]


def test_a_requirement_the_policy_does_not_let_be_waived_stays_failed() -> None:
    policy_set = load(
        '- id: auc\n  metric: "val/auc >= 0.99"\n- id: auc2\n  metric: "val/auc >= 0.999"',
        options=WAIVABLE,
    )
    waiver = replace(_waiver(), requirements=("prod/auc", "prod/auc2"))
    decision = decide(policy_set, gate=context(waivers=(waiver,)))
    assert not decision.allowed
    assert [r.id for r in decision.failures] == ["prod/auc2"]


def test_waivers_are_refused_without_the_policy_option() -> None:
    decision = decide(
        load('- id: auc\n  metric: "val/auc >= 0.99"'), gate=context(waivers=(_waiver(),))
    )
    assert not decision.allowed


# -- rollback, deletion, selection --------------------------------------------------------

ROLLBACK_POLICY = """\
- no_regression: {metric: val/auc}
- approvals: {count: 1}
- metric: "val/auc >= 0.9"
"""


def test_rollback_to_a_previously_admitted_version_skips_move_requirements() -> None:
    champion = report(good_facts(metrics={"val/auc": 0.99}), subject="credit/3")
    gate = context(champion=champion, previously_admitted=True, move=Move(3, 2, rollback=True))
    denied = decide(load(ROLLBACK_POLICY), gate=gate)
    assert not denied.allowed  # no rollback option: an ordinary move
    policy_set = load(ROLLBACK_POLICY, options="rollback: {previously_admitted: true}")
    decision = decide(policy_set, gate=gate)
    assert decision.allowed, decision.message
    statuses = {r.kind: r.status for r in decision.results}
    assert statuses["no_regression"] == RequirementStatus.SKIPPED
    assert statuses["approvals"] == RequirementStatus.SKIPPED
    assert statuses["metric"] == RequirementStatus.PASSED  # the version is still judged


def test_rollback_to_a_version_never_admitted_is_an_ordinary_move() -> None:
    policy_set = load(ROLLBACK_POLICY, options="rollback: {previously_admitted: true}")
    champion = report(good_facts(metrics={"val/auc": 0.99}), subject="credit/3")
    decision = decide(policy_set, gate=context(champion=champion, move=Move(3, 2, rollback=True)))
    assert not decision.allowed


def test_rollback_skip_list_is_explicit_when_given() -> None:
    policy_set = load(
        ROLLBACK_POLICY, options="rollback: {previously_admitted: true, skip: [approvals]}"
    )
    champion = report(good_facts(metrics={"val/auc": 0.99}), subject="credit/3")
    gate = context(champion=champion, previously_admitted=True)
    decision = decide(policy_set, gate=gate)
    assert [r.id for r in decision.failures] == ["prod/no_regression"]


def test_deleting_a_protected_alias_needs_allow_delete() -> None:
    gate = context(move=Move(2, None))
    policy_set = load("- signatures: {count: 1}")
    denied = evaluate(policy_set, model="credit", target=PRODUCTION, report=None, context=gate)
    assert not denied.allowed
    assert "does not allow removing alias production" in denied.message
    with pytest.raises(PolicyDenied) as raised:
        denied.raise_for_denial()
    assert raised.value.exit_code == 1
    allowing = load("- signatures: {count: 1}", options="allow_delete: true")
    assert evaluate(allowing, model="credit", target=PRODUCTION, report=None, context=gate).allowed


def test_no_policy_selecting_the_target_allows_and_says_so() -> None:
    policy_set = load("- signatures: {count: 5}")
    decision = decide(policy_set, report(good_facts(model_signers=())), target=STAGING)
    assert decision.allowed
    assert decision.policies == ()
    assert decision.results == ()
    assert decision.message == "no policy selects alias staging of credit: allowed"
    assert decision.policy_digest == policy_set.digest


def test_policies_select_by_model_pattern_and_stage() -> None:
    files = policy_files(
        """\
        version: 1
        policies:
          - name: credit-prod
            models: ["credit-*"]
            targets: {stages: [production]}
            require:
              - metric: "val/auc >= 0.99"
          - name: everyone-prod
            models: ["*"]
            targets: {aliases: ["prod*"], stages: [Production]}
            require:
              - signatures: {count: 1}
        """
    )
    policy_set = load_policy_set(files)
    stage = Target("stage", "Production")
    both = decide(policy_set, model="credit-risk", target=stage)
    assert both.policies == ("credit-prod", "everyone-prod")
    assert [r.id for r in both.failures] == ["credit-prod/metric"]
    other = decide(policy_set, model="fraud", target=stage)
    assert other.policies == ("everyone-prod",)
    assert other.allowed
    assert decide(policy_set, model="credit-risk", target=Target("alias", "prod-eu")).policies == (
        "everyone-prod",
    )


def test_the_gates_clock_decides_waiver_expiry() -> None:
    waiver = _waiver(expires_in=2)
    policy_set = load('- id: auc\n  metric: "val/auc >= 0.99"', options=WAIVABLE)
    assert decide(policy_set, gate=context(waivers=(waiver,))).allowed
    gate = context(waivers=(waiver,), now=NOW + timedelta(hours=2))
    assert not decide(policy_set, gate=gate).allowed
