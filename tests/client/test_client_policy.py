"""``policy check`` over HTTP in every format a local check has, and ``resolve --signed``
over HTTP printing the statement the server signs with its own key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlprov.serving import verify_resolution
from mlprov.signing import KeyTrust, generate_private_key_pem, load_private_key, public_key_pem
from support.client_mode import client_cli
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, one_line_error
from support.server_process import ServerProcess, running_server, state_without_audit, token

POLICY = """
- signatures: {count: 1, signers: [trainer]}
- approvals: {count: 1}
"""


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def registry_pem() -> bytes:
    return generate_private_key_pem()


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path, registry_pem: bytes) -> Iterator[ServerProcess]:
    key = tmp_path / "registry.pem"
    key.write_bytes(registry_pem)
    with running_server(
        reg, tmp_path / "server.log", env={"MLPROV_SIGNING_KEY": str(key)}
    ) as running:
        yield running


def test_policy_check_over_http_renders_every_local_format(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    env.apply(POLICY)
    env.sign_version("m", tmp_path / "a")
    reader = token(reg, "reader", name="serving")
    before = state_without_audit(reg)
    for fmt in ("text", "json", "sarif", "junit"):
        args = ("policy", "check", "m/1", "--target", "production", "--format", fmt)
        remote = client_cli(server.base_url, reader, *args)
        local = reg.cli(*args)
        # No approval yet: denied, exit 1, with the same report and the same line.
        assert remote.returncode == local.returncode == 1, (fmt, remote.stderr)
        assert remote.stdout == local.stdout, fmt
        assert one_line_error(remote.stderr) == one_line_error(local.stderr)
    approved = reg.cli("approve", "m/1", "--for", "production", "--key", str(env.key_file("alice")))
    assert approved.returncode == 0, approved.stderr
    report = tmp_path / "report.sarif"
    allowed = client_cli(
        server.base_url,
        reader,
        "policy",
        "check",
        "m/1",
        "--target",
        "production",
        "--format",
        "sarif",
        "--output",
        str(report),
    )
    assert allowed.returncode == 0, allowed.stderr
    local = reg.cli("policy", "check", "m/1", "--target", "production", "--format", "sarif")
    assert report.read_text() == local.stdout
    unknown = client_cli(
        server.base_url, reader, "policy", "check", "m/1", "--target", "production", "--format", "x"
    )
    assert unknown.returncode == 2, unknown.stderr
    one_line_error(unknown.stderr)
    after = state_without_audit(reg)
    # Only the local approval (one evidence row and its audit entry and event) changed.
    assert after["rows"]["evidence"] == before["rows"]["evidence"] + 1


def test_resolve_signed_over_http_prints_the_servers_statement(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path, registry_pem: bytes
) -> None:
    env.apply("- signatures: {count: 1, signers: [trainer]}")
    env.sign_version("m", tmp_path / "a")
    registry = reg.registry()
    try:
        registry.set_alias("m", "production", 1)
    finally:
        registry.close()
    reader = token(reg, "reader", name="serving")
    trust = KeyTrust(public_key_pem(load_private_key(registry_pem).public_key()))
    now = datetime.now(timezone.utc)

    printed = client_cli(server.base_url, reader, "resolve", "m@production", "--signed")
    assert printed.returncode == 0, printed.stderr
    resolution = verify_resolution(printed.stdout.strip().encode(), trust, now)
    assert (resolution.name, resolution.alias, resolution.version) == ("m", "production", 1)
    assert resolution.generation == 1

    out = tmp_path / "resolution.json"
    written = client_cli(
        server.base_url,
        reader,
        "resolve",
        "m@production",
        "--signed",
        "--ttl",
        "1m",
        "--out",
        str(out),
    )
    assert written.returncode == 0, written.stderr
    short = verify_resolution(out.read_bytes(), trust, now)
    assert short.version == 1

    before = state_without_audit(reg)
    for args, code in (
        (("resolve", "m@production", "--signed", "--key", str(env.key_file("alice"))), 2),
        (("resolve", "m/1", "--signed"), 2),
        (("resolve", "m@production", "--signed", "--ttl", "30d"), 2),
        (("resolve", "m@staging", "--signed"), 4),
    ):
        refused = client_cli(server.base_url, reader, *args)
        assert refused.returncode == code, (args, refused.stderr)
        one_line_error(refused.stderr)
    assert state_without_audit(reg) == before
