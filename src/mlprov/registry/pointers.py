"""Aliases and stages: the one pointer-move path, with the gate in it.

Every move (alias set, rollback and delete; stage set) runs the same steps
(ARCHITECTURE.md, rules 3-5):

1. read the pointer and the versions involved in a read transaction;
2. ask the gate outside any write transaction; a denial is audited in its own
   transaction and raised (:class:`~mlprov.errors.PolicyDenied`, exit 1);
3. commit the move with compare-and-set on what step 1 read (the alias generation, the
   stages), with its history row and audit entry. A lost race redoes steps 1-3, bounded;
   with ``expected_generation`` it is a :class:`~mlprov.errors.ConflictError` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlprov.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PolicyDenied,
    PreconditionFailedError,
)
from mlprov.records import AliasEvent, AliasState, ModelVersion, Stage, StageEvent
from mlprov.refs import LATEST, validate_alias, validate_model_name
from mlprov.registry._context import MAX_ATTEMPTS, LostRace, RegistryContext, require_model
from mlprov.registry._unit import Mutation, mutation, record_denial
from mlprov.registry.gate import DEPLOYMENT_ALIAS, GateDecision, PointerMove
from mlprov.store.aliases import AliasPointer
from mlprov.store.models import ModelKey
from mlprov.store.versions import VersionKey

__all__ = [
    "alias_history",
    "delete_alias",
    "get_alias",
    "set_alias",
    "set_stage",
    "stage_history",
]


def _check_alias(name: str, alias: str, verb: str) -> None:
    validate_model_name(name)
    validate_alias(alias)
    if alias == LATEST:
        raise InvalidInputError(
            f"alias 'latest' is built in (the highest version) and cannot be {verb}"
        )


def _gate(
    context: RegistryContext,
    move: PointerMove,
    target: ModelVersion | None,
    current: ModelVersion | None,
) -> GateDecision:
    """Step 2: the gate's decision; a denial is audited, then raised."""
    decision = context.gate.decide(move, target, current)
    if not decision.allowed:
        record_denial(
            context,
            f"{move.pointer}.{move.action}.denied",
            move.subject,
            {
                "from": move.from_version,
                "to": move.to_version,
                "decision": decision.to_json(),
            },
            move.reason,
        )
        reasons = "; ".join(decision.reasons) or "the gate refused it"
        raise PolicyDenied(
            f"{move.subject}: move to {move.to_version} denied: {reasons}",
            reasons=decision.reasons,
        )
    return decision


def _expect_policy(context: RegistryContext, unit: Mutation, decision: GateDecision) -> None:
    """Compare-and-set on the policy set the gate evaluated: a policy applied since makes
    the move decide again under the new one (never slip through under the old)."""
    if context.gate.judges_registry_policy:
        unit.expect(unit.tx.policies.active_digest() == decision.policy_digest)


@dataclass(frozen=True)
class _AliasRead:
    model: ModelKey
    pointer: AliasPointer
    target: VersionKey | None
    target_record: ModelVersion | None
    current_record: ModelVersion | None


def _read_alias(context: RegistryContext, name: str, alias: str, version: int | None) -> _AliasRead:
    with context.metadata.read() as tx:
        model = require_model(tx, name)
        target = None
        if version is not None:
            target = tx.versions.find(model, version)
            if target is None:
                raise NotFoundError(f"version {name}/{version} not found")
        pointer = tx.aliases.pointer(model, alias)
        current = tx.versions.by_id(pointer.version_id) if pointer.version_id else None
        return _AliasRead(
            model,
            pointer,
            target,
            tx.versions.record(target) if target is not None else None,
            tx.versions.record(current) if current is not None else None,
        )


