"""Read commands over HTTP that check what the server sends: ``verify REF``, ``evidence``,
``provenance``/``bom``/``card`` and ``lineage`` print what they print on the server's own
database, and a server that lies about a blob, a manifest or a document makes them fail
(exit 1), never pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.registry import LineageInput
from mlprov.signing import load_private_key, public_key_pem
from support.client_mode import client_cli, lying_proxy
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, one_line_error
from support.server_process import ServerProcess, running_server, state_without_audit, token


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _public_key(env: GateEnv, name: str, tmp_path: Path) -> str:
    path = tmp_path / f"{name}.pub"
    path.write_bytes(public_key_pem(load_private_key(env.keys[name]).public_key()))
    return str(path)


def _out(result: object) -> str:
    code = getattr(result, "returncode", None)
    assert code == 0, getattr(result, "stderr", "")
    return str(getattr(result, "stdout", ""))


def test_checked_reads_match_the_local_registry(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    env.sign_version("m", tmp_path / "a")
    env.sign_version("m", tmp_path / "b", lineage=[LineageInput("parent", "m/1")])
    reader = token(reg, "reader", name="serving")
    key = _public_key(env, "trainer", tmp_path)
    for args in (
        ("verify", "m/2", "--key", key, "--json"),
        ("verify", "m/2", "--key", key, "--path", str(tmp_path / "b"), "--json"),
        ("evidence", "m/2", "--json"),
        ("evidence", "m/2", "--key", key, "--json"),
        ("provenance", "m/2", "--key", key, "--json"),
        ("bom", "m/2", "--json"),
        ("card", "m/2", "--key", key, "--json"),
        ("lineage", "m/2", "--json"),
        ("lineage", "m/1", "--descendants", "--json"),
    ):
        remote = json.loads(_out(client_cli(server.base_url, reader, *args)))
        local = json.loads(_out(reg.cli(*args)))
        assert remote == local, args
    # The text views too: the tree, the card's Markdown, the raw bundle's exact bytes.
    for args in (("lineage", "m/2"), ("card", "m/2"), ("provenance", "m/2", "--raw")):
        assert _out(client_cli(server.base_url, reader, *args)) == _out(reg.cli(*args)), args
    verified = _out(client_cli(server.base_url, reader, "verify", "m/2", "--key", key))
    assert verified.startswith("verified m/2: 1 files match the signature"), verified
    # A key that did not sign it: exit 1, one line.
    wrong = client_cli(
        server.base_url, reader, "verify", "m/2", "--key", _public_key(env, "mallory", tmp_path)
    )
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    # Without a trust option the server's policy would be the trust: refused, exit 2.
    untrusted = client_cli(server.base_url, reader, "verify", "m/2")
    assert untrusted.returncode == 2, untrusted.stderr
    assert "needs --key" in one_line_error(untrusted.stderr)
    missing = client_cli(server.base_url, reader, "provenance", "m/9")
    assert missing.returncode == 4, missing.stderr
    one_line_error(missing.stderr)


def _lie_about_blobs(path: str, body: bytes) -> bytes:
    return b"X" + body[1:] if path.startswith("/api/v1/blobs/") and body else body


def _lie_about_files(path: str, body: bytes) -> bytes:
    if not path.endswith("/files"):
        return body
    files = json.loads(body)
    files[0]["digest"] = "sha256:" + "1" * 64
    return json.dumps(files).encode()


def _lie_about_evidence(path: str, body: bytes) -> bytes:
    if "/evidence/" not in path:
        return body
    return body.replace(b'"mediaType"', b'"mediaType" ', 1)


def _lie_about_the_record(path: str, body: bytes) -> bytes:
    # Claims the evidence of version 1 is that of version 2 (a different model digest).
    if not path.endswith("/versions/2"):
        return body
    record = json.loads(body)
    record["digest"] = "sha256:" + "0" * 64
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("lie", "args", "words"),
    [
        (_lie_about_blobs, ("verify", "m/2"), "does not match its signed digest"),
        (_lie_about_files, ("verify", "m/2"), "manifest is not the signed one"),
        (_lie_about_evidence, ("verify", "m/2"), "bytes have another digest"),
        (_lie_about_evidence, ("evidence", "m/2"), "bytes have another digest"),
        (_lie_about_evidence, ("provenance", "m/2"), "bytes have another digest"),
        (_lie_about_the_record, ("verify", "m/2"), "not about this model's digest"),
        (_lie_about_the_record, ("evidence", "m/2"), "not about this version"),
    ],
    ids=[
        "blob",
        "files",
        "evidence-verify",
        "evidence-list",
        "provenance",
        "record",
        "record-list",
    ],
)
def test_a_lying_server_makes_the_checks_fail(
    reg: RegistryEnv,
    env: GateEnv,
    server: ServerProcess,
    tmp_path: Path,
    lie: object,
    args: tuple[str, ...],
    words: str,
) -> None:
    env.sign_version("m", tmp_path / "a")
    env.sign_version("m", tmp_path / "b")
    reader = token(reg, "reader", name="serving")
    key = _public_key(env, "trainer", tmp_path)
    before = state_without_audit(reg)
    with lying_proxy(server.base_url, lie) as proxy:  # type: ignore[arg-type]
        result = client_cli(proxy.base_url, reader, *args, "--key", key)
    assert result.returncode == 1, result.stdout + result.stderr
    assert words in one_line_error(result.stderr)
    assert state_without_audit(reg) == before
