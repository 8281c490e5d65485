"""Deciding a deployment alias move: the ``deployments:`` policies of a policy set.

Pure, like :func:`mlprov.policy.evaluate`: the registry verifies the deployment version
(its signed bundle statement and each member) and judges every member by its own model's
policy first, then hands the results here as :class:`DeploymentGateContext`. Requirement
kinds (docs/deployments.md, "Deployment policies"):

* ``verified`` (unless ``require_verified: false``): every check of the deployment's
  report passed: the bundle statement verifies against a trusted model signer and names
  exactly the stored members, and each member verifies;
* ``members_pass``: every member's own model policy allows it at the alias (the one the
  deployment moves, or ``target``); a member no model policy protects there fails
  (fail closed: the requirement is "passes its policy", and there is none to pass);
* ``same_datasets``: members whose signed evidence names a dataset of the same name name
  the same digest (compatible dataset versions);
* ``cel``: an expression over ``deployment``, ``target`` and ``members`` (by role).

Any error while evaluating a requirement is a denial.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlprov.policy._decision import PolicyDecision, RequirementResult, RequirementStatus, Target
from mlprov.policy._set import CompiledDeploymentPolicy, CompiledDeploymentRequirement, PolicySet
from mlprov.verification import VerificationReport

__all__ = ["DeploymentGateContext", "DeploymentMemberJudgement", "evaluate_deployment"]

Outcome = tuple[bool, str]


@dataclass(frozen=True)
class DeploymentMemberJudgement:
    """One member as the registry judged it: its verification report with the
    registry's trust and, by alias, its own model policy's decision there (None: no
    policy set, or it could not be judged)."""

    role: str
    model: str
    version: int
    digest: str
    report: VerificationReport
    decisions: Mapping[str, PolicyDecision | None] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"


@dataclass(frozen=True)
class DeploymentGateContext:
    """The move and the members: ``to_version`` None deletes the alias."""

    now: datetime
    from_version: int | None
    to_version: int | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    members: tuple[DeploymentMemberJudgement, ...] = ()


@dataclass(frozen=True)
class _Inputs:
    deployment: str
    target: Target
    report: VerificationReport
    context: DeploymentGateContext


def _members_pass(inputs: _Inputs, requirement: CompiledDeploymentRequirement) -> Outcome:
    alias = requirement.members_target or inputs.target.name
    if not inputs.context.members:
        return False, "the deployment version has no members"
    problems = []
    for member in inputs.context.members:
        decision = member.decisions.get(alias)
        if decision is None:
            problems.append(f"{member.role} ({member.ref}) could not be judged for alias {alias}")
        elif not decision.policies:
            problems.append(
                f"{member.role} ({member.ref}): no policy of {member.model} protects alias {alias}"
            )
        elif not decision.allowed:
            lines = decision.failure_lines() or (decision.message,)
            problems.append(f"{member.role} ({member.ref}) fails its policy: {lines[0]}")
    if problems:
        return False, "; ".join(problems)
    return (
        True,
        f"all {len(inputs.context.members)} members pass their own policies for alias {alias}",
    )


def _same_datasets(inputs: _Inputs, _requirement: CompiledDeploymentRequirement) -> Outcome:
    seen: dict[str, dict[str, list[str]]] = {}
    for member in inputs.context.members:
        for name, _uri, digest in member.report.facts.datasets:
            seen.setdefault(name, {}).setdefault(digest, []).append(member.role)
    clashes = [
        f"{name}: "
        + ", ".join(f"{'+'.join(roles)} {digest}" for digest, roles in sorted(by.items()))
        for name, by in sorted(seen.items())
        if len(by) > 1
    ]
    if clashes:
        return False, "members were trained on different versions of a dataset: " + "; ".join(
            clashes
        )
    shared = sorted(name for name, by in seen.items() if sum(len(r) for r in by.values()) > 1)
    return True, (
        f"members agree on the digests of {', '.join(shared)}"
        if shared
        else "no dataset is named by more than one member"
    )


def cel_activation(inputs: _Inputs) -> dict[str, Any]:
    """The names a deployment CEL expression sees (docs/deployments.md)."""
    from mlprov.policy._evaluate import facts_json  # noqa: PLC0415

    context = inputs.context
    return {
        "deployment": {
            "name": inputs.deployment,
            "version": context.to_version,
            "from_version": context.from_version,
            "metadata": dict(context.metadata),
        },
        "target": inputs.target.to_json(),
        "now": context.now.isoformat(),
        "members": {
            m.role: {
                "model": m.model,
                "version": m.version,
                "digest": m.digest,
                "verified": m.report.passed,
                "facts": facts_json(m.report.facts),
            }
            for m in context.members
        },
    }


def _cel(inputs: _Inputs, requirement: CompiledDeploymentRequirement) -> Outcome:
    assert requirement.expression is not None
    return requirement.expression.evaluate(cel_activation(inputs))


_KINDS: dict[str, Callable[[_Inputs, CompiledDeploymentRequirement], Outcome]] = {
    "members_pass": _members_pass,
    "same_datasets": _same_datasets,
    "cel": _cel,
}


def _result(policy: str, requirement_id: str, kind: str, outcome: Outcome) -> RequirementResult:
    status = RequirementStatus.PASSED if outcome[0] else RequirementStatus.FAILED
    return RequirementResult(f"{policy}/{requirement_id}", policy, kind, status, outcome[1])


def _evaluate_policy(inputs: _Inputs, policy: CompiledDeploymentPolicy) -> list[RequirementResult]:
    results = []
    if policy.document.require_verified:
        failures = inputs.report.failures
        if not inputs.report.checks:
            outcome: Outcome = (False, "nothing was verified (the report has no check)")
        elif failures:
            first = failures[0]
            outcome = (
                False,
                f"{len(failures)} verification check(s) failed, first {first.id} "
                f"({first.subject}): {first.message}",
            )
        else:
            outcome = (
                True,
                f"all {len(inputs.report.checks)} verification checks passed or skipped",
            )
        results.append(_result(policy.name, "verified", "verified", outcome))
    for requirement in policy.requirements:
        try:
            outcome = _KINDS[requirement.kind](inputs, requirement)
        except Exception as e:  # fail closed: any error while evaluating is a denial
            text = " ".join(str(e).split())[:300]
            outcome = (False, f"error while evaluating: {type(e).__name__}: {text}")
        results.append(_result(policy.name, requirement.id, requirement.kind, outcome))
    return results


def evaluate_deployment(
    policy_set: PolicySet,
    *,
    deployment: str,
    target: Target,
    report: VerificationReport,
    context: DeploymentGateContext,
) -> PolicyDecision:
    """Decide moving ``deployment``'s alias ``target`` (see :class:`DeploymentGateContext`).
    No deployment policy selecting it means the move is allowed, and the decision says so."""
    policies = policy_set.selecting_deployment(deployment, target)
    names = tuple(p.name for p in policies)
    subject = report.subject

    def decision(results: list[RequirementResult], message: str) -> PolicyDecision:
        failures = [r for r in results if not r.passed]
        if failures:
            message = (
                f"{len(failures)} requirement(s) of {', '.join(names)} failed for {target}: "
                + "; ".join(f"{r.id}: {r.message}" for r in failures)
            )
        return PolicyDecision(
            not failures, subject, target, policy_set.digest, names, tuple(results), message
        )

    if not policies:
        return decision([], f"no deployment policy selects {target} of {deployment}: allowed")
    if context.to_version is None:
        results = [
            _result(
                p.name,
                "delete",
                "delete",
                (True, f"the policy allows removing {target}")
                if p.document.allow_delete
                else (False, f"the policy does not allow removing {target} (allow_delete)"),
            )
            for p in policies
        ]
        return decision(results, f"{target} of {deployment} may be removed")
    inputs = _Inputs(deployment, target, report, context)
    results = [r for p in policies for r in _evaluate_policy(inputs, p)]
    return decision(
        results, f"{target} of {deployment}: all requirements of {', '.join(names)} hold"
    )
