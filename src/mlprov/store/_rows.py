"""What every aggregate's rows share: one connection, two ways to run a query, and the
writes a transaction may send later (:class:`LaterWrites`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.sql.dml import UpdateBase

Row = sa.Row[Any]

__all__ = ["LaterWrites", "Row", "Rows"]

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
#: Who reads a statement's rows when they arrive.
Consumer = Callable[[Sequence[Sequence[Any]]], None]
#: What may be queued or sent together: a query or a write, built once.
Statement = sa.Select[Any] | UpdateBase

#: Each queued statement compiled once per set of parameter names (like SQLAlchemy's
#: own cache; compiling costs more than running, ADR 0049). The statements are module
#: constants, so their ids stay theirs.
_COMPILED: dict[tuple[int, tuple[str, ...]], Any] = {}


class LaterWrites:
    """The writer lock, and writes whose results nothing reads (an audit entry, the audit
    head, an outbox row, a version and its files), sent together on PostgreSQL.

    On PostgreSQL every statement is a round trip to the database server, and inside a
    write transaction each one is made under the audit head's row lock that serialises
    all writers (docs/adr/0049, amendments on PostgreSQL registration). So:

    * the lock (:meth:`lead`) is not sent when the transaction opens but with the
      transaction's first statement, after an explicit ``BEGIN`` in the same message
      (the connection is in driver autocommit, so psycopg sends no ``BEGIN`` round trip
      of its own): it stays the first statement of every write transaction;
    * writes are queued (:meth:`add`) and sent before the transaction's next statement
      of any other kind (the engine's ``before_cursor_execute`` hook calls :meth:`send`,
      so the transaction reads what it wrote), or with the ``COMMIT`` when it ends
      (:meth:`send_with_commit`);
    * a statement whose rows are needed at once (:meth:`now`) goes with whatever is
      queued, in the same round trip;
    * a query whose rows only decide whether the transaction may go on (:meth:`check`:
      a compare-and-set's condition, such as a gc lease still held) goes with the next
      statement sent, never with the ``COMMIT``, so what it decides can still roll back.

    What is sent together is one simple-query message: the statements with their values
    bound client-side by psycopg (``ClientCursor.mogrify``, its own quoting), joined.
    PostgreSQL runs them in order and stops at the first that fails, whose error is
    raised (as SQLAlchemy's error for it); in psycopg's pipeline mode the same writes
    cost about twice the client's CPU. Values must be what psycopg takes as they are
    (str, int, bool, bytes, None: no SQLAlchemy type conversion runs). On SQLite, where
    a statement is a function call, each runs at once.
    """

    __slots__ = ("_checks", "_connection", "_lead", "_pending", "deferring")

    def __init__(self, connection: sa.Connection, dialect: str) -> None:
        self._connection = connection
        self.deferring = dialect == "postgresql"
        self._pending: list[tuple[Statement, Params]] = []
        self._lead: tuple[Statement, Consumer] | None = None
        self._checks: list[tuple[Statement, Mapping[str, Any], Consumer]] = []

    def lead(self, statement: Statement, consume: Consumer) -> None:
        """Open the transaction with ``statement`` (the writer lock) and give its rows to
        ``consume``: at once on SQLite, with the first statement sent on PostgreSQL."""
        if not self.deferring:
            consume(self._connection.execute(statement).all())
            return
        self._lead = (statement, consume)

    @property
    def leading(self) -> bool:
        """Whether the lead is still to be sent (nothing has run in the transaction)."""
        return self._lead is not None

    def add(self, statement: UpdateBase, params: Params) -> None:
        if not self.deferring:
            self._connection.execute(statement, params)
            return
        self._pending.append((statement, params))

    def check(self, statement: Statement, params: Mapping[str, Any], consume: Consumer) -> None:
        """Run the query ``statement`` and give its rows to ``consume``, which raises to
        roll the transaction back: at once on SQLite, with the next statement sent on
        PostgreSQL (before a ``COMMIT``, never with it)."""
        if not self.deferring:
            consume(self._connection.execute(statement, params).all())
            return
        self._checks.append((statement, params, consume))

    @property
    def pending(self) -> bool:
        return bool(self._pending) or bool(self._checks) or self._lead is not None

    def discard(self) -> None:
        """Forget what was not sent (the transaction is rolling back)."""
        self._pending.clear()
        self._checks.clear()

    def send(self) -> None:
        """Run the lead and the queued writes now, in one round trip."""
        if self.pending:
            self._batch(None, commit=False)

    def now(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Run ``statement`` now and return its rows; on PostgreSQL the lead and the
        queued writes go ahead of it, in the same round trip."""
        if not self.deferring:
            return self._connection.execute(statement, params).all()
        return self._batch((statement, params), commit=False)

    def send_with_commit(self) -> None:
        """Run the queued writes and COMMIT in one round trip (SQLAlchemy's own commit
        that follows finds the transaction closed and sends nothing). Without queued
        writes, or off PostgreSQL, nothing happens here and the commit is the caller's
        (a transaction that ran nothing has no BEGIN to end)."""
        if self._checks:
            self._batch(None, commit=False)  # what they decide must come before the COMMIT
        if self._pending:
            self._batch(None, commit=True)

    def _batch(
        self, final: tuple[Statement, Mapping[str, Any]] | None, *, commit: bool
    ) -> Sequence[Sequence[Any]]:
        import psycopg  # noqa: PLC0415 - only a PostgreSQL store gets here

        lead, self._lead = self._lead, None
        pending, self._pending = self._pending, []
        checks, self._checks = self._checks, []
        dialect = self._connection.dialect
        driver = self._connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        binder = psycopg.ClientCursor(driver)
        texts: list[str] = []
        # Where each statement whose rows are read stands among the texts sent, and
        # who reads them (the final statement's are returned).
        readers: list[tuple[int, Consumer]] = []
        try:
            if lead is not None:
                texts.append("BEGIN")
                readers.append((len(texts), lead[1]))
                texts.append(binder.mogrify(*_compiled(lead[0], {}, dialect)))
            for statement, values in pending:
                for row in [values] if isinstance(values, Mapping) else values:
                    texts.append(binder.mogrify(*_compiled(statement, row, dialect)))
            for statement, values, consume in checks:
                readers.append((len(texts), consume))
                texts.append(binder.mogrify(*_compiled(statement, values, dialect)))
            final_at = len(texts)
            if final is not None:
                texts.append(binder.mogrify(*_compiled(final[0], final[1], dialect)))
            if commit:
                texts.append("COMMIT")
            with driver.cursor() as cursor:
                cursor.execute(";\n".join(texts))
                # One result per statement, in order; the cursor stands on the first.
                at = 0
                for index, consume in readers:
                    for _ in range(index - at):
                        cursor.nextset()
                    at = index
                    consume(cursor.fetchall())
                if final is None:
                    return []
                for _ in range(final_at - at):
                    cursor.nextset()
                return cursor.fetchall()
        except psycopg.Error as e:
            # The statement is named by its count, not its text: the text holds values.
            raise exc.DBAPIError.instance(
                f"{len(texts)} statements sent together", None, e, psycopg.Error, dialect=dialect
            ) from e
        finally:
            binder.close()


def _compiled(
    statement: Statement, values: Mapping[str, Any], dialect: sa.Dialect
) -> tuple[str, Mapping[str, Any]]:
    names = tuple(values)
    compiled = _COMPILED.get((id(statement), names))
    if compiled is None:
        # Only the columns given, as SQLAlchemy itself compiles an INSERT or UPDATE
        # without values() (defaults stay the server's).
        column_keys = list(names) if isinstance(statement, UpdateBase) else None
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        _COMPILED[(id(statement), names)] = compiled
    return compiled.string, compiled.construct_params(values)


class Rows:
    """The queries of one aggregate, run on the transaction's connection."""

    def __init__(self, connection: sa.Connection, later: LaterWrites | None = None) -> None:
        self.connection = connection
        self.later = later if later is not None else LaterWrites(connection, "sqlite")

    def _one(self, statement: sa.Executable) -> Row | None:
        return self.connection.execute(statement).first()

    def _all(self, statement: sa.Executable) -> Sequence[Row]:
        return self.connection.execute(statement).all()
