"""A real ``mlprov serve`` reuses token rows for ``MLPROV_SERVER_TOKEN_CACHE`` seconds
(docs/server.md, ADR 0049): a token revoked by another process is refused within that
time, at once with the cache off; a wrong secret for a cached token is refused at once;
a setting out of bounds stops the server with one line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.registry_env import RegistryEnv
from support.server_process import running_server, token


def _status(base: str, secret: str) -> int:
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.get(f"{base}/api/v1/models", headers=headers, timeout=30).status_code


def _revoke(reg: RegistryEnv, secret: str) -> None:
    registry = reg.registry()  # another process's registry, as `mlprov token revoke` is
    try:
        registry.revoke_token(secret[4:20], reason="gone")  # mlp_<tok_ + 12 hex>_...
    finally:
        registry.close()


@pytest.mark.parametrize("seconds", ["1", "0"])
def test_a_revocation_elsewhere_is_refused_within_the_cache_time(
    reg: RegistryEnv, tmp_path: Path, seconds: str
) -> None:
    secret = token(reg, "reader", name="serving")
    env = {"MLPROV_SERVER_TOKEN_CACHE": seconds}
    with running_server(reg, tmp_path / "server.log", env=env) as server:
        assert _status(server.base_url, secret) == 200  # the row is read (and cached)
        wrong = secret[:-1] + ("B" if secret.endswith("A") else "A")
        assert _status(server.base_url, wrong) == 401  # the secret is checked every time
        _revoke(reg, secret)
        revoked_at = time.monotonic()
        if seconds == "0":
            assert _status(server.base_url, secret) == 401
            return
        while (answer := _status(server.base_url, secret)) == 200:
            assert time.monotonic() - revoked_at < float(seconds) + 0.5, "still accepted"
            time.sleep(0.05)
        assert answer == 401


@pytest.mark.parametrize("value", ["61", "-1", "soon"])
def test_a_bad_cache_setting_is_one_line(reg: RegistryEnv, value: str) -> None:
    code = (
        "from mlprov.server import app_from_environment\n"
        "from mlprov.errors import MlprovError\n"
        "try:\n    app_from_environment()\n"
        "except MlprovError as e:\n    print(e.message); raise SystemExit(e.exit_code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=reg.env | {"MLPROV_SERVER_TOKEN_CACHE": value},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"MLPROV_SERVER_TOKEN_CACHE={value!r}: give 0 (off) to 60 seconds"
    ]
