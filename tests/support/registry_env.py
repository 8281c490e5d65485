"""A registry folder and metadata URI usable from the API and from CLI processes, a model
folder maker, and the one-line error check every CLI failure test uses."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"
PG_ADMIN_URI = os.environ.get("MLPROV_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")


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


def execute(reg: RegistryEnv, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement straight on the database with its own driver (``?`` placeholders)."""
    if reg.metadata_uri.startswith("sqlite:///"):
        connection = sqlite3.connect(reg.metadata_uri[len("sqlite:///") :])
        try:
            rows = connection.execute(sql, params).fetchall()
            connection.commit()
        finally:
            connection.close()
        return rows
    with psycopg.connect(reg.metadata_uri, autocommit=True) as connection:
        cursor = connection.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []
