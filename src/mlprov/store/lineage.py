"""Lineage edges: rows of ``lineage_edges`` as records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from mlprov.records import LineageEdge
from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows

__all__ = ["LineageRows", "StoredEdge"]


@dataclass(frozen=True)
class StoredEdge:
    """One edge as stored: from a version to a registered version or an external URI."""

    version_id: int
    relation: str
    target_version_id: int | None
    target_uri: str | None
    digest: str


def _edge(row: Row) -> StoredEdge:
    return StoredEdge(
        version_id=int(row.version_id),
        relation=str(row.relation),
        target_version_id=int(row.target_version_id) if row.target_version_id is not None else None,
        target_uri=str(row.target_uri) if row.target_uri is not None else None,
        digest=str(row.target_digest),
    )


class LineageRows(Rows):
    def insert(self, version_id: int, edges: Iterable[StoredEdge]) -> None:
        rows = [
            {
                "version_id": version_id,
                "relation": e.relation,
                "target_version_id": e.target_version_id,
                "target_uri": e.target_uri,
                "target_digest": e.digest,
            }
            for e in edges
        ]
        if rows:
            self.connection.execute(sa.insert(t.lineage_edges), rows)

    def edges_from(self, version_id: int) -> list[StoredEdge]:
        return [
            _edge(row)
            for row in self._all(
                sa.select(t.lineage_edges)
                .where(t.lineage_edges.c.version_id == version_id)
                .order_by(t.lineage_edges.c.id)
            )
        ]

    def edges_into(self, target_version_id: int) -> list[StoredEdge]:
        """Edges whose target is this version (its children)."""
        return [
            _edge(row)
            for row in self._all(
                sa.select(t.lineage_edges)
                .where(t.lineage_edges.c.target_version_id == target_version_id)
                .order_by(t.lineage_edges.c.id)
            )
        ]

    def records(self, version_id: int) -> list[LineageEdge]:
        """A version's edges as records, registered targets named ``name/number``."""
        rows = self._all(
            sa.select(
                t.lineage_edges,
                t.models.c.name.label("target_name"),
                t.versions.c.number.label("target_number"),
            )
            .select_from(t.lineage_edges)
            .outerjoin(t.versions, t.versions.c.id == t.lineage_edges.c.target_version_id)
            .outerjoin(t.models, t.models.c.id == t.versions.c.model_id)
            .where(t.lineage_edges.c.version_id == version_id)
            .order_by(t.lineage_edges.c.id)
        )
        return [
            LineageEdge(
                relation=str(row.relation),
                target=(
                    f"{row.target_name}/{int(row.target_number)}"
                    if row.target_version_id is not None
                    else str(row.target_uri)
                ),
                digest=str(row.target_digest),
                registered=row.target_version_id is not None,
            )
            for row in rows
        ]
