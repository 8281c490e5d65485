"""``mlprov status``: every model's and deployment's aliases and whether each target
verifies now."""

from __future__ import annotations

from mlprov.errors import MlprovError
from mlprov.registry._context import RegistryContext
from mlprov.registry.types import AliasStatus
from mlprov.registry.verify import verify_registered

__all__ = ["AliasStatus", "status"]


def status(context: RegistryContext) -> list[AliasStatus]:
    """Each alias that points somewhere, judged as serving would judge it (``pull``):
    the models' aliases, then the deployments'."""
    with context.metadata.read() as tx:
        pointers = sorted((k, v, False) for k, v in tx.aliases.all_pointers().items())
        pointers += sorted((k, v, True) for k, v in tx.deployment_aliases.all_pointers().items())
    found = []
    for (model, alias), (version, generation), deployment in pointers:
        if version is None:
            continue
        try:
            judgement = verify_registered(context, f"{model}@{alias}")
        except MlprovError as e:  # a broken record is a status to show, not a crash
            found.append(
                AliasStatus(model, alias, version, generation, False, False, e.message, deployment)
            )
            continue
        failures = judgement.report.failures
        revoked = any(c.id == "revocation" for c in failures)
        if judgement.policy_digest is None:
            problem: str | None = "no policy set is applied: nothing is trusted"
        elif failures:
            problem = f"{failures[0].id}: {failures[0].message}"
        elif judgement.decision is not None and not judgement.decision.allowed:
            problem = judgement.decision.message
        else:
            problem = None
        found.append(
            AliasStatus(
                model, alias, version, generation, problem is None, revoked, problem, deployment
            )
        )
    return found
