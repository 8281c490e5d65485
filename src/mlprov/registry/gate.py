"""The gate slot of the pointer-move path: every alias and stage move asks it first.

:func:`mlprov.registry.pointers.move` builds a :class:`PointerMove`, loads the target
and current versions, and calls :meth:`Gate.decide` outside any write transaction. A
denial is audited in its own transaction and raised as
:class:`~mlprov.errors.PolicyDenied`; an allowed move commits with compare-and-set on
what was read, so a pointer that moved meanwhile makes the move decide again.

The registry opens with :class:`PolicyGate`: the candidate verified with the trust of the
registry's active policy set, the move decided by its policies. :class:`OpenGate`
allows every move (for tests and tools that need no policy). :meth:`Gate.decide` fails
closed: an error while deciding is a denial, never an allowed move.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlprov.records import ModelVersion

if TYPE_CHECKING:
    from mlprov.registry._context import RegistryContext

__all__ = ["DEPLOYMENT_ALIAS", "Gate", "GateDecision", "OpenGate", "PointerMove", "PolicyGate"]

#: ``PointerMove.pointer`` of a deployment's alias (judged by the deployment policies).
DEPLOYMENT_ALIAS = "deployment.alias"


@dataclass(frozen=True)
class PointerMove:
    """A requested move of ``model@name`` (an alias) or of a version's stage."""

    pointer: str  # "alias", "stage" or "deployment.alias" (model is then the deployment)
    model: str
    name: str  # the alias, or the target stage's value
    action: str  # set, rollback or delete
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str

    @property
    def subject(self) -> str:
        if self.pointer in ("alias", DEPLOYMENT_ALIAS):
            return f"{self.model}@{self.name}"
        return f"{self.model}/{self.to_version}"


@dataclass(frozen=True)
class GateDecision:
    """Whether a move may happen, why not, and which policy (by digest) decided."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    policy_digest: str | None = None
    #: The policy engine's whole decision, kept with the audit entry of the move.
    record: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "policy_digest": self.policy_digest,
        }
        if self.record is not None:
            value["policy"] = dict(self.record)
        return value


class Gate(abc.ABC):
    """Decides pointer moves. Implementations provide :meth:`_decide`.

    A gate that judges by the registry's active policy set says so with
    ``judges_registry_policy``: its decision then names the digest of the policy set it
    evaluated, and the move commits only if that set is still the active one.
    """

    judges_registry_policy: bool = False

    def decide(
        self, move: PointerMove, target: ModelVersion | None, current: ModelVersion | None
    ) -> GateDecision:
        """The decision for ``move``; any error while deciding is a denial (fail closed)."""
        try:
            return self._decide(move, target, current)
        except Exception as e:
            first = str(e).strip().splitlines()
            return GateDecision(
                False, (f"the gate failed: {type(e).__name__}: {first[0] if first else ''}",)
            )

    @abc.abstractmethod
    def _decide(
        self, move: PointerMove, target: ModelVersion | None, current: ModelVersion | None
    ) -> GateDecision: ...


class OpenGate(Gate):
    """No policy applied yet: every move is allowed."""

    def _decide(
        self, move: PointerMove, target: ModelVersion | None, current: ModelVersion | None
    ) -> GateDecision:
        return GateDecision(True)


class PolicyGate(Gate):
    """The registry's gate: the candidate is verified with the trust of the active policy
    set and the move decided by its policies (:func:`mlprov.registry.policies.judge`).

    Built in, whatever the policies say: a revoked version is never a move's target.
    Without an active policy set every other move is allowed, and the decision says so.
    """

    judges_registry_policy = True

    def __init__(self, context: RegistryContext) -> None:
        self._context = context

    def _decide(
        self, move: PointerMove, target: ModelVersion | None, current: ModelVersion | None
    ) -> GateDecision:
        from mlprov.registry.policies import judge, parse_target  # noqa: PLC0415

        if move.pointer == DEPLOYMENT_ALIAS:
            return self._decide_deployment(move)
        goal = parse_target(move.name if move.pointer == "alias" else f"stage:{move.name}")
        judgement = judge(
            self._context,
            move.model,
            goal,
            move.to_version,
            current.version if current is not None else None,
            rollback=move.action == "rollback",
        )
        revoked = [c for c in judgement.report.failures if c.id == "revocation"]
        if revoked and move.to_version is not None:
            return GateDecision(
                False,
                tuple(c.message for c in revoked),
                judgement.policy_digest,
                record=judgement.decision.to_json() if judgement.decision else None,
            )
        decision = judgement.decision
        if decision is None:
            return GateDecision(True, ("no policy applied",), None)
        return GateDecision(
            decision.allowed,
            decision.failure_lines() or (decision.message,),
            decision.policy_digest,
            record=decision.to_json(),
        )

    def _decide_deployment(self, move: PointerMove) -> GateDecision:
        """A deployment alias: the deployment version verified and its members judged
        (:func:`mlprov.registry.deployment_judge.judge_deployment`), the move decided by
        the deployment policies. Built in: a revoked member is never part of a target."""
        from mlprov.policy import Target  # noqa: PLC0415
        from mlprov.registry.deployment_judge import judge_deployment  # noqa: PLC0415

        judgement = judge_deployment(
            self._context,
            move.model,
            Target("alias", move.name),
            move.to_version,
            move.from_version,
        )
        decision = judgement.decision
        revoked = [c for c in judgement.report.failures if c.id == "revocation"]
        if revoked:
            return GateDecision(
                False,
                tuple(f"{c.subject}: {c.message}" for c in revoked),
                judgement.policy_digest,
                record=decision.to_json() if decision else None,
            )
        if decision is None:
            return GateDecision(True, ("no policy applied",), None)
        return GateDecision(
            decision.allowed,
            decision.failure_lines() or (decision.message,),
            decision.policy_digest,
            record=decision.to_json(),
        )
