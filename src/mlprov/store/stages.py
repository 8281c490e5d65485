"""Stage history: rows of ``stage_history`` as records."""

from __future__ import annotations

import sqlalchemy as sa

from mlprov.audit import StageHistory
from mlprov.records import Stage, StageEvent
from mlprov.store import _schema as t
from mlprov.store._rows import Rows
from mlprov.store.models import ModelKey
from mlprov.store.versions import VersionKey

__all__ = ["StageRows"]


class StageRows(Rows):
    def insert_event(self, version: VersionKey, event: StageEvent) -> None:
        self.connection.execute(
            sa.insert(t.stage_history).values(
                version_id=version.id,
                from_stage=event.from_stage.value,
                to_stage=event.to_stage.value,
                actor=event.actor,
                at=event.at,
                reason=event.reason,
            )
        )

    def history(self, model: ModelKey) -> list[StageEvent]:
        rows = self._all(
            sa.select(t.stage_history, t.versions.c.number)
            .join(t.versions, t.versions.c.id == t.stage_history.c.version_id)
            .where(t.versions.c.model_id == model.id)
            .order_by(t.stage_history.c.id)
        )
        return [
            StageEvent(
                name=model.name,
                version=int(row.number),
                from_stage=Stage(row.from_stage),
                to_stage=Stage(row.to_stage),
                actor=str(row.actor),
                at=str(row.at),
                reason=str(row.reason),
            )
            for row in rows
        ]

    def all_history(self) -> list[StageHistory]:
        """Every stage change, in the order they were made."""
        rows = self._all(
            sa.select(t.stage_history, t.versions.c.number, t.models.c.name)
            .join(t.versions, t.versions.c.id == t.stage_history.c.version_id)
            .join(t.models, t.models.c.id == t.versions.c.model_id)
            .order_by(t.stage_history.c.id)
        )
        return [
            StageHistory(
                str(r.name),
                int(r.number),
                str(r.from_stage),
                str(r.to_stage),
                str(r.actor),
                str(r.at),
                str(r.reason),
            )
            for r in rows
        ]

    def current(self) -> dict[tuple[str, int], str]:
        """Every version not in stage None, as (model, version) -> stage."""
        rows = self._all(
            sa.select(t.models.c.name, t.versions.c.number, t.versions.c.stage)
            .join(t.models, t.models.c.id == t.versions.c.model_id)
            .where(t.versions.c.stage != Stage.NONE.value)
        )
        return {(str(r.name), int(r.number)): str(r.stage) for r in rows}
