"""PostgreSQL connections of :mod:`mlprov.store`: they are kept in a pool and tried only
after sitting idle, so a connection the server closed while it was idle is replaced
without the caller seeing it, and one closed while in steady use fails one call (exit 5,
a 503 over HTTP, which clients retry) and the next call gets a new connection (the server
side is ended with ``pg_terminate_backend``, as a restart or an idle timeout would end
it). A read transaction is one snapshot: a write committed while it runs is not seen by
its later statements, and it cannot write."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

import mlprov.store as store_module
from mlprov.errors import EXIT_STORAGE, StorageError
from mlprov.registry import Registry
from support.registry_env import RegistryEnv


def _backend_pid(registry: Registry) -> int:
    with registry.metadata.engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _terminate(admin: str, pid: int) -> None:
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # Wait until the backend has gone, so the next checkout finds it closed.
        for _ in range(100):
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            connection.execute("SELECT pg_sleep(0.05)")
    raise AssertionError(f"backend {pid} did not end")


@pytest.fixture
def registry(pg_schema_uri: str, tmp_path: Path) -> Registry:
    home = tmp_path / "home"
    home.mkdir()
    return RegistryEnv(home=home, metadata_uri=pg_schema_uri).registry()


def test_a_connection_closed_while_idle_is_replaced_unseen(
    registry: Registry, postgres_admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        registry.create_model("kept")
        first = _backend_pid(registry)
        _terminate(postgres_admin, first)
        monkeypatch.setattr(store_module, "PING_AFTER_IDLE", 0.0)  # idle long enough
        assert [m.name for m in registry.list_models()] == ["kept"]
        assert _backend_pid(registry) != first
    finally:
        registry.close()


def test_a_connection_closed_in_steady_use_fails_one_call(
    registry: Registry, postgres_admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PING_AFTER_IDLE", 3600.0)  # never idle long enough
    try:
        registry.create_model("kept")
        first = _backend_pid(registry)
        _terminate(postgres_admin, first)
        with pytest.raises(StorageError) as raised:
            registry.list_models()
        assert raised.value.exit_code == EXIT_STORAGE
        assert "\n" not in raised.value.message
        assert [m.name for m in registry.list_models()] == ["kept"]
        assert _backend_pid(registry) != first
    finally:
        registry.close()


def test_a_read_transaction_is_one_snapshot(registry: Registry) -> None:
    try:
        registry.create_model("before")
        with registry.metadata.read() as tx:
            first = tx.models.find("during")
            registry.create_model("during")  # committed by another connection meanwhile
            assert first is None
            assert tx.models.find("during") is None
            assert tx.models.find("before") is not None
        with registry.metadata.read() as tx:
            assert tx.models.find("during") is not None
    finally:
        registry.close()


def test_a_read_transaction_cannot_write(registry: Registry) -> None:
    try:
        with pytest.raises(StorageError), registry.metadata.read() as tx:
            tx.connection.exec_driver_sql("CREATE TABLE nothing (x int)")
        with registry.metadata.read() as tx:
            tables = tx.connection.exec_driver_sql(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'nothing'"
            ).scalar_one()
        assert tables == 0
    finally:
        registry.close()
