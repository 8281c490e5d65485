"""The daily read and write commands in client mode print what they print locally: each
run once against a real server (SQLite and PostgreSQL) and compared with the same
command run on the server's own database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.client_mode import client_cli
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model, one_line_error
from support.server_process import ServerProcess, running_server, token


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _json(result: object) -> object:
    stdout = getattr(result, "stdout", "")
    code = getattr(result, "returncode", None)
    assert code == 0, getattr(result, "stderr", "")
    return json.loads(stdout)


def test_read_commands_match_the_local_registry(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    url = server.base_url
    admin = token(reg, "admin", name="ops")
    model = make_model(tmp_path / "m")
    registered = client_cli(url, admin, "register", str(model), "--name", "m", "--json")
    assert _json(registered)["version"] == 1  # type: ignore[index]
    assert client_cli(url, admin, "models", "tag", "m", "team=risk").returncode == 0
    assert client_cli(url, admin, "versions", "describe", "m/1", "first cut").returncode == 0
    assert client_cli(url, admin, "stage", "set", "m", "1", "Staging").returncode == 0
    assert client_cli(url, admin, "alias", "set", "m", "champion", "1").returncode == 0
    waived = client_cli(
        url,
        admin,
        "waive",
        "m/1",
        "--for",
        "production",
        "--reason",
        "hotfix",
        "--expires",
        "1h",
        "--key",
        str(env.key_file("alice")),
    )
    assert waived.returncode == 0, waived.stderr
    # Signed here, stored by the server (POST /api/v1/revocations).
    revoked = client_cli(
        url,
        admin,
        "revoke",
        "--identity",
        "mallory@example.com",
        "--reason",
        "left the team",
        "--signing-key",
        str(env.key_file("alice")),
    )
    assert revoked.returncode == 0, revoked.stderr

    # The same question to the server and to its database gives the same JSON.
    for args in (
        ("models", "list", "--json"),
        ("models", "show", "m", "--json"),
        ("versions", "list", "m", "--json"),
        ("versions", "show", "m/1", "--files", "--json"),
        ("resolve", "m@champion", "--json"),
        ("alias", "show", "m", "champion", "--json"),
        ("alias", "history", "m", "--json"),
        ("stage", "history", "m", "--json"),
        ("waivers", "m/1", "--json"),
        ("approvals", "m/1", "--json"),
        ("audit", "log", "--json"),
        ("revocations", "--json"),
    ):
        remote = _json(client_cli(url, admin, *args))
        local = _json(reg.cli(*args))
        assert remote == local, args

    # No policy set is applied, so the alias does not verify: exit 1 with the same line.
    remote_status = client_cli(url, admin, "status", "--json")
    local_status = reg.cli("status", "--json")
    assert remote_status.returncode == local_status.returncode == 1
    assert one_line_error(remote_status.stderr) == one_line_error(local_status.stderr)
    assert client_cli(url, admin, "audit", "verify").returncode == 0

    missing = client_cli(url, admin, "versions", "show", "m/9")
    assert missing.returncode == 4, missing.stderr
    one_line_error(missing.stderr)
    bad = client_cli(url, admin, "models", "create", "Bad Name")
    assert bad.returncode == 2, bad.stderr
    one_line_error(bad.stderr)