def _move_alias(
    context: RegistryContext,
    name: str,
    alias: str,
    version: int | None,
    reason: str,
    expected_generation: int | None,
) -> AliasEvent | None:
    for _attempt in range(MAX_ATTEMPTS):
        read = _read_alias(context, name, alias, version)
        generation = read.pointer.generation
        if expected_generation is not None and expected_generation != generation:
            raise PreconditionFailedError(
                f"alias {name}@{alias} is at generation {generation}, "
                f"not {expected_generation}; re-read it and retry"
            )
        from_version = read.pointer.version
        if version is None and from_version is None:
            raise NotFoundError(f"alias {name}@{alias} not found")
        if version is not None and from_version == version:
            return None  # already there: a no-op, not a move
        if version is None:
            kind = "delete"
        elif from_version is not None and version < from_version:
            kind = "rollback"
        else:
            kind = "set"
        move = PointerMove("alias", name, alias, kind, from_version, version, context.actor, reason)
        decision = _gate(context, move, read.target_record, read.current_record)
        try:
            with mutation(context) as unit:
                _expect_policy(context, unit, decision)
                # A deleted alias keeps its row (version NULL) so its generation never
                # resets and a stale compare-and-set can never succeed after re-creation.
                new_generation = unit.tx.aliases.move(
                    read.model,
                    alias,
                    read.target.id if read.target is not None else None,
                    generation,
                )
                unit.expect(new_generation is not None)
                assert new_generation is not None
                event = AliasEvent(
                    name=name,
                    alias=alias,
                    kind=kind,
                    from_version=from_version,
                    to_version=version,
                    generation=new_generation,
                    actor=unit.actor,
                    at=unit.at,
                    reason=reason,
                )
                unit.tx.aliases.insert_event(read.model, event)
                details: dict[str, object] = {"from": from_version}
                if read.target is not None:
                    details.update(to=version, generation=new_generation, digest=read.target.digest)
                else:
                    details.update(generation=new_generation)
                if decision.policy_digest is not None:
                    details["decision"] = decision.to_json()
                unit.audit(f"alias.{kind}", f"{name}@{alias}", details, reason)
                return event
        except LostRace:
            if expected_generation is not None:
                raise ConflictError(
                    f"alias {name}@{alias} changed concurrently (expected generation "
                    f"{expected_generation}); re-read it and retry"
                ) from None
    raise ConflictError(f"alias {name}@{alias} kept changing; retry")


def _is_deployment(context: RegistryContext, name: str) -> bool:
    """Whether ``name`` is a deployment (names are one namespace: ADR 0050)."""
    with context.metadata.read() as tx:
        return tx.models.find(name) is None and tx.deployments.find(name) is not None


def _move_deployment_alias(
    context: RegistryContext,
    name: str,
    alias: str,
    version: int | None,
    reason: str,
    expected_generation: int | None,
) -> AliasEvent | None:
    """The same steps as :func:`_move_alias`, for a deployment's alias: read, gate
    (the deployment policies), compare-and-set on the generation, history, audit."""
    from mlprov.registry.deployments import require_deployment  # noqa: PLC0415

    for _attempt in range(MAX_ATTEMPTS):
        with context.metadata.read() as tx:
            key = require_deployment(tx, name)
            target = tx.deployments.find_version(key, version) if version is not None else None
            if version is not None and target is None:
                raise NotFoundError(f"deployment version {name}/{version} not found")
            pointer = tx.deployment_aliases.pointer(key, alias)
        generation, from_version = pointer.generation, pointer.version
        if expected_generation is not None and expected_generation != generation:
            raise PreconditionFailedError(
                f"alias {name}@{alias} is at generation {generation}, "
                f"not {expected_generation}; re-read it and retry"
            )
        if version is None and from_version is None:
            raise NotFoundError(f"alias {name}@{alias} not found")
        if version is not None and from_version == version:
            return None
        if version is None:
            kind = "delete"
        elif from_version is not None and version < from_version:
            kind = "rollback"
        else:
            kind = "set"
        move = PointerMove(
            DEPLOYMENT_ALIAS, name, alias, kind, from_version, version, context.actor, reason
        )
        decision = _gate(context, move, None, None)
        try:
            with mutation(context) as unit:
                _expect_policy(context, unit, decision)
                new_generation = unit.tx.deployment_aliases.move(
                    key, alias, target.id if target is not None else None, generation
                )
                unit.expect(new_generation is not None)
                assert new_generation is not None
                event = AliasEvent(
                    name=name,
                    alias=alias,
                    kind=kind,
                    from_version=from_version,
                    to_version=version,
                    generation=new_generation,
                    actor=unit.actor,
                    at=unit.at,
                    reason=reason,
                )
                unit.tx.deployment_aliases.insert_event(key, event)
                details: dict[str, object] = {
                    "from": from_version,
                    "to": version,
                    "generation": new_generation,
                }
                if decision.policy_digest is not None:
                    details["decision"] = decision.to_json()
                unit.audit(f"{DEPLOYMENT_ALIAS}.{kind}", f"{name}@{alias}", details, reason)
                return event
        except LostRace:
            if expected_generation is not None:
                raise ConflictError(
                    f"alias {name}@{alias} changed concurrently (expected generation "
                    f"{expected_generation}); re-read it and retry"
                ) from None
    raise ConflictError(f"alias {name}@{alias} kept changing; retry")


