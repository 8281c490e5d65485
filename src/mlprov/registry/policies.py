"""The registry's active policy set, and judging a move by it.

:func:`judge` is what the gate, ``mlprov policy check``, ``mlprov verify NAME@ALIAS``
and ``mlprov pull`` share: it loads the candidate's snapshot (and the champion's, the one
the target holds now), the revocations, the verified approvals and waivers and the
candidate's history in one read transaction, then runs the verification engine and the
policy engine (both pure) outside it. Nothing here writes except :func:`apply_policy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from mlprov.errors import InvalidInputError, MlprovError, NotFoundError
from mlprov.records import AliasEvent, ModelVersion, Stage, StageEvent
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, require_model, resolve
from mlprov.registry._snapshot import load_snapshot
from mlprov.registry._unit import mutation
from mlprov.registry.approvals import APPROVAL_KIND
from mlprov.registry.waivers import WAIVER_KIND
from mlprov.store import StoreTransaction
from mlprov.store.policies import StoredPolicySet
from mlprov.verification import Revocations, TrustSet, VerificationReport, VersionSnapshot

if TYPE_CHECKING:
    from mlprov.policy import (
        PolicyDecision,
        PolicySet,
        Residence,
        Target,
        VerifiedApproval,
        VerifiedWaiver,
    )
    from mlprov.signing import SignerIdentity

__all__ = [
    "Judgement",
    "apply_policy",
    "check_policy",
    "judge",
    "parse_target",
    "show_policy",
]


@dataclass(frozen=True)
class Judgement:
    """A candidate's verification report and, when a policy set applies, its decision."""

    report: VerificationReport
    decision: PolicyDecision | None
    policy_digest: str | None

    @property
    def allowed(self) -> bool:
        return self.decision.allowed if self.decision is not None else True


def parse_target(text: str) -> Target:
    """``production`` (an alias) or ``stage:Production`` / a stage name given as such."""
    from mlprov.policy import Target  # noqa: PLC0415
    from mlprov.refs import validate_alias  # noqa: PLC0415

    if text.startswith("stage:"):
        return Target("stage", Stage.parse(text.partition(":")[2]).value)
    validate_alias(text)
    return Target("alias", text)


def load_policy(
    files: Mapping[str, bytes], context: RegistryContext, digest: str | None = None
) -> PolicySet:
    """The parsed policy set; a stored set never changes, so it is parsed once per digest
    and registry (the gate would otherwise re-parse its YAML on every move)."""
    from mlprov.policy import load_policy_set  # noqa: PLC0415

    if digest:
        cached = context.policy_cache.get(digest)
        if cached is not None:
            return cast("PolicySet", cached)
    policy_set = load_policy_set(files, context.limits)
    if digest and policy_set.digest == digest:
        if len(context.policy_cache) >= _CACHED_POLICY_SETS:
            context.policy_cache.pop(next(iter(context.policy_cache)))
        context.policy_cache[digest] = policy_set
    return policy_set


#: Parsed policy sets kept per registry (each is small; a new one replaces the oldest).
_CACHED_POLICY_SETS = 4

#: Requirement kinds that read the champion (the version the target holds now).
_READS_CHAMPION = frozenset({"no_regression", "cel"})


def apply_policy(
    context: RegistryContext, files: Mapping[str, bytes], *, reason: str = ""
) -> StoredPolicySet:
    """Validate a policy folder's files and make them the active set (a new version,
    audited as ``policy.apply`` with its digest). Applying the active set again is a
    no-op that returns it."""
    if not files:
        raise InvalidInputError("the policy folder has no policy files")
    policy_set = load_policy(files, context)  # PolicyError (exit 2): file, line and key
    with mutation(context) as unit:
        active = unit.tx.policies.active()
        if active is not None and active.digest == policy_set.digest:
            return active
        number = unit.tx.policies.insert(
            digest=policy_set.digest,
            files=dict(policy_set.files),
            at=unit.at,
            actor=unit.actor,
            reason=reason,
        )
        unit.audit(
            "policy.apply",
            "policy",
            {"version": number, "digest": policy_set.digest, "files": sorted(policy_set.files)},
            reason,
        )
    stored = show_policy(context)
    assert stored is not None
    return stored


def show_policy(context: RegistryContext, version: int | None = None) -> StoredPolicySet | None:
    with context.metadata.read() as tx:
        return tx.policies.active() if version is None else tx.policies.version(version)


@dataclass(frozen=True)
class _Loaded:
    candidate: VersionSnapshot | None
    champion: VersionSnapshot | None
    revocations: Revocations
    alias_history: list[AliasEvent]
    stage_history: list[StageEvent]


