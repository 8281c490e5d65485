"""Client mode starts without the server side: a client-mode ``mlprov pull`` never loads
the metadata store, SQLAlchemy or Alembic (ADR 0049, start-up), which were most of
its start-up time, nor httpx (its requests go over http.client: ADR 0049, amendment
"requests without httpx")."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.signing import load_private_key, public_key_pem
from support.client_mode import client_cli, client_env
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model
from support.server_process import ServerProcess, running_server, token

#: Modules only a local registry (or the server) needs.
SERVER_SIDE = ("sqlalchemy", "alembic", "mlprov.store", "mlprov.registry._facade")


def _loaded(importtime_log: str) -> set[str]:
    """Every module named in a ``-X importtime`` log (``import time: self | cumulative | name``)."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def _server_side(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == m or n.startswith(f"{m}.") for m in SERVER_SIDE))


def test_what_a_client_mode_pull_imports_leaves_the_store_out() -> None:
    # The modules `mlprov pull` against a server imports, and every command's parser
    # (Typer builds them all), in a fresh interpreter.
    code = (
        "import sys, mlprov.client, mlprov.cli, mlprov.cli.pull, mlprov.signing\n"
        "mlprov.cli.app\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(done.stdout.split())
    assert "mlprov.client._registry" in loaded
    assert _server_side(loaded) == []
    # The facade still gives every public name, loading the store only then.
    facade = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, mlprov.registry as r; r.Registry; print(sorted(sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "'sqlalchemy'" in facade.stdout


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _signed_over_http(
    url: str, publisher: str, env: GateEnv, tmp_path: Path, files: dict[str, bytes | str]
) -> Path:
    """Sign and register model ``m`` from ``files`` through the server; the signer's
    public key file."""
    model = make_model(tmp_path / "model", files)
    signed = client_cli(
        url, publisher, "sign", str(model), "--name", "m", "--key", str(env.key_file("trainer"))
    )
    assert signed.returncode == 0, signed.stderr
    public = tmp_path / "trainer.pub"
    public.write_bytes(public_key_pem(load_private_key(env.keys["trainer"]).public_key()))
    return public


def _imports_of_command(url: str, secret: str, args: list[str]) -> set[str]:
    """Run ``mlprov ARGS`` against the server (it must succeed): every module it imported,
    from Python's own log of them."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlprov", *args],
        env=client_env(url, secret),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(_loaded(done.stderr))


def _http_stack(loaded: set[str]) -> list[str]:
    return sorted(n for n in loaded if n.split(".")[0] in ("httpx", "httpcore", "anyio"))


def test_a_client_mode_pull_never_imports_the_store(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    url = server.base_url
    admin = token(reg, "admin", name="ops")
    publisher = token(reg, "publisher", name="ci")
    promoter = token(reg, "promoter", name="release")
    reader = token(reg, "reader", name="serving")
    policy = env.write_policy("- signatures: {count: 1, signers: [trainer]}")
    assert client_cli(url, admin, "policy", "apply", str(policy)).returncode == 0
    public = _signed_over_http(url, publisher, env, tmp_path, {"w.bin": "weights"})
    assert client_cli(url, promoter, "alias", "set", "m", "production", "1").returncode == 0

    # The pull a serving container runs, with Python's own log of every import it made.
    served = tmp_path / "served"
    args = ["pull", "m@production", "--to", str(served), "--key", str(public)]
    loaded = _imports_of_command(url, reader, args)
    assert (served / "w.bin").read_text() == "weights"
    assert "mlprov.client._registry" in loaded
    assert _server_side(loaded) == []
    assert _http_stack(loaded) == []


def test_a_client_mode_verify_of_stored_bytes_never_imports_httpx(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    # verify streams every stored blob as pull does (Transport.download), not through
    # httpx: the docs say a command that only reads never imports it.
    url = server.base_url
    publisher = token(reg, "publisher", name="ci")
    reader = token(reg, "reader", name="serving")
    files: dict[str, bytes | str] = {"w.bin": "weights", "big.bin": b"\x01" * 3_000_000}
    public = _signed_over_http(url, publisher, env, tmp_path, files)
    loaded = _imports_of_command(url, reader, ["verify", "m/1", "--key", str(public)])
    assert _http_stack(loaded) == []
