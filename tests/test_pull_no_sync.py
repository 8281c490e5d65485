"""``mlprov pull --no-sync`` (``sync=False``): the same verified install, without the
fsyncs, locally and from a server, for a model and for a deployment. Every other pull
test covers the durable default; these count the fsyncs made on the installed paths."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mlprov.client import HttpRegistry
from mlprov.signing import KeyTrust, load_private_key, public_key_pem
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv
from support.server_process import running_server, token

POLICY = "- signatures: {count: 1, signers: [trainer]}\n"


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    gate = gate_env(reg, tmp_path)
    gate.apply(POLICY)
    number = gate.sign_version("m", tmp_path / "model")
    registry = reg.registry()
    try:
        registry.set_alias("m", "production", number)
    finally:
        registry.close()
    return gate


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], list[str]]:
    """``fsyncs(folder)``: the paths under ``folder`` fsynced so far in this process."""
    seen: list[str] = []
    real = os.fsync

    def counting(fd: int) -> None:
        try:
            seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            seen.append("?")
        real(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to name what is fsynced (Linux)")
    monkeypatch.setattr(os, "fsync", counting)
    return lambda folder: [p for p in seen if p.startswith(str(folder))]


def _installed(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".mlprov-installed.json"
    }


def test_a_local_pull_without_sync_installs_the_same_files_with_no_fsync(
    env: GateEnv, tmp_path: Path, fsyncs: Callable[[Path], list[str]]
) -> None:
    registry = env.reg.registry()
    try:
        durable = tmp_path / "durable"
        registry.pull("m@production", durable / "m")
        assert len(fsyncs(durable)) >= 4  # w.bin, model.sig, the record, the folder
        quick = tmp_path / "quick"
        registry.pull("m@production", quick / "m", sync=False)
        assert fsyncs(quick) == []
    finally:
        registry.close()
    assert _installed(quick / "m") == _installed(durable / "m")
    checked = env.reg.cli("check-installed", str(quick / "m"), "--full")
    assert checked.returncode == 0, checked.stderr


def test_the_cli_takes_no_sync_and_still_refuses_what_fails_its_policy(
    env: GateEnv, tmp_path: Path
) -> None:
    pulled = env.reg.cli("pull", "m@production", "--to", str(tmp_path / "out"), "--no-sync")
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "w.bin").read_text() == "m model"
    env.apply(POLICY.replace("count: 1", "count: 2"))
    before = env.reg.snapshot()
    refused = env.reg.cli("pull", "m@production", "--to", str(tmp_path / "no"), "--no-sync")
    assert refused.returncode == 1, refused.stderr
    assert not (tmp_path / "no").exists()
    assert env.reg.snapshot() == before


def test_a_pull_from_a_server_without_sync_makes_no_fsync(
    env: GateEnv, reg: RegistryEnv, tmp_path: Path, fsyncs: Callable[[Path], list[str]]
) -> None:
    trainer = public_key_pem(load_private_key(env.keys["trainer"]).public_key())
    reader = token(reg, "reader", name="serving")
    with running_server(reg, tmp_path / "server.log") as server:
        client = HttpRegistry(server.base_url, reader)
        try:
            durable = tmp_path / "durable"
            client.pull("m@production", durable / "m", KeyTrust(trainer))
            assert len(fsyncs(durable)) >= 4
            quick = tmp_path / "quick"
            pulled = client.pull("m@production", quick / "m", KeyTrust(trainer), sync=False)
            assert fsyncs(quick) == []
        finally:
            client.close()
    assert pulled.version.ref == "m/1"
    assert _installed(quick / "m") == _installed(durable / "m")
    checked = env.reg.cli("check-installed", str(quick / "m"), "--full", "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["mode"] == "full"


def test_a_deployment_pull_without_sync_makes_no_fsync(
    env: GateEnv, tmp_path: Path, fsyncs: Callable[[Path], list[str]]
) -> None:
    registry = env.reg.registry()
    try:
        registry.create_deployment("stack")
        registry.release_deployment("stack", {"main": "m/1"}, env.signer("trainer"))
        registry.set_alias("stack", "production", 1)
        quick = tmp_path / "quick"
        registry.pull_deployment("stack@production", quick / "stack", sync=False)
    finally:
        registry.close()
    # The bundle statement is written atomically (one small fsync); the member is not.
    assert [p for p in fsyncs(quick) if "/main" in p] == []
    assert (quick / "stack" / "main" / "w.bin").read_text() == "m model"
