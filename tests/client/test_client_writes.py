"""Evidence written over HTTP: ``attest``, ``attach`` and ``sign REF`` against a real
``mlprov serve``, signed here and checked by the server, which enforces the token's role
(publisher signs, evaluator attests); every refused request changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.hashing import hash_files, list_model_files
from mlprov.registry.evidence import attestation_statement
from mlprov.signing import build_statement, load_private_key, parse_bundle, public_key_pem
from support.client_mode import client_cli
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model, one_line_error
from support.server_process import ServerProcess, running_server, state_without_audit, token

EVAL = "https://example.com/eval/v1"


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


def _record(reg: RegistryEnv, ref: str) -> object:
    registry = reg.registry()
    try:
        return registry.get_version(ref)
    finally:
        registry.close()


def test_attest_over_http_stores_what_a_local_attest_stores(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    env.sign_version("m", tmp_path / "a")
    evaluator = token(reg, "evaluator", name="eval")
    reader = token(reg, "reader", name="serving")
    predicate = tmp_path / "eval.json"
    predicate.write_text(json.dumps({"auc": 0.93, "dataset": "holdout"}))
    args = ("attest", "m/1", "--predicate-type", EVAL, "--predicate", str(predicate))

    before = state_without_audit(reg)
    forbidden = client_cli(server.base_url, reader, *args, "--key", str(env.key_file("evaluator")))
    assert forbidden.returncode == 6, forbidden.stderr
    one_line_error(forbidden.stderr)
    not_a_uri = client_cli(
        server.base_url,
        evaluator,
        "attest",
        "m/1",
        "--predicate-type",
        "eval",
        "--predicate",
        str(predicate),
        "--key",
        str(env.key_file("evaluator")),
    )
    assert not_a_uri.returncode == 2, not_a_uri.stderr
    one_line_error(not_a_uri.stderr)
    after = state_without_audit(reg)
    assert after.pop("audit_rows") == before.pop("audit_rows") + 1  # the 403
    assert after == before

    made = client_cli(
        server.base_url, evaluator, *args, "--key", str(env.key_file("evaluator")), "--json"
    )
    assert made.returncode == 0, made.stderr
    stored = json.loads(made.stdout)
    record = _record(reg, "m/1")
    evidence = [e for e in record.evidence if e.kind == "attestation"]  # type: ignore[attr-defined]
    assert [e.digest for e in evidence] == [stored["digest"]]
    assert evidence[0].predicate_type == EVAL
    registry = reg.registry()
    try:
        bundle = registry.evidence_content("m/1", stored["digest"])
    finally:
        registry.close()
    assert parse_bundle(bundle).envelope.payload == attestation_statement(
        record,  # type: ignore[arg-type]
        EVAL,
        {"auc": 0.93, "dataset": "holdout"},
    )
    # Listed and checked over HTTP like the version's other evidence.
    listed = client_cli(
        server.base_url,
        reader,
        "evidence",
        "m/1",
        "--key",
        _public_key(env, "evaluator", tmp_path),
        "--json",
    )
    assert listed.returncode == 1, listed.stdout  # the model signature is not the evaluator's
    local = reg.cli("evidence", "m/1", "--json")
    remote = client_cli(server.base_url, reader, "evidence", "m/1", "--json")
    assert remote.returncode == local.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)

    # A statement that is not the one attest makes (another subject) is refused.
    publisher = token(reg, "publisher", name="ci")
    other = attestation_statement(
        record.model_copy(update={"digest": "sha256:" + "2" * 64}),  # type: ignore[attr-defined]
        EVAL,
        {"auc": 1.0},
    )
    settled = state_without_audit(reg)
    answer = server.client(publisher).post(
        "/api/v1/models/m/versions/1/attestations",
        content=env.signer("evaluator").sign(other).bundle,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "VerificationError"
    assert state_without_audit(reg) == settled


def test_sign_ref_over_http_signs_the_recorded_manifest(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    publisher = token(reg, "publisher", name="ci")
    evaluator = token(reg, "evaluator", name="eval")
    reader = token(reg, "reader", name="serving")
    registered = client_cli(
        server.base_url, publisher, "register", str(make_model(tmp_path / "m")), "--name", "m"
    )
    assert registered.returncode == 0, registered.stderr
    trainer = str(env.key_file("trainer"))

    before = state_without_audit(reg)
    forbidden = client_cli(server.base_url, evaluator, "sign", "m/1", "--key", trainer)
    assert forbidden.returncode == 6, forbidden.stderr
    one_line_error(forbidden.stderr)
    # A signature over other files is refused by the server, whoever sends it.
    other = make_model(tmp_path / "other", {"w.bin": "other bytes"})
    statement = build_statement(hash_files(list_model_files(other), "sha256"), "m")
    answer = server.client(publisher).put(
        "/api/v1/models/m/versions/1/signature",
        content=env.signer("trainer").sign(statement).bundle,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 400, answer.text
    empty = server.client(publisher).put("/api/v1/models/m/versions/1/signature", content=b"")
    assert empty.status_code == 422, empty.text
    after = state_without_audit(reg)
    assert after.pop("audit_rows") == before.pop("audit_rows") + 1  # the 403
    assert after == before

    written = tmp_path / "m.sig"
    signed = client_cli(
        server.base_url, publisher, "sign", "m/1", "--key", trainer, "--signature", str(written)
    )
    assert signed.returncode == 0, signed.stderr
    assert "signed m/1" in signed.stdout
    registry = reg.registry()
    try:
        assert written.read_bytes() == registry.signature_of("m/1")
    finally:
        registry.close()
    verified = client_cli(
        server.base_url, reader, "verify", "m/1", "--key", _public_key(env, "trainer", tmp_path)
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    settled = state_without_audit(reg)
    again = client_cli(server.base_url, publisher, "sign", "m/1", "--key", trainer)
    assert again.returncode == 3, again.stderr
    assert "already signed" in one_line_error(again.stderr)
    assert state_without_audit(reg) == settled


def test_attach_over_http_is_verified_here_and_by_the_server(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    env.apply("- signatures: {count: 1, signers: [trainer]}")
    env.sign_version("m", tmp_path / "a")
    evaluator = token(reg, "evaluator", name="eval")
    record = _record(reg, "m/1")
    statement = attestation_statement(record, EVAL, {"auc": 0.9})  # type: ignore[arg-type]
    trusted = tmp_path / "trusted.json"
    trusted.write_bytes(env.signer("evaluator").sign(statement).bundle)
    untrusted = tmp_path / "untrusted.json"
    untrusted.write_bytes(env.signer("mallory").sign(statement).bundle)

    before = state_without_audit(reg)
    # The given key is not the bundle's: refused here, before anything is sent.
    wrong = client_cli(
        server.base_url,
        evaluator,
        "attach",
        "m/1",
        str(trusted),
        "--key",
        _public_key(env, "mallory", tmp_path),
    )
    assert wrong.returncode == 1, wrong.stderr
    one_line_error(wrong.stderr)
    # The caller trusts mallory, but the server's registry does not: refused there.
    refused = client_cli(
        server.base_url,
        evaluator,
        "attach",
        "m/1",
        str(untrusted),
        "--key",
        _public_key(env, "mallory", tmp_path),
    )
    assert refused.returncode == 1, refused.stderr
    assert "trusts" in one_line_error(refused.stderr)
    assert state_without_audit(reg) == before

    attached = client_cli(
        server.base_url,
        evaluator,
        "attach",
        "m/1",
        str(trusted),
        "--key",
        _public_key(env, "evaluator", tmp_path),
        "--json",
    )
    assert attached.returncode == 0, attached.stderr
    kinds = [e.kind for e in _record(reg, "m/1").evidence]  # type: ignore[attr-defined]
    assert kinds == ["signature", "provenance", "bom", "model-card", "attestation"]
