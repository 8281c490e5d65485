"""The policy engine: strict policy files, the trust they declare, and decisions.

Pure (ARCHITECTURE.md, ``policy/``): the registry or the CLI reads a policy folder into
``{file name: bytes}``; nothing here opens a file, a socket or a database.

Stable API (this module's ``__all__``)::

    load_policy_set(files) -> PolicySet        # PolicyError (exit 2): file, line, key
    lint_policy_set(files) -> tuple[PolicyProblem, ...]   # every problem, not only the first
    PolicySet.digest, .files, .trust (a verify.TrustSet), .policies
    evaluate(policy_set, model=, target=, report=, context=) -> PolicyDecision
    evaluate_deployment(policy_set, deployment=, target=, report=, context=) -> PolicyDecision

The file format is in docs/policies.md; the trust model in docs/trust.md.
"""

from __future__ import annotations

from mlprov.policy._decision import (
    GateContext,
    Move,
    PolicyDecision,
    RequirementResult,
    RequirementStatus,
    Residence,
    Target,
    VerifiedApproval,
    VerifiedWaiver,
    WaiverGrant,
)
from mlprov.policy._deployment import (
    DeploymentGateContext,
    DeploymentMemberJudgement,
    evaluate_deployment,
)
from mlprov.policy._documents import (
    REQUIREMENT_KINDS,
    PolicyError,
    PolicyProblem,
)
from mlprov.policy._evaluate import evaluate
from mlprov.policy._set import CompiledPolicy, PolicySet, lint_policy_set, load_policy_set
from mlprov.policy._trust import PatternSigstoreTrust

__all__ = [
    "REQUIREMENT_KINDS",
    "CompiledPolicy",
    "DeploymentGateContext",
    "DeploymentMemberJudgement",
    "GateContext",
    "Move",
    "PatternSigstoreTrust",
    "PolicyDecision",
    "PolicyError",
    "PolicyProblem",
    "PolicySet",
    "RequirementResult",
    "RequirementStatus",
    "Residence",
    "Target",
    "VerifiedApproval",
    "VerifiedWaiver",
    "WaiverGrant",
    "evaluate",
    "evaluate_deployment",
    "lint_policy_set",
    "load_policy_set",
]
