"""What the policy engine takes besides the report (:class:`GateContext`) and what it gives
(:class:`PolicyDecision`): pure values, no IO.

The registry's gate builds a :class:`GateContext` from what it read in its snapshot (the
move, the champion's report, the verified approvals and waivers, the alias and stage
history of the candidate) and passes it with the candidate's
:class:`~mlprov.verification.VerificationReport` to :func:`mlprov.policy.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from mlprov.errors import PolicyDenied
from mlprov.records import ModelVersion
from mlprov.signing import SignerIdentity
from mlprov.verification import CheckResult, CheckStatus, VerificationReport

__all__ = [
    "GateContext",
    "Move",
    "PolicyDecision",
    "RequirementResult",
    "RequirementStatus",
    "Residence",
    "Target",
    "VerifiedApproval",
    "VerifiedWaiver",
    "WaiverGrant",
]

TargetKind = Literal["alias", "stage"]


@dataclass(frozen=True, order=True)
class Target:
    """What a move changes: an alias (``production``) or a stage (``Staging``)."""

    kind: TargetKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class Move:
    """The pointer move being gated. ``to_version`` is None when the alias is deleted;
    ``from_version`` is None when the alias is new (or the stage held nothing)."""

    from_version: int | None
    to_version: int | None
    rollback: bool = False  # the caller asked for a rollback (mlprov alias rollback)

    def to_json(self) -> dict[str, Any]:
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "rollback": self.rollback,
        }


@dataclass(frozen=True)
class VerifiedApproval:
    """A signed approval statement whose signature verified.

    ``signer_name`` is the name of the trusted signer (in the policy's trust) whose key,
    certificate root or Sigstore identity verified it; ``identity`` is who signed, as
    verification established it; ``target`` is the alias or stage the approval is for.
    """

    signer_name: str
    identity: SignerIdentity
    target: Target
    comment: str = ""


@dataclass(frozen=True)
class WaiverGrant:
    """One signature on a waiver: which trusted signer, and who."""

    signer_name: str
    identity: SignerIdentity


@dataclass(frozen=True)
class VerifiedWaiver:
    """A signed waiver for this version and one target, with every signature verified.

    ``requirements`` are result ids (``production/approvals``) it waives; it is valid
    from ``issued_at`` until ``expires_at`` and only when the policy allows waivers of
    those requirements, for that long, granted by enough distinct holders of its role.
    """

    target: Target
    requirements: tuple[str, ...]
    reason: str
    issued_at: datetime
    expires_at: datetime
    granted_by: tuple[WaiverGrant, ...]


@dataclass(frozen=True)
class Residence:
    """A time the candidate version spent at another alias or stage (from the history):
    it ``entered`` then and ``left`` then, or is still there (None)."""

    target: Target
    entered: datetime
    left: datetime | None = None

    def duration_until(self, now: datetime) -> float:
        """Seconds spent there, up to ``now``."""
        end = self.left if self.left is not None else now
        return max(0.0, (end - self.entered).total_seconds())


@dataclass(frozen=True)
class GateContext:
    """Everything a requirement may look at besides the candidate's report.

    * ``now``: the gate's clock (time-zone aware);
    * ``move``: from which version to which;
    * ``version``: the candidate's registry record (unsigned: only CEL expressions see
      it, and the creator is read from it when ``creator`` is not given);
    * ``champion``: the report of the version the target holds now, or None;
    * ``approvals`` and ``waivers``: verified approval and waiver statements of the
      candidate (an approval for another target is ignored);
    * ``residences``: the candidate's stays at other aliases and stages;
    * ``previously_admitted``: the candidate was admitted to this target before;
    * ``creator``: who registered the candidate (the registry principal);
    * ``signers``: identities that signed any of the candidate's evidence, beyond the
      model signers in the report's facts (separation of duties excludes them too).
    """

    now: datetime
    move: Move
    version: ModelVersion | None = None
    champion: VerificationReport | None = None
    approvals: tuple[VerifiedApproval, ...] = ()
    waivers: tuple[VerifiedWaiver, ...] = ()
    residences: tuple[Residence, ...] = ()
    previously_admitted: bool = False
    creator: str | None = None
    signers: tuple[SignerIdentity, ...] = ()

    @property
    def version_creator(self) -> str | None:
        if self.creator is not None:
            return self.creator
        return self.version.created_by if self.version is not None else None


class RequirementStatus(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    WAIVED = "waived"  # failed, and a valid waiver covers it
    SKIPPED = "skipped"  # not enforced for this move (rollback the policy allows)


_CHECK_STATUS = {
    RequirementStatus.PASSED: CheckStatus.PASSED,
    RequirementStatus.FAILED: CheckStatus.FAILED,
    RequirementStatus.WAIVED: CheckStatus.PASSED,
    RequirementStatus.SKIPPED: CheckStatus.SKIPPED,
}


@dataclass(frozen=True)
class RequirementResult:
    """One requirement of one policy: ``id`` is ``POLICY/REQUIREMENT``, ``kind`` the
    requirement kind (``signatures``, ``metric``, ...), ``message`` one line saying why."""

    id: str
    policy: str
    kind: str
    status: RequirementStatus
    message: str

    @property
    def passed(self) -> bool:
        return self.status != RequirementStatus.FAILED

    def to_check(self, subject: str) -> CheckResult:
        """The result as a :class:`~mlprov.verification.CheckResult`, for the verify renderers.

        A waived requirement becomes a passed check whose message starts with
        ``WAIVED``, so no renderer shows it as an ordinary pass.
        """
        message = self.message
        if self.status == RequirementStatus.WAIVED:
            message = f"WAIVED: {message}"
        return CheckResult(f"policy:{self.id}", _CHECK_STATUS[self.status], message, subject)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy": self.policy,
            "kind": self.kind,
            "status": self.status.value,
            "message": self.message,
        }


@dataclass(frozen=True)
class PolicyDecision:
    """The policy engine's answer for one move.

    ``policy_digest`` is the digest of the policy set that was evaluated (the gate's
    compare-and-set uses it); ``policies`` the names of the policies that selected the
    move; ``message`` one line summing up (also when no policy selected it).
    """

    allowed: bool
    subject: str
    target: Target
    policy_digest: str
    policies: tuple[str, ...]
    results: tuple[RequirementResult, ...]
    message: str

    @property
    def failures(self) -> tuple[RequirementResult, ...]:
        return tuple(r for r in self.results if r.status == RequirementStatus.FAILED)

    @property
    def checks(self) -> tuple[CheckResult, ...]:
        return tuple(r.to_check(self.subject) for r in self.results)

    def failure_lines(self) -> tuple[str, ...]:
        """One line per failed requirement: ``POLICY/REQUIREMENT: why``."""
        return tuple(f"{r.id}: {r.message}" for r in self.failures)

    def raise_for_denial(self) -> None:
        """Raise :class:`~mlprov.errors.PolicyDenied` (exit 1) if the move is denied."""
        if not self.allowed:
            raise PolicyDenied(self.message)

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "subject": self.subject,
            "target": self.target.to_json(),
            "policy_digest": self.policy_digest,
            "policies": list(self.policies),
            "message": self.message,
            "results": [r.to_json() for r in self.results],
        }