def _load(
    tx: StoreTransaction,
    context: RegistryContext,
    model: str,
    to_version: int | None,
    from_version: int | None,
    with_champion: bool,
) -> _Loaded:
    key = require_model(tx, model)
    depth = context.limits.max_lineage_depth

    def snapshot(number: int | None) -> VersionSnapshot | None:
        if number is None:
            return None
        found = tx.versions.find(key, number)
        if found is None:
            raise NotFoundError(f"version {model}/{number} not found")
        return load_snapshot(tx, found, depth)

    found = tx.revocations.all()
    revocations = Revocations(
        versions={r.value: r.reason for r in found if r.kind == "version"},
        key_hints={r.value: r.reason for r in found if r.kind == "key"},
        identities={r.value: r.reason for r in found if r.kind == "identity"},
    )
    return _Loaded(
        snapshot(to_version),
        snapshot(from_version) if with_champion else None,
        revocations,
        tx.aliases.history(key, None),
        tx.stages.history(key),
    )


def judge(
    context: RegistryContext,
    model: str,
    target: Target | None,
    to_version: int | None,
    from_version: int | None,
    *,
    policy_files: Mapping[str, bytes] | None = None,
    rollback: bool = False,
    now: datetime | None = None,
) -> Judgement:
    """Verify the candidate ``model/to_version`` with the trust of the active policy set
    (or of ``policy_files``, for a check) and decide moving ``target`` to it from
    ``from_version`` by its policies; with no ``target``, verify only (decision None)."""
    from mlprov.policy import GateContext, Move, evaluate  # noqa: PLC0415
    from mlprov.verification import verify_snapshot  # noqa: PLC0415

    when = now or datetime.now(timezone.utc)
    # The policy set first (parsed once per digest), so the champion is loaded and
    # verified only when a selected requirement reads it. The gate's compare-and-set on
    # the policy digest covers a set applied between this read and the next.
    if policy_files is not None:
        stored: StoredPolicySet | None = StoredPolicySet(0, "", "", "", "", dict(policy_files))
    else:
        with context.metadata.read() as tx:
            stored = tx.policies.active()
    policy_set = (
        load_policy(stored.files, context, stored.digest or None) if stored is not None else None
    )
    with_champion = (
        policy_set is not None
        and target is not None
        and from_version is not None
        and any(
            requirement.kind in _READS_CHAMPION
            for policy in policy_set.selecting(model, target)
            for requirement in policy.requirements
        )
    )
    with context.metadata.read() as tx:
        loaded = _load(tx, context, model, to_version, from_version, with_champion)
    trust = policy_set.trust if policy_set is not None else TrustSet()
    report = (
        verify_snapshot(loaded.candidate, trust, revocations=loaded.revocations, now=when)
        if loaded.candidate is not None
        else None
    )
    if policy_set is None or target is None:
        assert report is not None or to_version is None
        digest = policy_set.digest if policy_set is not None else None
        return Judgement(report or _empty_report(model, target), None, digest)
    champion = (
        verify_snapshot(loaded.champion, trust, revocations=loaded.revocations, now=when)
        if loaded.champion is not None
        else None
    )
    candidate = loaded.candidate
    gate_context = GateContext(
        now=when,
        move=Move(from_version, to_version, rollback),
        version=candidate.record if candidate is not None else None,
        champion=champion,
        approvals=_approvals(candidate, policy_set, context, when) if candidate else (),
        waivers=_waivers(candidate, policy_set, context, when) if candidate else (),
        residences=_residences(candidate.record, loaded, target) if candidate else (),
        previously_admitted=_admitted_before(to_version, loaded, target),
        creator=candidate.record.created_by if candidate is not None else None,
        # Who signed what the version is (documents, attestations), not who approved it.
        signers=tuple(
            a.signer for a in report.facts.attestations if a.kind not in ("approval", "waiver")
        )
        if report
        else (),
    )
    decision = evaluate(policy_set, model=model, target=target, report=report, context=gate_context)
    return Judgement(report or _empty_report(model, target), decision, policy_set.digest)


def check_policy(
    context: RegistryContext,
    ref: ModelRef | str,
    target_text: str,
    *,
    policy_files: Mapping[str, bytes] | None = None,
) -> Judgement:
    """Judge moving ``target_text`` (an alias, or ``stage:NAME``) to ``ref`` now, by the
    active policy set or by ``policy_files``, as the gate would; nothing is written."""
    target = parse_target(target_text)
    parsed = coerce_ref(ref)
    with context.metadata.read() as tx:
        key = resolve(tx, parsed)
        model = require_model(tx, key.name)
        if target.kind == "alias":
            current = tx.aliases.pointer(model, target.name).version
        else:
            holders = tx.versions.in_stage(model, Stage(target.name))
            current = next((v.number for v in holders if v.id != key.id), None)
    return judge(context, key.name, target, key.number, current, policy_files=policy_files)


def _empty_report(model: str, target: Target | None) -> VerificationReport:
    return VerificationReport(f"{model}@{target.name if target else '?'}", ())


#: (trusted signer name, who signed, the statement's predicate)
_Statement = tuple[str, "SignerIdentity", dict[str, Any]]


