"""The public surface of mlprov.policy, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import mlprov.policy
from support.signing import subprocess_env

PUBLIC = [
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


def test_public_surface_is_pinned() -> None:
    assert mlprov.policy.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(mlprov.policy, name) is not None


def test_importing_the_engine_does_not_load_cel() -> None:
    # cel-python (and its parser, lark) load only when a policy with a CEL expression is
    # compiled. (mlprov.provenance does load: the verification engine names its predicate
    # types.)
    code = (
        "import sys, mlprov.policy\nprint(sorted(m for m in ('celpy', 'lark') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"