def set_alias(
    context: RegistryContext,
    name: str,
    alias: str,
    version: int,
    *,
    reason: str = "",
    expected_generation: int | None = None,
) -> AliasEvent | None:
    _check_alias(name, alias, "set")
    if _is_deployment(context, name):
        return _move_deployment_alias(context, name, alias, version, reason, expected_generation)
    return _move_alias(context, name, alias, version, reason, expected_generation)


def delete_alias(
    context: RegistryContext,
    name: str,
    alias: str,
    *,
    reason: str = "",
    expected_generation: int | None = None,
) -> AliasEvent:
    _check_alias(name, alias, "deleted")
    if _is_deployment(context, name):
        event = _move_deployment_alias(context, name, alias, None, reason, expected_generation)
    else:
        event = _move_alias(context, name, alias, None, reason, expected_generation)
    assert event is not None  # a delete is never a no-op: a missing alias is NotFound
    return event


def get_alias(context: RegistryContext, name: str, alias: str) -> AliasState:
    validate_model_name(name)
    validate_alias(alias)
    with context.metadata.read() as tx:
        deployment = tx.deployments.find(name) if tx.models.find(name) is None else None
        if deployment is not None:
            pointer = tx.deployment_aliases.pointer(deployment, alias)
        else:
            pointer = tx.aliases.pointer(require_model(tx, name), alias)
    if pointer.generation == 0:
        raise NotFoundError(f"alias {name}@{alias} not found")
    return AliasState(
        name=name, alias=alias, version=pointer.version, generation=pointer.generation
    )


def alias_history(
    context: RegistryContext, name: str, alias: str | None = None
) -> list[AliasEvent]:
    validate_model_name(name)
    if alias is not None:
        validate_alias(alias)
    with context.metadata.read() as tx:
        deployment = tx.deployments.find(name) if tx.models.find(name) is None else None
        if deployment is not None:
            return tx.deployment_aliases.history(deployment, alias)
        return tx.aliases.history(require_model(tx, name), alias)


def set_stage(
    context: RegistryContext, name: str, version: int, stage: Stage | str, *, reason: str = ""
) -> list[StageEvent]:
    """Move a version to a stage. At most one version per model is in Production: the
    previous one moves to Archived, recorded. Returns the transitions made."""
    validate_model_name(name)
    target_stage = stage if isinstance(stage, Stage) else Stage.parse(stage)
    for _attempt in range(MAX_ATTEMPTS):
        with context.metadata.read() as tx:
            model = require_model(tx, name)
            row = tx.versions.find(model, version)
            if row is None:
                raise NotFoundError(f"version {name}/{version} not found")
            if row.stage == target_stage:
                return []
            replaced = (
                [v for v in tx.versions.in_stage(model, Stage.PRODUCTION) if v.id != row.id]
                if target_stage == Stage.PRODUCTION
                else []
            )
            target_record = tx.versions.record(row)
            current_record = tx.versions.record(replaced[0]) if replaced else None
        move = PointerMove(
            "stage",
            name,
            target_stage.value,
            "set",
            replaced[0].number if replaced else None,
            version,
            context.actor,
            reason,
        )
        decision = _gate(context, move, target_record, current_record)
        moves = [(other, Stage.ARCHIVED) for other in replaced] + [(row, target_stage)]
        try:
            with mutation(context) as unit:
                _expect_policy(context, unit, decision)
                # Compare-and-set on the stages read: no other version entered Production
                # meanwhile (each version's own stage is checked by move_stage below).
                if target_stage == Stage.PRODUCTION:
                    now_in = {v.id for v in unit.tx.versions.in_stage(model, Stage.PRODUCTION)}
                    unit.expect(now_in - {row.id} == {v.id for v in replaced})
                events = []
                for moved, after in moves:
                    unit.expect(unit.tx.versions.move_stage(moved, after))
                    why = reason if moved is row else f"replaced in Production by {name}/{version}"
                    event = StageEvent(
                        name=name,
                        version=moved.number,
                        from_stage=moved.stage,
                        to_stage=after,
                        actor=unit.actor,
                        at=unit.at,
                        reason=why,
                    )
                    unit.tx.stages.insert_event(moved, event)
                    details: dict[str, object] = {"from": moved.stage.value, "to": after.value}
                    if moved is row and decision.policy_digest is not None:
                        details["decision"] = decision.to_json()
                    unit.audit("stage.set", moved.ref, details, why)
                    events.append(event)
                return events
        except LostRace:
            continue
    raise ConflictError(f"the stages of {name} kept changing; retry")


def stage_history(context: RegistryContext, name: str) -> list[StageEvent]:
    validate_model_name(name)
    with context.metadata.read() as tx:
        return tx.stages.history(require_model(tx, name))
