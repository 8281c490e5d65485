"""Deployment aliases and their history: rows of ``deployment_aliases`` and
``deployment_alias_history`` as records.

They work like model aliases (:mod:`mlprov.store.aliases`): a generation counter moved by
compare-and-set, a deleted alias keeping its row so its generation never resets. The
queries are the same (:class:`~mlprov.store._alias_table.AliasTableRows`); only the tables
differ.
"""

from __future__ import annotations

from mlprov.store import _schema as t
from mlprov.store._alias_table import AliasTableRows, AliasTables
from mlprov.store.deployments import DeploymentKey

__all__ = ["DeploymentAliasRows"]


class DeploymentAliasRows(AliasTableRows[DeploymentKey]):
    """A deployment's aliases; a pointer's ``version_id`` is the deployment version's
    row id."""

    tables = AliasTables(
        t.deployment_aliases,
        t.deployment_alias_history,
        t.deployments,
        t.deployment_versions,
        owner="deployment_id",
        target="deployment_version_id",
    )
