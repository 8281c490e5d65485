"""Aliases and their history: rows of ``aliases`` and ``alias_history`` as records.

The queries are :class:`~mlprov.store._alias_table.AliasTableRows`, shared with
deployment aliases; this module names the tables.
"""

from __future__ import annotations

from mlprov.store import _schema as t
from mlprov.store._alias_table import AliasPointer, AliasTableRows, AliasTables
from mlprov.store.models import ModelKey

__all__ = ["AliasPointer", "AliasRows"]


class AliasRows(AliasTableRows[ModelKey]):
    """A model's aliases: ``pointer``, ``move`` (compare-and-set on the generation),
    ``insert_event``, ``history``, and every alias for the audit (``all_pointers``,
    ``all_history``)."""

    tables = AliasTables(
        t.aliases, t.alias_history, t.models, t.versions, owner="model_id", target="version_id"
    )
