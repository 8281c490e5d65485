"""Signed alias resolution over HTTP: ``mlprov serve --signing-key`` signs what an alias
names; ``mlprov pull --registry-key`` against it verifies the statement, keeps the
highest generation seen, and refuses a stale statement replayed to it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.client import HttpRegistry
from mlprov.signing import generate_private_key_pem, load_private_key, public_key_pem
from support.client_mode import client_cli
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model, one_line_error
from support.server_process import ServerProcess, running_server, token

POLICY = "- signatures: {count: 1, signers: [trainer]}"


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def registry_key(tmp_path: Path) -> tuple[Path, Path]:
    """The registry's key pair: (private PEM file for the server, public PEM for clients)."""
    pem = generate_private_key_pem()
    private = tmp_path / "registry.pem"
    private.write_bytes(pem)
    public = tmp_path / "registry.pub"
    public.write_bytes(public_key_pem(load_private_key(pem).public_key()))
    return private, public


@pytest.fixture
def server(
    reg: RegistryEnv, tmp_path: Path, registry_key: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    with running_server(
        reg, tmp_path / "server.log", env={"MLPROV_SIGNING_KEY": str(registry_key[0])}
    ) as running:
        yield running


def _public(env: GateEnv, name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.pub"
    path.write_bytes(public_key_pem(load_private_key(env.keys[name]).public_key()))
    return path


def test_pull_follows_the_signed_resolution_and_refuses_a_stale_one(
    reg: RegistryEnv,
    env: GateEnv,
    server: ServerProcess,
    registry_key: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    url = server.base_url
    admin = token(reg, "admin", name="ops")
    publisher = token(reg, "publisher", name="ci")
    promoter = token(reg, "promoter", name="release")
    reader = token(reg, "reader", name="serving")
    assert client_cli(url, admin, "policy", "apply", str(env.write_policy(POLICY))).returncode == 0
    trainer = str(env.key_file("trainer"))
    for number in (1, 2):
        model = make_model(tmp_path / f"v{number}", {"w.bin": f"weights {number}"})
        signed = client_cli(url, publisher, "sign", str(model), "--name", "m", "--key", trainer)
        assert signed.returncode == 0, signed.stderr
    moved = client_cli(url, promoter, "alias", "set", "m", "production", "1")
    assert moved.returncode == 0, moved.stderr

    # The statement of generation 1, kept to be replayed later.
    client = HttpRegistry(url, reader)
    try:
        first = client.signed_resolution("m", "production")
    finally:
        client.close()
    old = tmp_path / "old-resolution.json"
    old.write_bytes(first)

    state = tmp_path / "seen.json"
    common = ("--key", str(_public(env, "trainer", tmp_path)), "--state", str(state))
    pulled = client_cli(
        url,
        reader,
        "pull",
        "m@production",
        "--to",
        str(tmp_path / "one"),
        "--registry-key",
        str(registry_key[1]),
        *common,
        "--json",
    )
    assert pulled.returncode == 0, pulled.stderr
    document = json.loads(pulled.stdout)
    assert document["ref"] == "m/1"
    assert document["resolution"]["generation"] == 1
    assert (tmp_path / "one" / "w.bin").read_text() == "weights 1"
    checked = client_cli(url, reader, "check-installed", str(tmp_path / "one"))
    assert checked.returncode == 0, checked.stderr

    assert client_cli(url, promoter, "alias", "set", "m", "production", "2").returncode == 0
    newer = client_cli(
        url,
        reader,
        "pull",
        "m@production",
        "--to",
        str(tmp_path / "two"),
        "--registry-key",
        str(registry_key[1]),
        *common,
    )
    assert newer.returncode == 0, newer.stderr
    assert (tmp_path / "two" / "w.bin").read_text() == "weights 2"
    seen = state.read_bytes()

    # The generation-1 statement replayed (a rolled-back mirror, say): refused, exit 1,
    # nothing installed, and the state still remembers generation 2.
    replayed = client_cli(
        url,
        reader,
        "pull",
        "m@production",
        "--to",
        str(tmp_path / "three"),
        "--registry-key",
        str(registry_key[1]),
        "--resolution",
        str(old),
        *common,
    )
    assert replayed.returncode == 1, replayed.stderr
    one_line_error(replayed.stderr)
    assert not (tmp_path / "three").exists()
    assert state.read_bytes() == seen

    # Signed by another key than the registry's: refused before anything is read.
    stranger = tmp_path / "stranger.pub"
    stranger.write_bytes(public_key_pem(load_private_key(generate_private_key_pem()).public_key()))
    forged = client_cli(
        url,
        reader,
        "pull",
        "m@production",
        "--to",
        str(tmp_path / "four"),
        "--registry-key",
        str(stranger),
        *common,
    )
    assert forged.returncode == 1, forged.stderr
    one_line_error(forged.stderr)
    assert not (tmp_path / "four").exists()
