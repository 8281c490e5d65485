"""The gate slot of the pointer-move path: every alias and stage move asks it first.

:func:`mlprov.registry.pointers.move` builds a :class:`PointerMove`, loads the target
and current versions, and calls :meth:`Gate.decide` outside any write transaction. A
denial is audited in its own transaction and raised as
:class:`~mlprov.errors.PolicyDenied`; an allowed move commits with compare-and-set on
what was read, so a pointer that moved meanwhile makes the move decide again.

The registry opens with :class:`OpenGate` (no policy applied: every move is allowed)
until the policy engine fills the slot. :meth:`Gate.decide` fails closed: an error while
deciding is a denial, never an allowed move.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from mlprov.records import ModelVersion

__all__ = ["Gate", "GateDecision", "OpenGate", "PointerMove"]


@dataclass(frozen=True)
class PointerMove:
    """A requested move of ``model@name`` (an alias) or of a version's stage."""

    pointer: str  # "alias" or "stage"
    model: str
    name: str  # the alias, or the target stage's value
    action: str  # set, rollback or delete
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str

    @property
    def subject(self) -> str:
        if self.pointer == "alias":
            return f"{self.model}@{self.name}"
        return f"{self.model}/{self.to_version}"


@dataclass(frozen=True)
class GateDecision:
    """Whether a move may happen, why not, and which policy (by digest) decided."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    policy_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "policy_digest": self.policy_digest,
        }


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
