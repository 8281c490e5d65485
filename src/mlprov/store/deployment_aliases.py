"""Deployment aliases and their history: rows of ``deployment_aliases`` and
``deployment_alias_history`` as records.

They work like model aliases (:mod:`mlprov.store.aliases`): a generation counter moved by
compare-and-set, a deleted alias keeping its row so its generation never resets.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc

from mlprov.audit import PointerHistory
from mlprov.records import AliasEvent
from mlprov.store import _schema as t
from mlprov.store._rows import Rows
from mlprov.store.aliases import AliasPointer
from mlprov.store.deployments import DeploymentKey

__all__ = ["DeploymentAliasRows"]


class DeploymentAliasRows(Rows):
    def pointer(self, key: DeploymentKey, name: str) -> AliasPointer:
        """The alias as stored (``version_id`` is the deployment version's row id);
        generation 0: the alias never existed."""
        row = self._one(
            sa.select(
                t.deployment_aliases.c.generation,
                t.deployment_aliases.c.deployment_version_id,
                t.deployment_versions.c.number,
            )
            .select_from(t.deployment_aliases)
            .outerjoin(
                t.deployment_versions,
                t.deployment_versions.c.id == t.deployment_aliases.c.deployment_version_id,
            )
            .where(
                t.deployment_aliases.c.deployment_id == key.id, t.deployment_aliases.c.name == name
            )
        )
        if row is None:
            return AliasPointer(0, None, None)
        return AliasPointer(
            int(row.generation),
            int(row.deployment_version_id) if row.deployment_version_id is not None else None,
            int(row.number) if row.number is not None else None,
        )

    def move(
        self, key: DeploymentKey, name: str, version_id: int | None, expected_generation: int
    ) -> int | None:
        """Compare-and-set: the new generation, or None when someone moved it first."""
        new_generation = expected_generation + 1
        if expected_generation == 0:
            try:
                with self.connection.begin_nested():
                    self.connection.execute(
                        sa.insert(t.deployment_aliases).values(
                            deployment_id=key.id,
                            name=name,
                            deployment_version_id=version_id,
                            generation=new_generation,
                        )
                    )
            except exc.IntegrityError:
                return None
            return new_generation
        result = self.connection.execute(
            sa.update(t.deployment_aliases)
            .where(
                t.deployment_aliases.c.deployment_id == key.id,
                t.deployment_aliases.c.name == name,
                t.deployment_aliases.c.generation == expected_generation,
            )
            .values(deployment_version_id=version_id, generation=new_generation)
        )
        return new_generation if result.rowcount == 1 else None

    def insert_event(self, key: DeploymentKey, event: AliasEvent) -> None:
        self.connection.execute(
            sa.insert(t.deployment_alias_history).values(
                deployment_id=key.id,
                alias=event.alias,
                kind=event.kind,
                from_version=event.from_version,
                to_version=event.to_version,
                generation=event.generation,
                actor=event.actor,
                at=event.at,
                reason=event.reason,
            )
        )

    def history(self, key: DeploymentKey, name: str | None) -> list[AliasEvent]:
        query = sa.select(t.deployment_alias_history).where(
            t.deployment_alias_history.c.deployment_id == key.id
        )
        if name is not None:
            query = query.where(t.deployment_alias_history.c.alias == name)
        return [
            AliasEvent(
                name=key.name,
                alias=str(r.alias),
                kind=str(r.kind),
                from_version=r.from_version,
                to_version=r.to_version,
                generation=int(r.generation),
                actor=str(r.actor),
                at=str(r.at),
                reason=str(r.reason),
            )
            for r in self._all(query.order_by(t.deployment_alias_history.c.id))
        ]

    def all_pointers(self) -> dict[tuple[str, str], tuple[int | None, int]]:
        """Every deployment alias as (deployment, alias) -> (version or None, generation)."""
        rows = self._all(
            sa.select(
                t.deployments.c.name,
                t.deployment_aliases.c.name.label("alias"),
                t.deployment_aliases.c.generation,
                t.deployment_versions.c.number,
            )
            .select_from(t.deployment_aliases)
            .join(t.deployments, t.deployments.c.id == t.deployment_aliases.c.deployment_id)
            .outerjoin(
                t.deployment_versions,
                t.deployment_versions.c.id == t.deployment_aliases.c.deployment_version_id,
            )
        )
        return {
            (str(r.name), str(r.alias)): (
                int(r.number) if r.number is not None else None,
                int(r.generation),
            )
            for r in rows
        }

    def all_history(self) -> list[PointerHistory]:
        """Every deployment alias move, in the order they were made."""
        rows = self._all(
            sa.select(t.deployment_alias_history, t.deployments.c.name)
            .join(t.deployments, t.deployments.c.id == t.deployment_alias_history.c.deployment_id)
            .order_by(t.deployment_alias_history.c.id)
        )
        return [
            PointerHistory(
                str(r.name),
                str(r.alias),
                str(r.kind),
                r.from_version,
                r.to_version,
                int(r.generation),
                str(r.actor),
                str(r.at),
                str(r.reason),
            )
            for r in rows
        ]
