"""Shared fixtures: a registry on each backend, a CLI runner, and state snapshots.

Every registry test runs on SQLite and on PostgreSQL (127.0.0.1:5432, database
``test``), each PostgreSQL test in its own schema that is dropped afterwards. When
PostgreSQL is unreachable the PostgreSQL cases skip locally, but fail in CI (``CI``
set), where ``.ci/run`` starts the server first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"
PG_ADMIN_URI = os.environ.get("MLPROV_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")


def _postgres_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URI, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception as e:  # any failure means "not reachable" here
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None


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


@dataclass
class RegistryEnv:
    """A registry folder and metadata URI, usable from the API and from CLI processes."""

    home: Path
    metadata_uri: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLPROV_")}
        env.update(
            MLPROV_HOME=str(self.home),
            MLPROV_REGISTRY=self.metadata_uri,
            MLPROV_ACTOR="tester@ci",
            PYTHONWARNINGS="error",
        )
        return env

    def registry(self) -> Any:
        from mlprov.config import RegistryConfig
        from mlprov.registry import open_registry

        return open_registry(
            RegistryConfig(home=self.home, metadata_uri=self.metadata_uri), actor="tester@ci"
        )

    def cli(
        self, *args: str, check: bool = False, timeout: float = 120, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "mlprov", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"mlprov {' '.join(args)} exited {result.returncode}: {result.stderr}"
            )
        return result

    def snapshot(self) -> dict[str, Any]:
        """Everything a failed command must leave unchanged: rows, blobs, aliases."""
        registry = self.registry()
        try:
            with registry.metadata.read() as tx:
                counts = tx.counts()
                head = tx.audit_head()
            blobs = registry.artifacts.digests()
            aliases = {m.name: dict(m.aliases) for m in registry.list_models()}
        finally:
            registry.close()
        return {"rows": counts, "audit_head": head, "blobs": blobs, "aliases": aliases}


@pytest.fixture
def reg(tmp_path: Path, backend: str) -> RegistryEnv:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = RegistryEnv(home=home, metadata_uri=backend)
    env.registry().close()  # create the schema once, up front
    return env


def make_model(folder: Path, files: dict[str, bytes | str] | None = None) -> Path:
    """A small model folder with the given files (default: three small files)."""
    files = files or {
        "config.json": '{"layers": 2}\n',
        "weights/part-0.bin": b"\x00\x01" * 512,
        "weights/part-1.bin": b"\x02\x03" * 512,
    }
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return folder


def one_line_error(stderr: str) -> str:
    """Assert the CLI printed exactly one error line and no traceback; return it."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mlprov: error: "), stderr
    return lines[0]
