"""The metadata store, chosen by URI: ``sqlite:///PATH`` (embedded default) or ``postgresql://...``.

One small interface: :meth:`MetadataStore.read` and :meth:`MetadataStore.write` open a
transaction and hand back a :class:`~mlprov.store._transaction.StoreTransaction`, whose
methods are the only SQL in mlprov. Both backends share that code through SQLAlchemy
Core; the differences are confined to :func:`_make_engine`:

* SQLite runs in WAL mode with a busy timeout and foreign keys on, and every write
  transaction is ``BEGIN IMMEDIATE`` so writers queue instead of failing mid-way; the
  writers of several processes queue on a lock file first
  (:mod:`mlprov.store._writer_queue`), which wakes them sooner than SQLite's busy handler;
* PostgreSQL write transactions start by locking the audit chain head row
  (``SELECT ... FOR UPDATE``), which serialises writers in the same way.

The schema is created and changed only by Alembic migrations (``store/migrations``),
run when a store is opened and found behind :data:`SCHEMA_HEAD`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc

from mlprov.errors import ConfigError, StorageError
from mlprov.store._commit_group import CommitGroup
from mlprov.store._transaction import StoreTransaction, translate_db_error
from mlprov.store._writer_queue import WriterQueue
from mlprov.store.blob_holds import BlobHoldRows

__all__ = [
    "SCHEMA_HEAD",
    "SCHEMA_REVISIONS",
    "MetadataStore",
    "StoreTransaction",
    "open_metadata_store",
]

#: Every migration's revision id, oldest first; the last is the head. A test checks
#: they equal Alembic's revisions.
SCHEMA_REVISIONS = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009",
    "0010",
    "0011",
    "0012",
    "0013",
    "0014",
)
SCHEMA_HEAD = SCHEMA_REVISIONS[-1]

T = TypeVar("T")

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x6D6C70726F76  # "mlprov": advisory lock key for concurrent first opens


def _sqlalchemy_url(uri: str) -> tuple[str, str]:
    scheme = uri.partition(":")[0]
    if scheme == "sqlite":
        return uri, "sqlite"
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        rest = uri.partition("://")[2]
        return f"postgresql+psycopg://{rest}", "postgresql"
    raise ConfigError(
        f"unsupported metadata store URI scheme {scheme!r}: use sqlite:///PATH or postgresql://..."
    )


#: PostgreSQL connections each process keeps open, and how many more it opens at a peak.
POOL_SIZE = 8
POOL_OVERFLOW = 4
#: Seconds a pooled PostgreSQL connection may sit unused before it is tried on checkout.
PING_AFTER_IDLE = 10.0


def _make_engine(url: str, dialect: str) -> sa.Engine:
    if dialect == "sqlite":
        path = url.partition("sqlite:///")[2]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" hook below decide how transactions start.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 60000")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: sa.Connection) -> None:
            write = connection.get_execution_options().get("mlprov_write", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    # Connections are kept (8 a process, up to 12 at a peak): an HTTP worker answers
    # many reads at once, and a connection made per request and closed at its end cost
    # PostgreSQL a backend process each time (ADR 0049, amendment "PostgreSQL reads").
    engine = sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)

    @event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_after_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A connection that was idle a while may have been closed by the server, a
        # restart or a proxy: try it first, and let the pool replace it if it is gone.
        # One in steady use is not pinged (a round trip on every checkout was a tenth of
        # a one-query read's time); if it broke meanwhile, the request fails once (503,
        # which clients retry) and the pool is refilled.
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as e:
            raise exc.DisconnectionError(str(e)) from e

    @event.listens_for(engine, "before_cursor_execute")
    def _send_later_writes(connection: sa.Connection, *_: Any) -> None:
        # A write transaction's queued writes go first: what runs next may read them.
        later = connection.get_execution_options().get("mlprov_later")
        if later is not None and later.pending:
            later.send()

    return engine


class MetadataStore:
    """Registry metadata in SQLite or PostgreSQL."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        url, self.dialect = _sqlalchemy_url(uri)
        self.engine = _make_engine(url, self.dialect)
        self._writing = threading.local()
        self._group = CommitGroup(self.write, StoreTransaction.savepoint)
        self._snapshot: dict[str, Any] = (
            {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            if self.dialect == "postgresql"
            else {}
        )
        # On PostgreSQL a write transaction's BEGIN is sent by mlprov, with the writer
        # lock and the first statement (mlprov.store._rows.LaterWrites): the driver is
        # in autocommit, or psycopg would send a BEGIN of its own, a round trip.
        self._write_options: dict[str, Any] = {"mlprov_write": True}
        if self.dialect == "postgresql":
            self._write_options["isolation_level"] = "AUTOCOMMIT"
        # Writers of several processes queue on a lock file (SQLite's own lock sleeps).
        database = self.engine.url.database if self.dialect == "sqlite" else None
        self._writer_queue = WriterQueue(
            Path(database) if database and database != ":memory:" else None
        )

    @property
    def in_write_transaction(self) -> bool:
        """Whether this thread holds a write transaction now. Signing, hashing and
        network calls must never run while it does (ARCHITECTURE.md, rule 4)."""
        return bool(getattr(self._writing, "active", False))

    @contextlib.contextmanager
    def read(self) -> Iterator[StoreTransaction]:
        """A read-only transaction (a consistent snapshot on both backends: on PostgreSQL
        ``REPEATABLE READ READ ONLY``, whose statements all see the data committed when
        the first began, where READ COMMITTED gives each statement its own; it costs no
        round trip, psycopg names it in the BEGIN, and a read-only transaction never
        fails to serialise)."""
        try:
            with (
                self.engine.connect().execution_options(**self._snapshot) as connection,
                connection.begin(),
            ):
                yield StoreTransaction(connection, self.dialect)
        except exc.SQLAlchemyError as e:
            raise translate_db_error(e) from e

    @contextlib.contextmanager
    def read_statements(self) -> Iterator[StoreTransaction]:
        """Reads outside a transaction, for an answer one statement gives: each statement
        sees what was committed when it started. On PostgreSQL that saves the BEGIN and
        the COMMIT, two of a one-query read's three round trips (ADR 0049, amendment);
        SQLite, in-process, reads in a transaction as :meth:`read` does."""
        if self.dialect == "sqlite":
            with self.read() as tx:
                yield tx
            return
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                yield StoreTransaction(c, self.dialect)
        except exc.SQLAlchemyError as e:
            raise translate_db_error(e) from e

    def lease_blobs(
        self, digests: Sequence[str], holder: str, expires_at: str, now: str
    ) -> dict[str, str]:
        """Lease blobs for a registration (:meth:`BlobHoldRows.lease`: each digest's token,
        leaving out those a live gc claim holds), committed before this returns.

        On PostgreSQL this is one statement in driver autocommit (one round trip, a
        prepared statement after a few uses), with no wait for the writer lock, which a
        lease does not need: it is one atomic statement and writes no audit entry. On
        SQLite, where every write waits for the one writer, it joins the transaction
        that concurrent writers of this process share (:meth:`write_together`)."""
        if self.dialect == "sqlite":
            return self.write_together(
                lambda tx: tx.blob_holds.lease(digests, holder, expires_at, now)
            )
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                return BlobHoldRows(c).lease(digests, holder, expires_at, now)
        except exc.SQLAlchemyError as e:
            raise translate_db_error(e) from e

    def write_together(self, work: Callable[[StoreTransaction], T]) -> T:
        """``work(tx)`` in a write transaction that concurrent callers in this process
        share, each in its own savepoint, committed once for all (group commit:
        :mod:`mlprov.store._commit_group`); its result once committed, or what it raised
        (then only its own writes rolled back). ``work`` must only read and write rows:
        it may run on another caller's thread.

        On SQLite only: there a commit is cheap and the writer lock is what costs (a
        waiting writer polls for it); on PostgreSQL each statement is a round trip under
        the audit head's row lock, and the two savepoint statements per work made a
        group slower than writers one after another (docs/adr/0049), so each work gets
        its own transaction there."""
        if self.dialect != "sqlite":
            with self.write() as tx:
                return work(tx)
        return self._group.run(work)

    @contextlib.contextmanager
    def write(self) -> Iterator[StoreTransaction]:
        """A write transaction, serialised with every other writer; commits on success."""
        try:
            with (
                self._writer_queue.held(),
                self.engine.connect().execution_options(**self._write_options) as connection,
                connection.begin(),
            ):
                tx = StoreTransaction(connection, self.dialect)
                if tx.later.deferring:
                    connection.execution_options(mlprov_later=tx.later)
                tx.audit.lock_head()
                self._writing.active = True
                try:
                    yield tx
                    # On PostgreSQL the queued writes and the COMMIT share one round trip.
                    tx.later.send_with_commit()
                except BaseException:
                    tx.later.discard()
                    raise
                finally:
                    self._writing.active = False
        except exc.SQLAlchemyError as e:
            raise translate_db_error(e) from e

    def migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_HEAD` with Alembic, once across processes."""
        try:
            current = self.current_revision()
            if current == SCHEMA_HEAD:
                return
            self._refuse_unknown(current)
            with self._migration_lock() as connection:
                current = self._revision(connection)
                if current == SCHEMA_HEAD:
                    return
                self._refuse_unknown(current)
                from alembic import command  # noqa: PLC0415
                from alembic.config import Config  # noqa: PLC0415
                from alembic.util import CommandError  # noqa: PLC0415

                config = Config()
                config.set_main_option("script_location", str(_MIGRATIONS))
                config.attributes["connection"] = connection
                try:
                    command.upgrade(config, "head")
                except CommandError as e:
                    raise StorageError(f"cannot migrate the metadata store: {e}") from e
                connection.commit()
        except exc.SQLAlchemyError as e:
            raise translate_db_error(e) from e

    def _refuse_unknown(self, revision: str | None) -> None:
        if revision is not None and revision not in SCHEMA_REVISIONS:
            raise ConfigError(
                f"the metadata store is at schema revision {revision!r}, which this mlprov "
                f"does not know (it knows up to {SCHEMA_HEAD}): upgrade mlprov"
            )

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as connection:
                return self._revision(connection)
        except exc.SQLAlchemyError as e:
            raise translate_db_error(e) from e

    @staticmethod
    def _revision(connection: sa.Connection) -> str | None:
        # One cheap query on every open; schema inspection costs several round trips.
        try:
            value = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except (exc.ProgrammingError, exc.OperationalError):
            value = None  # no table yet: a new, empty database
        connection.rollback()
        return str(value) if value is not None else None

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[sa.Connection]:
        if self.dialect == "postgresql":
            with self.engine.connect() as connection:
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_MIGRATION_LOCK})")
                connection.commit()
                try:
                    yield connection
                finally:
                    connection.rollback()
                    connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_MIGRATION_LOCK})")
                    connection.commit()
            return
        database = self.engine.url.database
        if not database or database == ":memory:":
            with self.engine.connect() as connection:
                yield connection
            return
        lock_path = Path(database + ".migrate.lock")
        try:
            handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot open the registry at {database}: {e.strerror}") from e
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            with self.engine.connect() as connection:
                yield connection
        finally:
            os.close(handle)

    def dispose(self) -> None:
        self.engine.dispose()
        self._writer_queue.close()


def open_metadata_store(uri: str, *, migrate: bool = True) -> MetadataStore:
    """Open (and by default migrate) the metadata store a URI names."""
    store = MetadataStore(uri)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.dispose()  # no pooled connection may outlive a failed open
            raise
    return store
