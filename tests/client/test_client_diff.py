"""``rebuild-check REF PATH`` against a real ``mlprov serve``: PATH is compared here with
the manifest REF's stored signature signs, verified against the trust given (required);
``--attest`` signs here and stores through ``POST .../attestations``; a wrong trust or a
lying server never yields "identical", and every refusal changes nothing. ``diff`` still
refuses in client mode (one line, exit 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.registry import REBUILD_PREDICATE_TYPE
from mlprov.registry.evidence import attestation_statement
from mlprov.signing import load_private_key, parse_bundle, public_key_pem
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


def _version(reg: RegistryEnv, ref: str) -> object:
    registry = reg.registry()
    try:
        return registry.get_version(ref)
    finally:
        registry.close()


def test_rebuild_check_over_http_compares_with_the_signed_manifest(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    env.sign_version("m", tmp_path / "a")
    reader = token(reg, "reader", name="ci")
    trust = ("--trust-key", _public_key(env, "trainer", tmp_path))
    before = state_without_audit(reg)
    same = client_cli(
        server.base_url, reader, "rebuild-check", "m/1", str(tmp_path / "a"), *trust, "--json"
    )
    assert same.returncode == 0, same.stderr
    shown = json.loads(same.stdout)
    assert shown["result"] == "identical"
    assert shown["registeredDigest"] == _version(reg, "m/1").digest  # type: ignore[attr-defined]
    assert shown["attestation"] is None
    (tmp_path / "a" / "w.bin").write_text("rebuilt differently")
    differs = client_cli(
        server.base_url, reader, "rebuild-check", "m/1", str(tmp_path / "a"), *trust
    )
    assert differs.returncode == 1, differs.stderr
    assert "w.bin" in differs.stdout
    assert "0 added, 0 removed, 1 changed, 0 unchanged" in one_line_error(differs.stderr)
    assert state_without_audit(reg) == before  # nothing written without --attest


def test_rebuild_check_over_http_attests_through_the_attestation_endpoint(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    env.sign_version("m", tmp_path / "a")
    evaluator = token(reg, "evaluator", name="eval")
    made = client_cli(
        server.base_url,
        evaluator,
        "rebuild-check",
        "m/1",
        str(tmp_path / "a"),
        "--trust-key",
        _public_key(env, "trainer", tmp_path),
        "--attest",
        "--key",
        str(env.key_file("evaluator")),
        "--json",
    )
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout)
    record = _version(reg, "m/1")
    [stored] = [e for e in record.evidence if e.kind == "attestation"]  # type: ignore[attr-defined]
    assert stored.digest == shown["attestation"]["digest"]
    assert stored.predicate_type == REBUILD_PREDICATE_TYPE
    registry = reg.registry()
    try:
        bundle = registry.evidence_content("m/1", stored.digest)
    finally:
        registry.close()
    predicate = {k: v for k, v in shown.items() if k != "attestation"}
    assert predicate["result"] == "identical"
    assert parse_bundle(bundle).envelope.payload == attestation_statement(
        record,  # type: ignore[arg-type]
        REBUILD_PREDICATE_TYPE,
        predicate,
    )


def test_rebuild_check_over_http_needs_a_trust_that_verifies(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    env.sign_version("m", tmp_path / "a")
    evaluator = token(reg, "evaluator", name="eval")
    path = str(tmp_path / "a")
    attest = ("--attest", "--key", str(env.key_file("evaluator")))
    before = state_without_audit(reg)
    missing = client_cli(server.base_url, evaluator, "rebuild-check", "m/1", path, *attest)
    assert missing.returncode == 2, missing.stderr
    assert "give the signer's trust" in one_line_error(missing.stderr)
    wrong = client_cli(
        server.base_url,
        evaluator,
        "rebuild-check",
        "m/1",
        path,
        "--trust-key",
        _public_key(env, "mallory", tmp_path),
        *attest,
    )
    assert wrong.returncode == 1, wrong.stderr
    assert "does not verify against the given trust" in one_line_error(wrong.stderr)
    assert wrong.stdout == ""
    unknown = client_cli(
        server.base_url,
        evaluator,
        "rebuild-check",
        "m/9",
        path,
        "--trust-key",
        _public_key(env, "trainer", tmp_path),
    )
    assert unknown.returncode == 4, unknown.stderr
    one_line_error(unknown.stderr)
    assert state_without_audit(reg) == before


def test_a_lying_server_cannot_make_a_rebuild_identical(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    """The server claims m/1 has another digest (as it would to pass off other files):
    the signed manifest says otherwise, so the check fails before comparing anything."""
    env.sign_version("m", tmp_path / "a")
    real = str(_version(reg, "m/1").digest)  # type: ignore[attr-defined]
    fake = "sha256:" + "0" * 64

    def other_digest(path: str, body: bytes) -> bytes:
        if path.startswith("/api/v1/models/m/versions/1") and path.count("/") == 6:
            return body.replace(real.encode(), fake.encode())
        return body

    reader = token(reg, "reader", name="ci")
    before = state_without_audit(reg)
    with lying_proxy(server.base_url, other_digest) as proxy:
        result = client_cli(
            proxy.base_url,
            reader,
            "rebuild-check",
            "m/1",
            str(tmp_path / "a"),
            "--trust-key",
            _public_key(env, "trainer", tmp_path),
        )
    assert result.returncode == 1, result.stderr
    line = one_line_error(result.stderr)
    assert f"the server records the digest {fake}" in line, line
    assert result.stdout == ""
    assert state_without_audit(reg) == before


def test_diff_still_refuses_against_a_server(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    reader = token(reg, "reader", name="ci")
    result = client_cli(server.base_url, reader, "diff", "m/1", "m/2")
    assert result.returncode == 2
    assert "not available against a server yet" in one_line_error(result.stderr)
