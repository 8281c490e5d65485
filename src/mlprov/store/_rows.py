"""What every aggregate's rows share: one connection, and two ways to run a query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

Row = sa.Row[Any]


class Rows:
    """The queries of one aggregate, run on the transaction's connection."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def _one(self, statement: sa.Executable) -> Row | None:
        return self.connection.execute(statement).first()

    def _all(self, statement: sa.Executable) -> Sequence[Row]:
        return self.connection.execute(statement).all()