def _verified_statements(
    snapshot: VersionSnapshot,
    kind: str,
    policy_set: PolicySet,
    context: RegistryContext,
    now: datetime,
) -> list[_Statement]:
    """(trusted signer name, identity, predicate) of each ``kind`` statement that verifies
    against a signer the policy trusts; statements that verify against none are dropped."""
    from mlprov import signing  # noqa: PLC0415

    found = []
    for item in snapshot.evidence:
        if item.record.kind != kind:
            continue
        for signer in policy_set.trust.signers:
            try:
                verified = signing.verify_attestation(
                    item.bundle, signer.trust, limits=context.limits, now=now
                )
            except MlprovError:
                continue
            digest = snapshot.record.digest.partition(":")[2]
            if any(d.get("sha256") == digest for _n, d in verified.subjects):
                predicate = verified.statement.get("predicate")
                if isinstance(predicate, dict):
                    found.append((signer.name, verified.signer, predicate))
            break
    return found


def _approvals(
    snapshot: VersionSnapshot, policy_set: PolicySet, context: RegistryContext, now: datetime
) -> tuple[VerifiedApproval, ...]:
    from mlprov.policy import VerifiedApproval  # noqa: PLC0415

    approvals = []
    for name, identity, predicate in _verified_statements(
        snapshot, APPROVAL_KIND, policy_set, context, now
    ):
        try:
            target = parse_target(str(predicate.get("for", "")))
        except MlprovError:
            continue
        approvals.append(
            VerifiedApproval(name, identity, target, str(predicate.get("comment", "")))
        )
    return tuple(approvals)


def _waivers(
    snapshot: VersionSnapshot, policy_set: PolicySet, context: RegistryContext, now: datetime
) -> tuple[VerifiedWaiver, ...]:
    """Waiver statements with the same terms (target, requirements, reason) signed by
    several holders become one waiver granted by all of them, valid from the last grant
    until the earliest expiry."""
    from mlprov.policy import VerifiedWaiver, WaiverGrant  # noqa: PLC0415

    groups: dict[
        tuple[str, tuple[str, ...], str], list[tuple[str, SignerIdentity, dict[str, Any]]]
    ] = {}
    for name, identity, predicate in _verified_statements(
        snapshot, WAIVER_KIND, policy_set, context, now
    ):
        requirements = predicate.get("requirements", [])
        terms = (
            str(predicate.get("for", "")),
            tuple(str(r) for r in requirements) if isinstance(requirements, list) else (),
            str(predicate.get("reason", "")),
        )
        groups.setdefault(terms, []).append((name, identity, predicate))
    waivers = []
    for (target_text, requirements, reason), grants in groups.items():
        try:
            target = parse_target(target_text)
            issued = max(_instant(str(g[2].get("granted", ""))) for g in grants)
            expires = min(_instant(str(g[2].get("expires", ""))) for g in grants)
        except (MlprovError, ValueError):
            continue
        waivers.append(
            VerifiedWaiver(
                target,
                requirements,
                reason,
                issued,
                expires,
                tuple(WaiverGrant(name, identity) for name, identity, _p in grants),
            )
        )
    return tuple(waivers)


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.removesuffix("Z") + "+00:00")
    return value.astimezone(timezone.utc)


def _residences(record: ModelVersion, loaded: _Loaded, exclude: Target) -> tuple[Residence, ...]:
    """When the candidate entered (and left) each other alias and stage, from history."""
    from mlprov.policy import Residence, Target  # noqa: PLC0415

    stays: list[Residence] = []
    entered: dict[str, datetime] = {}
    for event in loaded.alias_history:
        at = _instant(event.at)
        if event.alias in entered and event.to_version != record.version:
            stays.append(Residence(Target("alias", event.alias), entered.pop(event.alias), at))
        if event.to_version == record.version and event.alias not in entered:
            entered[event.alias] = at
    stays.extend(Residence(Target("alias", alias), at) for alias, at in entered.items())
    stage_entered: dict[str, datetime] = {}
    for stage_event in loaded.stage_history:
        if stage_event.version != record.version:
            continue
        at = _instant(stage_event.at)
        left = stage_event.from_stage.value
        if left in stage_entered:
            stays.append(Residence(Target("stage", left), stage_entered.pop(left), at))
        stage_entered[stage_event.to_stage.value] = at
    stays.extend(Residence(Target("stage", s), at) for s, at in stage_entered.items())
    return tuple(s for s in stays if s.target != exclude)


def _admitted_before(to_version: int | None, loaded: _Loaded, target: Target) -> bool:
    if to_version is None:
        return False
    if target.kind == "alias":
        return any(
            e.alias == target.name and e.to_version == to_version for e in loaded.alias_history
        )
    return any(
        e.version == to_version and e.to_stage.value == target.name for e in loaded.stage_history
    )
