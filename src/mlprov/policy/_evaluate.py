"""The policy engine: a policy set, a move, the candidate's report and the gate's context
in, a :class:`PolicyDecision` out. Pure: no IO, no clock (``context.now``).

Every requirement reads the report's :class:`~mlprov.verification.VerifiedFacts` (what the
signed evidence proved), never the unsigned registry record; only CEL expressions see the
record, as ``version``, and say so in docs/policies.md. Fail closed: an exception while
evaluating a requirement fails it, with the error in the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any

from mlprov.policy._decision import (
    GateContext,
    PolicyDecision,
    RequirementResult,
    RequirementStatus,
    Target,
    VerifiedWaiver,
)
from mlprov.policy._set import CompiledPolicy, CompiledRequirement, PolicySet
from mlprov.signing import SignerIdentity
from mlprov.verification import CheckStatus, VerificationReport, VerifiedFacts

__all__ = ["evaluate"]

Outcome = tuple[bool, str]


@dataclass(frozen=True)
class _Inputs:
    policy_set: PolicySet
    model: str
    target: Target
    report: VerificationReport
    context: GateContext

    @property
    def facts(self) -> VerifiedFacts:
        return self.report.facts


# -- who is who ---------------------------------------------------------------------------


def _person(policy_set: PolicySet, signer_name: str, identity: SignerIdentity) -> str:
    """One key per person: the signer's name when its declaration is one identity (keys,
    an exact Sigstore identity: two keys of one name are one person), else the name plus
    the verified subject and issuer (certificate roots and Sigstore patterns admit many)."""
    kind = policy_set.signers.get(signer_name)
    if kind is not None and kind.exact:
        return signer_name
    return f"{signer_name}|{identity.subject}|{identity.issuer or ''}"


def _same_identity(a: SignerIdentity, b: SignerIdentity) -> bool:
    return a.method == b.method and a.subject == b.subject and a.issuer == b.issuer


def _duties_conflict(inputs: _Inputs, signer_name: str, identity: SignerIdentity) -> str | None:
    """Why this approver may not approve the candidate (separation of duties), or None."""
    person = _person(inputs.policy_set, signer_name, identity)
    creator = inputs.context.version_creator
    if creator is not None and creator in (signer_name, identity.subject, str(identity)):
        return f"{signer_name} ({identity}) created the version"
    for name, signer in inputs.facts.model_signers:
        if _person(inputs.policy_set, name, signer) == person or _same_identity(signer, identity):
            return f"{signer_name} ({identity}) signed the version"
    for signer in inputs.context.signers:
        if _same_identity(signer, identity):
            return f"{signer_name} ({identity}) signed the version's evidence"
    return None


def _names(values: Iterable[str]) -> str:
    return ", ".join(values) or "none"


# -- the requirement kinds ----------------------------------------------------------------


def _signatures(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.signatures
    assert spec is not None
    allowed = set(spec.signers) if spec.signers is not None else None
    people: dict[str, str] = {}
    for name, identity in inputs.facts.model_signers:
        if not inputs.policy_set.holds_role(name, "model-signer"):
            continue
        if allowed is not None and name not in allowed:
            continue
        people.setdefault(_person(inputs.policy_set, name, identity), name)
    which = f"of {_names(sorted(allowed))}" if allowed is not None else "trusted"
    got = len(people)
    text = f"{got} distinct {which} model signer(s) ({_names(sorted(people.values()))})"
    if got >= spec.count:
        return True, f"{text}, {spec.count} required"
    return False, f"{text}; {spec.count} required"


def _provenance(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.provenance
    assert spec is not None
    facts = inputs.facts
    if facts.builder_id is None:
        return False, "no verified provenance (no trusted builder signed one)"
    # Whoever signed the verified provenance, in whatever role the verification engine
    # accepted it (mlprov's own provenance is signed by the model signer at registration):
    # it counts only if that signer also holds the builder role with this builder id.
    signed_by = [a.signer_name for a in facts.attestations if a.kind == "provenance"]
    trusted = [
        name
        for name in signed_by
        if inputs.policy_set.holds_role(name, "builder")
        and (spec.builders is None or name in spec.builders)
        and facts.builder_id in inputs.policy_set.builder_ids(name)
    ]
    if not trusted:
        wanted = _names(spec.builders) if spec.builders is not None else "any trusted builder"
        return False, (
            f"builder {facts.builder_id!r} (provenance signed by {_names(signed_by)}) is not "
            f"among the allowed builders ({wanted}) with that builder id"
        )
    if spec.build_types is not None and facts.build_type not in spec.build_types:
        return False, (f"build type {facts.build_type!r} is not one of {_names(spec.build_types)}")
    return True, f"built by {trusted[0]} ({facts.builder_id}), build type {facts.build_type}"


def _evidence(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.evidence
    assert spec is not None
    facts = inputs.facts
    kinds = {a.kind for a in facts.attestations}
    found: list[str] = []
    if spec.ml_bom:
        if "bom" not in kinds:
            return False, "no verified ML-BOM"
        found.append("ML-BOM")
    if spec.model_card is not None:
        if "model-card" not in kinds:
            return False, "no verified model card"
        missing = [s for s in spec.model_card.sections if s not in facts.card_sections]
        if missing:
            return False, f"the model card's sections {_names(missing)} are not filled"
        found.append("model card")
    if spec.evaluation is not None:
        wanted = spec.evaluation
        evaluations = [
            a
            for a in facts.attestations
            if a.role == "evaluator"
            and inputs.policy_set.holds_role(a.signer_name, "evaluator")
            and (wanted.evaluators is None or a.signer_name in wanted.evaluators)
            and (wanted.predicate_type is None or a.predicate_type == wanted.predicate_type)
        ]
        if not evaluations:
            by = (
                _names(wanted.evaluators)
                if wanted.evaluators is not None
                else "a trusted evaluator"
            )
            of = f" of type {wanted.predicate_type}" if wanted.predicate_type else ""
            return False, f"no verified evaluation attestation{of} from {by}"
        found.append(f"evaluation by {evaluations[0].signer_name}")
    return True, f"verified {', '.join(found)}"


def _metric(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    threshold = requirement.threshold
    assert threshold is not None
    actual = inputs.facts.metrics.get(threshold.metric)
    if actual is None:
        record = inputs.context.version
        unsigned = record is not None and threshold.metric in record.metrics
        return False, (
            f"{threshold.metric} is not in the signed evidence"
            + (
                " (only in the registry's unsigned metadata, which does not count)"
                if unsigned
                else ""
            )
        )
    verdict = threshold.holds(float(actual))
    return verdict, f"{threshold.metric} = {actual:g}, required {threshold}"


def _no_regression(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.no_regression
    assert spec is not None
    champion = inputs.context.champion
    if champion is None:
        return True, f"no champion holds {inputs.target}: nothing to regress from"
    ours = inputs.facts.metrics.get(spec.metric)
    theirs = champion.facts.metrics.get(spec.metric)
    if ours is None:
        return False, f"{spec.metric} is not in the candidate's signed evidence"
    if theirs is None:
        return False, f"{spec.metric} is not in the champion's ({champion.subject}) signed evidence"
    if spec.higher_is_better:
        bound = theirs - spec.tolerance
        verdict = ours >= bound
    else:
        bound = theirs + spec.tolerance
        verdict = ours <= bound
    sign = ">=" if spec.higher_is_better else "<="
    return verdict, (
        f"{spec.metric} = {ours:g} vs champion {champion.subject} {theirs:g} "
        f"(required {sign} {bound:g}, tolerance {spec.tolerance:g})"
    )


def _verified_lineage(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    checks = [c for c in inputs.report.checks if c.id == "lineage" or c.id.startswith("lineage.")]
    failed = [c for c in checks if c.status == CheckStatus.FAILED]
    if failed:
        return False, f"lineage does not verify: {failed[0].id}: {failed[0].message}"
    record = inputs.context.version
    edges = len(record.lineage) if record is not None else None
    skipped = [c for c in checks if c.status == CheckStatus.SKIPPED]
    if skipped and edges != 0:
        return False, f"lineage not verified: {skipped[0].id} skipped: {skipped[0].message}"
    passed = [c for c in checks if c.status == CheckStatus.PASSED]
    if not passed:
        if edges == 0:
            return True, "the version has no lineage"
        return False, "the report has no lineage check"
    return True, f"{len(passed)} lineage check(s) passed"


def _datasets(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.datasets
    assert spec is not None
    datasets = inputs.facts.datasets
    if not datasets:
        return False, "no dataset in the signed evidence: the allow-list cannot be checked"
    refused = [
        f"{name} ({uri})"
        for name, uri, _ in datasets
        if name not in spec.names and not any(fnmatchcase(uri, p) for p in spec.uris)
    ]
    if refused:
        return False, f"dataset(s) not allowed: {_names(refused)}"
    return True, f"{len(datasets)} dataset(s) allowed: {_names(n for n, _, _ in datasets)}"


def _licenses(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.licenses
    assert spec is not None
    licenses = inputs.facts.licenses
    if not licenses:
        return False, "no licence in the signed ML-BOM: the allow-list cannot be checked"
    # SPDX license identifiers match case-insensitively (SPDX 2.3, annex D.2).
    allowed = {name.casefold() for name in spec.allow}
    refused = [name for name in licenses if name.casefold() not in allowed]
    if refused:
        return False, f"licence(s) not allowed: {_names(refused)} (allowed: {_names(spec.allow)})"
    return True, f"licence(s) allowed: {_names(licenses)}"


def _approvals(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.approvals
    assert spec is not None
    counted: dict[str, str] = {}
    refused: list[str] = []
    for approval in inputs.context.approvals:
        if approval.target != inputs.target:
            continue
        if not inputs.policy_set.holds_role(approval.signer_name, spec.role):
            refused.append(f"{approval.signer_name} does not hold the {spec.role} role")
            continue
        conflict = _duties_conflict(inputs, approval.signer_name, approval.identity)
        if conflict is not None:
            refused.append(conflict)
            continue
        counted.setdefault(
            _person(inputs.policy_set, approval.signer_name, approval.identity),
            f"{approval.signer_name} ({approval.identity})",
        )
    text = f"{len(counted)} distinct approver(s) of {spec.count} required"
    if counted:
        text += f": {_names(counted.values())}"
    if refused:
        text += f"; not counted: {'; '.join(dict.fromkeys(refused))}"
    return len(counted) >= spec.count, text


def _min_time(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.min_time
    assert spec is not None
    where = (
        Target("alias", spec.alias) if spec.alias is not None else Target("stage", spec.stage or "")
    )
    stays = [r for r in inputs.context.residences if r.target == where]
    if not stays:
        return False, f"the version was never at {where}; {_duration(spec.duration)} required"
    longest = max(r.duration_until(inputs.context.now) for r in stays)
    verdict = longest >= spec.duration.total_seconds()
    return verdict, (
        f"{_duration(timedelta(seconds=longest))} at {where}, {_duration(spec.duration)} required"
    )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest % 60:02d}s"


def _formats(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    spec = requirement.spec.formats
    assert spec is not None
    formats = inputs.facts.formats
    if not formats:
        return False, "no artefact format recorded in the signed ML-BOM: cannot tell"
    if spec.forbid is not None:
        bad = [f for f in formats if f in spec.forbid]
        if bad:
            return False, f"forbidden format(s): {_names(bad)}"
    if spec.allow is not None:
        bad = [f for f in formats if f not in spec.allow]
        if bad:
            return False, f"format(s) not allowed: {_names(bad)} (allowed: {_names(spec.allow)})"
    return True, f"format(s) {_names(formats)} allowed"


def facts_json(facts: VerifiedFacts) -> dict[str, Any]:
    return {
        "model_signers": [
            {"name": name, "identity": identity.to_json_value()}
            for name, identity in facts.model_signers
        ],
        "builder_id": facts.builder_id,
        "build_type": facts.build_type,
        "attestations": [
            {
                "kind": a.kind,
                "predicate_type": a.predicate_type,
                "signer_name": a.signer_name,
                "role": a.role,
                "signer": a.signer.to_json_value(),
                "predicate": dict(a.predicate),
            }
            for a in facts.attestations
        ],
        "metrics": dict(facts.metrics),
        "datasets": [{"name": n, "uri": u, "digest": d} for n, u, d in facts.datasets],
        "licenses": list(facts.licenses),
        "formats": list(facts.formats),
        "card_sections": sorted(facts.card_sections),
    }


def _report_json(report: VerificationReport) -> dict[str, Any]:
    return {**report.to_json(), "facts": facts_json(report.facts)}


def cel_activation(inputs: _Inputs) -> dict[str, Any]:
    """The names a CEL expression sees (docs/policies.md, "cel")."""
    context = inputs.context
    return {
        "model": inputs.model,
        "target": inputs.target.to_json(),
        "move": context.move.to_json(),
        "now": context.now.isoformat(),
        "version": context.version.to_json() if context.version is not None else None,
        "facts": facts_json(inputs.facts),
        "report": _report_json(inputs.report),
        "champion": _report_json(context.champion) if context.champion is not None else None,
        "approvals": [
            {
                "signer_name": a.signer_name,
                "identity": a.identity.to_json_value(),
                "target": a.target.to_json(),
            }
            for a in context.approvals
            if a.target == inputs.target
        ],
    }


def _cel(inputs: _Inputs, requirement: CompiledRequirement) -> Outcome:
    expression = requirement.expression
    assert expression is not None
    return expression.evaluate(cel_activation(inputs))


_KINDS: dict[str, Callable[[_Inputs, CompiledRequirement], Outcome]] = {
    "signatures": _signatures,
    "provenance": _provenance,
    "evidence": _evidence,
    "metric": _metric,
    "no_regression": _no_regression,
    "verified_lineage": _verified_lineage,
    "datasets": _datasets,
    "licenses": _licenses,
    "approvals": _approvals,
    "min_time": _min_time,
    "formats": _formats,
    "cel": _cel,
}


# -- waivers ------------------------------------------------------------------------------


def _waiver_problem(
    inputs: _Inputs, policy: CompiledPolicy, result_id: str, waiver: VerifiedWaiver
) -> str | None:
    """Why ``waiver`` does not waive ``result_id`` now, or None when it does."""
    options = policy.document.waivers
    assert options is not None
    now = inputs.context.now
    if waiver.target != inputs.target or result_id not in waiver.requirements:
        return "not for this requirement"
    if waiver.expires_at <= now:
        return f"waiver expired at {waiver.expires_at.isoformat()}"
    if waiver.issued_at > now:
        return f"waiver issued in the future ({waiver.issued_at.isoformat()})"
    if waiver.expires_at - waiver.issued_at > options.max_duration:
        return f"waiver lasts longer than the policy's maximum of {_duration(options.max_duration)}"
    people: set[str] = set()
    for grant in waiver.granted_by:
        if not inputs.policy_set.holds_role(grant.signer_name, options.role):
            continue
        if _duties_conflict(inputs, grant.signer_name, grant.identity) is not None:
            continue
        people.add(_person(inputs.policy_set, grant.signer_name, grant.identity))
    if len(people) < options.approvers:
        return (
            f"waiver granted by {len(people)} distinct holder(s) of the {options.role} role "
            f"(not the creator or a signer), {options.approvers} required"
        )
    return None


def _apply_waivers(
    inputs: _Inputs, policy: CompiledPolicy, result: RequirementResult
) -> RequirementResult:
    options = policy.document.waivers
    short_id = result.id.split("/", 1)[1]
    if options is None or short_id not in options.requirements:
        return result
    problems = []
    for waiver in inputs.context.waivers:
        problem = _waiver_problem(inputs, policy, result.id, waiver)
        if problem is None:
            return RequirementResult(
                result.id,
                result.policy,
                result.kind,
                RequirementStatus.WAIVED,
                f"{result.message}; waived until {waiver.expires_at.isoformat()}: {waiver.reason}",
            )
        if problem != "not for this requirement":
            problems.append(problem)
    if not problems:
        return result
    return RequirementResult(
        result.id,
        result.policy,
        result.kind,
        result.status,
        f"{result.message}; {'; '.join(problems)}",
    )


# -- the engine ---------------------------------------------------------------------------


def _result(policy: str, requirement_id: str, kind: str, outcome: Outcome) -> RequirementResult:
    status = RequirementStatus.PASSED if outcome[0] else RequirementStatus.FAILED
    return RequirementResult(f"{policy}/{requirement_id}", policy, kind, status, outcome[1])


def _evaluate_policy(inputs: _Inputs, policy: CompiledPolicy) -> list[RequirementResult]:
    document = policy.document
    results: list[RequirementResult] = []
    if document.require_verified:
        report = inputs.report
        if not report.checks:
            outcome: Outcome = (False, "nothing was verified (the report has no check)")
        elif report.failures:
            first = report.failures[0]
            outcome = (
                False,
                f"{len(report.failures)} verification check(s) failed, first {first.id}: "
                f"{first.message}",
            )
        else:
            outcome = (True, f"all {len(report.checks)} verification checks passed or skipped")
        results.append(_result(policy.name, "verified", "verified", outcome))
    rollback = document.rollback is not None and inputs.context.previously_admitted
    skipped = policy.rollback_skips() if rollback else frozenset()
    for requirement in policy.requirements:
        if requirement.id in skipped:
            results.append(
                RequirementResult(
                    f"{policy.name}/{requirement.id}",
                    policy.name,
                    requirement.kind,
                    RequirementStatus.SKIPPED,
                    f"not enforced: the version was admitted to {inputs.target} before, and "
                    "the policy allows moving back to it",
                )
            )
            continue
        try:
            outcome = _KINDS[requirement.kind](inputs, requirement)
        except Exception as e:  # fail closed: any error while evaluating is a denial
            text = " ".join(str(e).split())[:300]
            outcome = (False, f"error while evaluating: {type(e).__name__}: {text}")
        result = _result(policy.name, requirement.id, requirement.kind, outcome)
        if result.status == RequirementStatus.FAILED:
            result = _apply_waivers(inputs, policy, result)
        results.append(result)
    return results


def evaluate(
    policy_set: PolicySet,
    *,
    model: str,
    target: Target,
    report: VerificationReport | None,
    context: GateContext,
) -> PolicyDecision:
    """Decide one move of ``model``'s ``target`` (see :class:`GateContext`).

    ``report`` is the candidate's verification report; None only when the move deletes
    the alias (``context.move.to_version is None``), which a policy must allow with
    ``allow_delete``. No policy selecting the target means the move is allowed, and the
    decision says so.
    """
    policies = policy_set.selecting(model, target)
    names = tuple(p.name for p in policies)
    subject = report.subject if report is not None else f"{model}@{target.name}"

    def decision(results: list[RequirementResult], message: str) -> PolicyDecision:
        allowed = all(r.passed for r in results)
        failures = [r for r in results if not r.passed]
        if not allowed:
            message = (
                f"{len(failures)} requirement(s) of {_names(names)} failed for {target}: "
                + "; ".join(f"{r.id}: {r.message}" for r in failures)
            )
        return PolicyDecision(
            allowed, subject, target, policy_set.digest, names, tuple(results), message
        )

    if not policies:
        return decision([], f"no policy selects {target} of {model}: allowed")
    if context.move.to_version is None or report is None:
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
        return decision(results, f"{target} of {model} may be removed")
    inputs = _Inputs(policy_set, model, target, report, context)
    results = [r for p in policies for r in _evaluate_policy(inputs, p)]
    return decision(results, f"{target} of {model}: all requirements of {_names(names)} hold")
