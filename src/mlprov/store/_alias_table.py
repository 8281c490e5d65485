"""One table of aliases and its history, whoever owns the aliases.

Model aliases (:mod:`mlprov.store.aliases`) and deployment aliases
(:mod:`mlprov.store.deployment_aliases`) are the same thing on different tables: a name
owned by a model or a deployment, pointing at one of its versions, with a generation
counter moved by compare-and-set and every move kept in a history table. A deleted alias
keeps its row (target NULL) so its generation never resets. :class:`AliasTables` says
which tables and columns; :class:`AliasTableRows` runs the queries on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc

from mlprov.audit import PointerHistory
from mlprov.records import AliasEvent
from mlprov.store._rows import Row, Rows

__all__ = ["AliasPointer", "AliasTableRows", "AliasTables"]


@dataclass(frozen=True)
class AliasPointer:
    """An alias as stored: its generation and the version it points at (None: deleted).
    Generation 0 means the alias has never existed."""

    generation: int
    version_id: int | None
    version: int | None


@dataclass(frozen=True)
class AliasTables:
    """Where one kind of alias is stored.

    ``aliases`` has the owner column, ``name``, the target column and ``generation``;
    ``history`` has the owner column, ``id`` (the order of the moves) and the columns of
    an :class:`AliasEvent`; ``owners`` and ``targets`` are the tables the owner and target
    columns point into (``id``, and ``name`` or ``number``).
    """

    aliases: sa.Table
    history: sa.Table
    owners: sa.Table
    targets: sa.Table
    owner: str
    target: str


class _Owner(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


OwnerKey = TypeVar("OwnerKey", bound=_Owner)


def _event(owner: _Owner, row: Row) -> AliasEvent:
    return AliasEvent(
        name=owner.name,
        alias=str(row.alias),
        kind=str(row.kind),
        from_version=row.from_version,
        to_version=row.to_version,
        generation=int(row.generation),
        actor=str(row.actor),
        at=str(row.at),
        reason=str(row.reason),
    )


class AliasTableRows(Rows, Generic[OwnerKey]):
    """The alias queries, on the tables a subclass names in :attr:`tables`."""

    tables: ClassVar[AliasTables]

    def pointer(self, owner: OwnerKey, name: str) -> AliasPointer:
        """The alias as stored (``version_id`` is the target's row id); generation 0:
        the alias never existed."""
        aliases, targets = self.tables.aliases, self.tables.targets
        target = aliases.c[self.tables.target]
        row = self._one(
            sa.select(aliases.c.generation, target, targets.c.number)
            .select_from(aliases)
            .outerjoin(targets, targets.c.id == target)
            .where(aliases.c[self.tables.owner] == owner.id, aliases.c.name == name)
        )
        if row is None:
            return AliasPointer(0, None, None)
        target_id = row._mapping[target]
        return AliasPointer(
            int(row.generation),
            int(target_id) if target_id is not None else None,
            int(row.number) if row.number is not None else None,
        )

    def move(
        self, owner: OwnerKey, name: str, version_id: int | None, expected_generation: int
    ) -> int | None:
        """Compare-and-set: move only if the generation is still ``expected_generation``.

        Returns the new generation, or None when someone else moved it first.
        """
        aliases = self.tables.aliases
        new_generation = expected_generation + 1
        if expected_generation == 0:
            try:
                with self.connection.begin_nested():
                    self.connection.execute(
                        sa.insert(aliases).values(
                            {
                                self.tables.owner: owner.id,
                                "name": name,
                                self.tables.target: version_id,
                                "generation": new_generation,
                            }
                        )
                    )
            except exc.IntegrityError:
                return None
            return new_generation
        result = self.connection.execute(
            sa.update(aliases)
            .where(
                aliases.c[self.tables.owner] == owner.id,
                aliases.c.name == name,
                aliases.c.generation == expected_generation,
            )
            .values({self.tables.target: version_id, "generation": new_generation})
        )
        return new_generation if result.rowcount == 1 else None

    def insert_event(self, owner: OwnerKey, event: AliasEvent) -> None:
        self.connection.execute(
            sa.insert(self.tables.history).values(
                {
                    self.tables.owner: owner.id,
                    "alias": event.alias,
                    "kind": event.kind,
                    "from_version": event.from_version,
                    "to_version": event.to_version,
                    "generation": event.generation,
                    "actor": event.actor,
                    "at": event.at,
                    "reason": event.reason,
                }
            )
        )

    def history(self, owner: OwnerKey, name: str | None) -> list[AliasEvent]:
        history = self.tables.history
        query = sa.select(history).where(history.c[self.tables.owner] == owner.id)
        if name is not None:
            query = query.where(history.c.alias == name)
        return [_event(owner, row) for row in self._all(query.order_by(history.c.id))]

    def all_pointers(self) -> dict[tuple[str, str], tuple[int | None, int]]:
        """Every alias as (owner, alias) -> (version number or None, generation)."""
        aliases, owners, targets = self.tables.aliases, self.tables.owners, self.tables.targets
        rows = self._all(
            sa.select(
                owners.c.name,
                aliases.c.name.label("alias"),
                aliases.c.generation,
                targets.c.number,
            )
            .select_from(aliases)
            .join(owners, owners.c.id == aliases.c[self.tables.owner])
            .outerjoin(targets, targets.c.id == aliases.c[self.tables.target])
        )
        return {
            (str(r.name), str(r.alias)): (
                int(r.number) if r.number is not None else None,
                int(r.generation),
            )
            for r in rows
        }

    def all_history(self) -> list[PointerHistory]:
        """Every alias move, in the order they were made."""
        history, owners = self.tables.history, self.tables.owners
        rows = self._all(
            sa.select(history, owners.c.name)
            .join(owners, owners.c.id == history.c[self.tables.owner])
            .order_by(history.c.id)
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
