"""Schema migrations: the code's schema head is Alembic's head, migrations build exactly the
tables the queries use, first opens from several processes migrate once, and a store
newer than the code is refused with one line."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

import mlprov.store as store_package
from mlprov.store import SCHEMA_HEAD, open_metadata_store
from mlprov.store import _schema as schema
from support.registry_env import RegistryEnv, one_line_error

MIGRATIONS = Path(store_package.__file__).with_name("migrations")


def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_schema_head_is_alembics_single_head() -> None:
    heads = _script().get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"
    assert heads[0] == SCHEMA_HEAD


def test_migrations_form_one_line_from_base() -> None:
    revisions = list(_script().walk_revisions())
    assert revisions[-1].down_revision is None
    for newer, older in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision


def test_fresh_store_is_migrated_to_head_with_the_tables_the_queries_use(backend: str) -> None:
    store = open_metadata_store(backend)
    try:
        assert store.current_revision() == SCHEMA_HEAD
        with store.engine.connect() as connection:
            inspector = sa.inspect(connection)
            for table in schema.metadata.sorted_tables:
                assert inspector.has_table(table.name), table.name
                actual = {c["name"]: c for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    assert column.name in actual, f"{table.name}.{column.name} not migrated"
                    assert actual[column.name]["nullable"] == column.nullable or (
                        column.primary_key
                    ), f"{table.name}.{column.name} nullability differs"
            head = connection.execute(sa.select(schema.audit_head)).all()
        assert [tuple(row) for row in head] == [(1, 0, "0" * 64)]
    finally:
        store.dispose()


def test_opening_twice_is_a_no_op(backend: str) -> None:
    first = open_metadata_store(backend)
    first.dispose()
    second = open_metadata_store(backend)
    try:
        assert second.current_revision() == SCHEMA_HEAD
        with second.read() as tx:
            assert tx.audit_head() == (0, "0" * 64)
    finally:
        second.dispose()


def test_concurrent_first_opens_migrate_once(backend: str, tmp_path: Path) -> None:
    env = RegistryEnv(home=tmp_path / "home", metadata_uri=backend)
    env.home.mkdir(exist_ok=True)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "mlprov", "models", "list", "--json"],
            env=env.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        outcomes = [(p.communicate(timeout=120), p.returncode) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for (out, err), code in outcomes:
        assert code == 0, err
        assert out.strip() == "[]"
    registry = env.registry()
    try:
        assert registry.metadata.current_revision() == SCHEMA_HEAD
        assert registry.verify_audit() == 0
    finally:
        registry.close()


def test_a_store_newer_than_the_code_is_refused_with_one_line(reg: RegistryEnv) -> None:
    registry = reg.registry()
    try:
        with registry.metadata.engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        registry.close()
    result = reg.cli("models", "list")
    assert result.returncode in (2, 5), result.stderr
    assert "9999" in one_line_error(result.stderr)
