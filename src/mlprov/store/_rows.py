"""What every aggregate's rows share: one connection, two ways to run a query, and the
writes a transaction may send later (:class:`LaterWrites`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.sql.dml import UpdateBase

Row = sa.Row[Any]

__all__ = ["LaterWrites", "Row", "Rows"]

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]

#: Each queued statement compiled once per set of parameter names (like SQLAlchemy's
#: own cache; compiling costs more than running, ADR 0049). The statements are module
#: constants, so their ids stay theirs.
_COMPILED: dict[tuple[int, tuple[str, ...]], Any] = {}


class LaterWrites:
    """Writes whose results nothing reads (an audit entry, the audit head, an outbox row,
    a version's files), sent together on PostgreSQL.

    On PostgreSQL every statement is a round trip to the database server, and inside a
    write transaction each one is made under the audit head's row lock that serialises
    all writers (docs/adr/0049, amendment on PostgreSQL registration). These writes are
    queued instead and sent in one psycopg pipeline: before the transaction's next
    statement of any other kind (the engine's ``before_cursor_execute`` hook calls
    :meth:`send`, so the transaction reads what it wrote), or, with the COMMIT, when it
    ends (:meth:`send_with_commit`). Their values must be what psycopg takes as they
    are (str, int, bool, bytes, None: no SQLAlchemy type conversion runs). Their order
    is kept, so a failing write raises (as SQLAlchemy's error for it) before anything
    after it runs. On SQLite, where a
    statement is a function call, each runs at once.
    """

    __slots__ = ("_compiled", "_connection", "_pending", "deferring")

    def __init__(self, connection: sa.Connection, dialect: str) -> None:
        self._connection = connection
        self.deferring = dialect == "postgresql"
        self._pending: list[tuple[UpdateBase, Params]] = []

    def add(self, statement: UpdateBase, params: Params) -> None:
        if not self.deferring:
            self._connection.execute(statement, params)
            return
        self._pending.append((statement, params))

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def discard(self) -> None:
        """Forget what was not sent (the transaction is rolling back)."""
        self._pending.clear()

    def send(self) -> None:
        """Run the queued writes now, in one round trip."""
        if self._pending:
            self._pipeline(commit=False)

    def send_with_commit(self) -> None:
        """Run the queued writes and COMMIT in one round trip (SQLAlchemy's own commit
        that follows finds the transaction closed and sends nothing). Without queued
        writes, or off PostgreSQL, nothing happens here and the commit is the caller's."""
        if self._pending:
            self._pipeline(commit=True)

    def _pipeline(self, *, commit: bool) -> None:
        import psycopg  # noqa: PLC0415 - only a PostgreSQL store gets here

        pending, self._pending = self._pending, []
        dialect = self._connection.dialect
        driver = self._connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        sql, params = "", None
        try:
            with driver.pipeline(), driver.cursor() as cursor:
                for statement, values in pending:
                    many = not isinstance(values, Mapping)
                    rows = list(values) if not isinstance(values, Mapping) else [values]
                    names = tuple(rows[0])
                    compiled = _COMPILED.get((id(statement), names))
                    if compiled is None:
                        # Only the columns given, as SQLAlchemy itself compiles an
                        # INSERT or UPDATE without values() (defaults stay the server's).
                        compiled = statement.compile(dialect=dialect, column_keys=list(names))
                        _COMPILED[(id(statement), names)] = compiled
                    sql = compiled.string
                    params = [compiled.construct_params(row) for row in rows]
                    if many:
                        cursor.executemany(sql, params)
                    else:
                        cursor.execute(sql, params[0])
                if commit:
                    # Sent with the writes; the pipeline's sync waits for all of them.
                    sql, params = "COMMIT", None
                    cursor.execute(sql)
        except psycopg.Error as e:
            raise exc.DBAPIError.instance(sql, params, e, psycopg.Error, dialect=dialect) from e


class Rows:
    """The queries of one aggregate, run on the transaction's connection."""

    def __init__(self, connection: sa.Connection, later: LaterWrites | None = None) -> None:
        self.connection = connection
        self.later = later if later is not None else LaterWrites(connection, "sqlite")

    def _one(self, statement: sa.Executable) -> Row | None:
        return self.connection.execute(statement).first()

    def _all(self, statement: sa.Executable) -> Sequence[Row]:
        return self.connection.execute(statement).all()
