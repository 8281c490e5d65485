"""Stage history: rows of ``stage_history`` as records."""

from __future__ import annotations

import sqlalchemy as sa

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
