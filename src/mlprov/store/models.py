"""Registered models: rows of ``models`` and ``model_tags`` as records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from mlprov.records import RegisteredModel
from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows

__all__ = ["ModelKey", "ModelRows", "NumberTaken"]

# Built once, values bound at execution (a registration runs these: ADR 0049).
_FIND = sa.select(t.models).where(t.models.c.name == sa.bindparam("wanted"))

# Find and claim in one statement (one round trip under the writer lock, ADR 0049):
# the counter as it is, or only if it is still the number a signed document names.
_TAKE_NEXT = (
    sa.update(t.models)
    .where(t.models.c.name == sa.bindparam("wanted"))
    .values(next_version=t.models.c.next_version + 1)
)
_TAKE_NUMBER = (
    sa.update(t.models)
    .where(
        t.models.c.name == sa.bindparam("wanted"), t.models.c.next_version == sa.bindparam("taken")
    )
    .values(next_version=sa.bindparam("following"))
)
_TAKEN = (t.models.c.id, t.models.c.name, t.models.c.next_version)
# On PostgreSQL the version row's id is drawn in the same statement, so the version row
# can be queued with the COMMIT rather than be a round trip of its own under the lock
# (its RETURNING id was one; ADR 0049, amendment on PostgreSQL registration).
_NEXT_VERSION_ID = sa.func.nextval(sa.func.pg_get_serial_sequence("versions", "id"))
_TAKE = {
    ("sqlite", False): _TAKE_NEXT.returning(*_TAKEN),
    ("sqlite", True): _TAKE_NUMBER.returning(*_TAKEN),
    ("postgresql", False): _TAKE_NEXT.returning(*_TAKEN, _NEXT_VERSION_ID),
    ("postgresql", True): _TAKE_NUMBER.returning(*_TAKEN, _NEXT_VERSION_ID),
}


@dataclass(frozen=True)
class NumberTaken:
    """What :meth:`ModelRows.take_number` gives: the model's key (its counter already
    moved on), the number taken, and on PostgreSQL the id its version row will have."""

    model: ModelKey
    number: int
    version_id: int | None


@dataclass(frozen=True)
class ModelKey:
    """A model's identity in this store and the number its next version will get."""

    id: int
    name: str
    next_version: int


def _key(row: Row) -> ModelKey:
    return ModelKey(int(row.id), str(row.name), int(row.next_version))


class ModelRows(Rows):
    def find(self, name: str) -> ModelKey | None:
        row = self.connection.execute(_FIND, {"wanted": name}).first()
        return _key(row) if row is not None else None

    def insert(self, *, name: str, description: str, at: str, actor: str) -> ModelKey:
        result = self.connection.execute(
            sa.insert(t.models)
            .values(name=name, description=description, created_at=at, created_by=actor)
            .returning(t.models.c.id)
        )
        return ModelKey(int(result.scalar_one()), name, 1)

    def keys(self, prefix: str | None = None) -> list[ModelKey]:
        query = sa.select(t.models).order_by(t.models.c.name)
        if prefix:
            query = query.where(t.models.c.name.like(_like_prefix(prefix), escape="\\"))
        return [_key(row) for row in self._all(query)]

    def records(self, keys: Sequence[ModelKey]) -> list[RegisteredModel]:
        """The records of these models, in the order given (four queries in all)."""
        ids = [key.id for key in keys]
        if not ids:
            return []
        rows = {
            int(row.id): row for row in self._all(sa.select(t.models).where(t.models.c.id.in_(ids)))
        }
        tags: dict[int, dict[str, str]] = {i: {} for i in ids}
        for row in self._all(sa.select(t.model_tags).where(t.model_tags.c.model_id.in_(ids))):
            tags[int(row.model_id)][str(row.key)] = str(row.value)
        latest = {
            int(row.model_id): int(row.latest)
            for row in self._all(
                sa.select(t.versions.c.model_id, sa.func.max(t.versions.c.number).label("latest"))
                .where(t.versions.c.model_id.in_(ids))
                .group_by(t.versions.c.model_id)
            )
        }
        aliases: dict[int, dict[str, int]] = {i: {} for i in ids}
        for row in self._all(
            sa.select(t.aliases.c.model_id, t.aliases.c.name, t.versions.c.number)
            .join(t.versions, t.versions.c.id == t.aliases.c.version_id)
            .where(t.aliases.c.model_id.in_(ids))
            .order_by(t.aliases.c.name)
        ):
            aliases[int(row.model_id)][str(row.name)] = int(row.number)
        return [
            RegisteredModel(
                name=str(rows[i].name),
                description=str(rows[i].description),
                tags=tags[i],
                created_at=str(rows[i].created_at),
                created_by=str(rows[i].created_by),
                latest_version=latest.get(i),
                aliases=aliases[i],
            )
            for i in ids
        ]

    def set_tag(self, model: ModelKey, key: str, value: str | None) -> None:
        self.connection.execute(
            sa.delete(t.model_tags).where(
                t.model_tags.c.model_id == model.id, t.model_tags.c.key == key
            )
        )
        if value is not None:
            self.connection.execute(
                sa.insert(t.model_tags).values(model_id=model.id, key=key, value=value)
            )

    def set_description(self, model: ModelKey, description: str) -> None:
        self.connection.execute(
            sa.update(t.models).where(t.models.c.id == model.id).values(description=description)
        )

    def take_number(self, name: str, number: int | None = None) -> NumberTaken | None:
        """Give the model's next version number to the caller, in one statement (sent
        with the writer lock when it is the transaction's first). With ``number`` only
        that one (a compare-and-set on the model's counter). None when there is no such
        model, or ``number`` is no longer the next one (another registration took it)."""
        dialect = "postgresql" if self.later.deferring else "sqlite"
        if number is None:
            rows = self.later.now(_TAKE[dialect, False], {"wanted": name})
        else:
            rows = self.later.now(
                _TAKE[dialect, True], {"wanted": name, "taken": number, "following": number + 1}
            )
        if not rows:
            return None
        row = rows[0]
        key = ModelKey(id=int(row[0]), name=str(row[1]), next_version=int(row[2]))
        return NumberTaken(key, key.next_version - 1, int(row[3]) if len(row) > 3 else None)

    def claim_imported_number(self, model: ModelKey, number: int) -> bool:
        """Compare-and-set for an imported version, which keeps its number: take
        ``number`` only if no number at or above it was ever given (numbers below it that
        were never used stay unused)."""
        result = self.connection.execute(
            sa.update(t.models)
            .where(t.models.c.id == model.id, t.models.c.next_version <= number)
            .values(next_version=number + 1)
        )
        return result.rowcount == 1

    def names(self, model_ids: Iterable[int]) -> dict[int, str]:
        ids = list(set(model_ids))
        if not ids:
            return {}
        rows = self._all(sa.select(t.models.c.id, t.models.c.name).where(t.models.c.id.in_(ids)))
        return {int(row.id): str(row.name) for row in rows}


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching ``prefix`` literally (``_`` and ``%`` are not wildcards)."""
    return like_literal(prefix) + "%"


def like_literal(text: str) -> str:
    """``text`` escaped for LIKE with ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
