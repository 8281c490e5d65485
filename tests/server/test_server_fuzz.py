"""Schemathesis over the server's own OpenAPI document, against a real server process:
no generated request (bad names, huge numbers, odd bodies, every route and method) gets
a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.registry_env import RegistryEnv
from support.server_process import running_server, token

pytest.importorskip("schemathesis")

_CLI = "from schemathesis.cli import schemathesis; schemathesis()"


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(reg: RegistryEnv, tmp_path: Path) -> None:
    with running_server(reg, tmp_path / "server.log", env={"MLPROV_SERVER_RATE": "0"}) as server:
        secret = token(reg, "admin")
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _CLI,
                "run",
                f"{server.base_url}/api/v1/openapi.json",
                "--checks",
                "not_a_server_error",
                "--header",
                f"Authorization: Bearer {secret}",
                "--max-examples",
                "15",
                "--seed",
                "20261201",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp_path,
        )
        log = server.log_text()
    assert result.returncode == 0, result.stdout[-4000:] + log[-4000:]
    assert "internal error answering" not in log, log[-4000:]
