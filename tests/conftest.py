"""Shared fixtures: a registry on each backend, a CLI runner, and state snapshots.

Every registry test runs on SQLite and on PostgreSQL (127.0.0.1:5432, database
``test``), each PostgreSQL test in its own schema that is dropped afterwards. When
PostgreSQL is unreachable the PostgreSQL cases skip locally, but fail in CI (``CI``
set), where ``.ci/run`` starts the server first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.registry_env import PG_ADMIN_URI, RegistryEnv

# The tests start thousands of `python -m mlprov` processes. With PYTHONDONTWRITEBYTECODE
# set (as on our CI machines) each would compile mlprov's editable sources again, about
# 0.1 s of CPU apiece; written once to __pycache__, they are reused.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _postgres_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URI, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as e:  # any failure means "not reachable" here
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than there are cores. Most tests wait on a server
    process, PostgreSQL or an fsync for part of their time, so a third worker keeps two
    cores busy (on a 2-core machine 3 workers took 26 minutes; a serial run on a similar
    one, 75)."""
    return (os.cpu_count() or 1) + 1


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URI}: {problem}")
    return PG_ADMIN_URI


@pytest.fixture
def pg_schema_uri(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL metadata URI whose search_path is a fresh schema, dropped afterwards."""
    import psycopg

    admin = request.getfixturevalue("postgres_admin")
    schema = f"mlprov_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{admin}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata store URI for this test, one per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
    return str(request.getfixturevalue("pg_schema_uri"))


@pytest.fixture
def reg(tmp_path: Path, backend: str) -> RegistryEnv:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = RegistryEnv(home=home, metadata_uri=backend)
    env.registry().close()  # create the schema once, up front
    return env
