"""Client mode: the CLI as subprocesses with MLPROV_REGISTRY=http://... against real
``mlprov serve`` processes on loopback, on SQLite and PostgreSQL. Signing, approving and
verifying happen in the client; the server's gate decides every move."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.client import HttpRegistry
from mlprov.errors import AuthenticationError, StorageError
from mlprov.signing import KeyTrust, load_private_key, public_key_pem
from support.client_mode import client_cli, losing_proxy
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model, one_line_error
from support.server_process import (
    ServerProcess,
    free_port,
    running_server,
    state_without_audit,
    token,
)

POLICY = """
- signatures: {count: 1, signers: [trainer]}
- approvals: {count: 1}
"""


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _public_key(env: GateEnv, name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.pub"
    path.write_bytes(public_key_pem(load_private_key(env.keys[name]).public_key()))
    return path


def test_sign_promote_pull_through_the_cli(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    url = server.base_url
    admin = token(reg, "admin", name="ops")
    publisher = token(reg, "publisher", name="ci", models=("credit-*",))
    approver = token(reg, "approver", name="alice")
    promoter = token(reg, "promoter", name="release")
    reader = token(reg, "reader", name="serving")

    applied = client_cli(url, admin, "policy", "apply", str(env.write_policy(POLICY)))
    assert applied.returncode == 0, applied.stderr

    model = make_model(tmp_path / "credit")
    signed = client_cli(
        url,
        publisher,
        "sign",
        str(model),
        "--name",
        "credit-risk",
        "--key",
        str(env.key_file("trainer")),
        "--json",
    )
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["ref"] == "credit-risk/1"
    assert (model / "model.sig").is_file()

    listed = client_cli(url, reader, "models", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [m["name"] for m in json.loads(listed.stdout)] == ["credit-risk"]
    shown = client_cli(url, reader, "versions", "show", "credit-risk/1", "--files", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert sorted(f["path"] for f in document["files"]) == [
        "config.json",
        "weights/part-0.bin",
        "weights/part-1.bin",
    ]
    assert document["created_by"].startswith("token:ci (")

    # Without an approval the server's gate refuses: exit 1, one line, nothing moved.
    before = state_without_audit(reg)
    denied = client_cli(url, promoter, "alias", "set", "credit-risk", "production", "1")
    assert denied.returncode == 1, denied.stderr
    assert "approval" in one_line_error(denied.stderr)
    after = state_without_audit(reg)
    # The denial itself is audited and queued as a move.denied event; nothing else changes.
    assert after.pop("audit_rows") == before.pop("audit_rows") + 1
    assert after["rows"].pop("outbox_events") == before["rows"].pop("outbox_events") + 1
    assert after == before

    approved = client_cli(
        url,
        approver,
        "approve",
        "credit-risk/1",
        "--for",
        "production",
        "--key",
        str(env.key_file("alice")),
    )
    assert approved.returncode == 0, approved.stderr
    checked = client_cli(url, reader, "policy", "check", "credit-risk/1", "--target", "production")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    moved = client_cli(
        url,
        promoter,
        "alias",
        "set",
        "credit-risk",
        "production",
        "1",
        "--expect-generation",
        "0",
    )
    assert moved.returncode == 0, moved.stderr
    # A move on a stale generation is refused with the conflict exit code.
    stale = client_cli(
        url, promoter, "alias", "set", "credit-risk", "production", "1", "--expect-generation", "0"
    )
    assert stale.returncode == 3, stale.stderr
    one_line_error(stale.stderr)

    shown_alias = client_cli(url, reader, "alias", "show", "credit-risk", "production", "--json")
    assert json.loads(shown_alias.stdout) == {
        "name": "credit-risk",
        "alias": "production",
        "version": 1,
        "generation": 1,
    }

    # Pull: the server's gate allows it, the signature verifies here, files are checked.
    served = tmp_path / "served"
    pulled = client_cli(
        url,
        reader,
        "pull",
        "credit-risk@production",
        "--to",
        str(served),
        "--key",
        str(_public_key(env, "trainer", tmp_path)),
        "--json",
    )
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["ref"] == "credit-risk/1"
    for name in ("config.json", "weights/part-0.bin", "weights/part-1.bin"):
        assert (served / name).read_bytes() == (model / name).read_bytes()
    assert (served / "model.sig").read_bytes() == (model / "model.sig").read_bytes()

    # A key that did not sign it: exit 1, and the target folder is not made.
    wrong = tmp_path / "wrong"
    refused = client_cli(
        url,
        reader,
        "pull",
        "credit-risk@production",
        "--to",
        str(wrong),
        "--key",
        str(_public_key(env, "mallory", tmp_path)),
    )
    assert refused.returncode == 1, refused.stderr
    one_line_error(refused.stderr)
    assert not wrong.exists()

    downloaded = tmp_path / "copy"
    plain = client_cli(url, reader, "download", "credit-risk/1", "--to", str(downloaded), "-q")
    assert plain.returncode == 0, plain.stderr
    assert (downloaded / "config.json").read_bytes() == (model / "config.json").read_bytes()

    audit = client_cli(url, admin, "audit", "verify")
    assert audit.returncode == 0, audit.stderr


def test_bad_token_server_down_and_unsupported_commands(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path
) -> None:
    reader = token(reg, "reader", name="serving")
    before = state_without_audit(reg)

    unknown = client_cli(server.base_url, "mlp_not-a-real-token", "models", "list")
    assert unknown.returncode == 6, unknown.stderr
    assert "mlp_not-a-real-token" not in one_line_error(unknown.stderr)

    missing = client_cli(server.base_url, None, "models", "list")
    assert missing.returncode == 6, missing.stderr
    one_line_error(missing.stderr)

    # A reader may not register: 403 is exit 6 too, and nothing is stored.
    model = make_model(tmp_path / "m")
    forbidden = client_cli(server.base_url, reader, "register", str(model), "--name", "m1")
    assert forbidden.returncode == 6, forbidden.stderr
    one_line_error(forbidden.stderr)

    for args in (("token", "list"), ("webhook", "list"), ("serve",)):
        refused = client_cli(server.base_url, reader, *args)
        assert refused.returncode == 2, (args, refused.stderr)
        line = one_line_error(refused.stderr)
        assert "not available against a server yet" in line, line
    # Two 401s and one 403 are audited; the refused commands never reached the server.
    after = state_without_audit(reg)
    assert after.pop("audit_rows") == before.pop("audit_rows") + 3
    assert after == before

    # Nothing listens there: exit 5, one line naming the URL, never the token.
    down = f"http://127.0.0.1:{free_port()}"
    unreachable = client_cli(down, reader, "models", "list")
    assert unreachable.returncode == 5, unreachable.stderr
    line = one_line_error(unreachable.stderr)
    assert down in line
    assert reader not in unreachable.stderr


def test_a_registration_whose_answer_is_lost_is_retried_into_one_version(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    publisher = token(reg, "publisher", name="ci")
    model = make_model(tmp_path / "model")
    with losing_proxy(server.base_url, "/versions") as proxy:
        client = HttpRegistry(proxy.base_url, publisher, timeout=30, retries=3)
        client.transport.backoff = 0.01
        try:
            signed = client.sign_and_register(
                model, "retried", env.signer("trainer"), write_signature=False
            )
        finally:
            client.close()
    posts = [
        (path, key)
        for method, path, key in proxy.seen
        if method == "POST" and path.endswith("/versions")
    ]
    assert len(posts) == 2
    assert posts[0] == posts[1]
    assert posts[0][1] is not None
    assert signed.version.version == 1
    registry = reg.registry()
    try:
        assert [v.version for v in registry.list_versions("retried")] == [1]
    finally:
        registry.close()


def test_the_python_api_against_a_server(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    import mlprov

    publisher = token(reg, "publisher", name="ci")
    client = mlprov.connect(server.base_url, token=publisher)
    try:
        signed = client.sign_and_register(
            make_model(tmp_path / "m"), "api-model", env.signer("trainer"), write_signature=False
        )
        assert client.get_version("api-model@latest").digest == signed.version.digest
        installed = client.install_verified(
            "api-model/1",
            tmp_path / "out",
            KeyTrust(_public_key(env, "trainer", tmp_path).read_bytes()),
        )
        assert installed.path == tmp_path / "out"
        assert (tmp_path / "out" / "model.sig").is_file()
    finally:
        client.close()

    bad = mlprov.connect(server.base_url, token="mlp_wrong")
    with pytest.raises(AuthenticationError):
        bad.list_models()
    bad.close()
    down = mlprov.connect(f"http://127.0.0.1:{free_port()}", token=publisher)
    down_transport = down.transport  # type: ignore[attr-defined]
    down_transport.backoff = 0.01
    with pytest.raises(StorageError, match="cannot reach the registry server"):
        down.list_models()
    down.close()
    shutil.rmtree(tmp_path / "out")
