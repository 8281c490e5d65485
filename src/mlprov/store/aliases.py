"""Aliases and their history: rows of ``aliases`` and ``alias_history`` as records."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import exc

from mlprov.audit import PointerHistory
from mlprov.records import AliasEvent
from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows
from mlprov.store.models import ModelKey

__all__ = ["AliasPointer", "AliasRows"]


@dataclass(frozen=True)
class AliasPointer:
    """An alias as stored: its generation and the version it points at (None: deleted).
    Generation 0 means the alias has never existed."""

    generation: int
    version_id: int | None
    version: int | None


def _event(model: ModelKey, row: Row) -> AliasEvent:
    return AliasEvent(
        name=model.name,
        alias=str(row.alias),
        kind=str(row.kind),
        from_version=row.from_version,
        to_version=row.to_version,
        generation=int(row.generation),
        actor=str(row.actor),
        at=str(row.at),
        reason=str(row.reason),
    )


class AliasRows(Rows):
    def pointer(self, model: ModelKey, name: str) -> AliasPointer:
        row = self._one(
            sa.select(t.aliases.c.generation, t.aliases.c.version_id, t.versions.c.number)
            .select_from(t.aliases)
            .outerjoin(t.versions, t.versions.c.id == t.aliases.c.version_id)
            .where(t.aliases.c.model_id == model.id, t.aliases.c.name == name)
        )
        if row is None:
            return AliasPointer(0, None, None)
        return AliasPointer(
            int(row.generation),
            int(row.version_id) if row.version_id is not None else None,
            int(row.number) if row.number is not None else None,
        )

    def move(
        self, model: ModelKey, name: str, version_id: int | None, expected_generation: int
    ) -> int | None:
        """Compare-and-set: move only if the generation is still ``expected_generation``.

        Returns the new generation, or None when someone else moved it first.
        """
        new_generation = expected_generation + 1
        if expected_generation == 0:
            try:
                with self.connection.begin_nested():
                    self.connection.execute(
                        sa.insert(t.aliases).values(
                            model_id=model.id,
                            name=name,
                            version_id=version_id,
                            generation=new_generation,
                        )
                    )
            except exc.IntegrityError:
                return None
            return new_generation
        result = self.connection.execute(
            sa.update(t.aliases)
            .where(
                t.aliases.c.model_id == model.id,
                t.aliases.c.name == name,
                t.aliases.c.generation == expected_generation,
            )
            .values(version_id=version_id, generation=new_generation)
        )
        return new_generation if result.rowcount == 1 else None

    def insert_event(self, model: ModelKey, event: AliasEvent) -> None:
        self.connection.execute(
            sa.insert(t.alias_history).values(
                model_id=model.id,
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

    def history(self, model: ModelKey, name: str | None) -> list[AliasEvent]:
        query = sa.select(t.alias_history).where(t.alias_history.c.model_id == model.id)
        if name is not None:
            query = query.where(t.alias_history.c.alias == name)
        return [_event(model, row) for row in self._all(query.order_by(t.alias_history.c.id))]

    def all_pointers(self) -> dict[tuple[str, str], tuple[int | None, int]]:
        """Every alias as (model, alias) -> (version number or None, generation)."""
        rows = self._all(
            sa.select(
                t.models.c.name,
                t.aliases.c.name.label("alias"),
                t.aliases.c.generation,
                t.versions.c.number,
            )
            .select_from(t.aliases)
            .join(t.models, t.models.c.id == t.aliases.c.model_id)
            .outerjoin(t.versions, t.versions.c.id == t.aliases.c.version_id)
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
        rows = self._all(
            sa.select(t.alias_history, t.models.c.name)
            .join(t.models, t.models.c.id == t.alias_history.c.model_id)
            .order_by(t.alias_history.c.id)
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
