"""``rebuild-check REF PATH`` against a real ``mlprov serve``: PATH is compared here with
the manifest REF's stored signature signs, verified against the trust given (required);
``--attest`` signs here and stores through ``POST .../attestations``; a wrong trust or a
lying server never yields "identical", and every refusal changes nothing. ``diff A B``
over HTTP is the local diff of the same registry with the same trust, verified here; a
lying server makes it fail or shows the side as not verified, never verified."""

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


# -- diff A B over HTTP -------------------------------------------------------------------

#: What a diff over HTTP calls the caller's trust option in its messages (the local
#: registry's policy calls the same key ``trainer``).
_GIVEN = "'the trust given'"


def _trust_only_trainer_as_model_signer(env: GateEnv) -> None:
    """The local registry's trust made the one a ``--key trainer.pub`` stands for over
    HTTP: trainer, as model signer, and no one else."""
    (env.folder / "trust.yaml").write_text(
        "version: 1\ntrust:\n  signers:\n    - name: trainer\n      roles: [model-signer]\n"
        "      keys:\n        - file: keys/trainer.pub\n"
    )
    env.apply("- signatures: {count: 1, signers: [trainer]}")


def _versions(env: GateEnv, tmp_path: Path) -> None:
    """credit/1 and credit/2 (params, metrics, datasets, code and files differ); credit/3
    fine-tuned from credit/2 (a registered lineage edge)."""
    from mlprov.registry import DatasetInput, LineageInput, VersionInput
    from support.registry_env import make_model

    specs: list[tuple[dict[str, bytes | str], VersionInput]] = [
        (
            {"config.json": '{"layers": 2}\n', "w.bin": b"\x00" * 50, "tok.json": "{}"},
            VersionInput(
                params={"lr": 0.1, "optim": {"name": "adam"}},
                metrics={"auc": 0.9, "auc[segment=retail]": 0.85},
                datasets=[DatasetInput("train", "s3://data/v1", "sha256:" + "1" * 64)],
                code_repo="https://github.com/acme/credit",
                code_commit="a" * 40,
            ),
        ),
        (
            {"config.json": '{"layers": 3}\n', "w.bin": b"\x00" * 50, "extra.txt": "new\n"},
            VersionInput(
                params={"lr": 0.05, "optim": {"name": "adam"}, "epochs": 3},
                metrics={"auc": 0.92, "auc[segment=retail]": 0.8},
                datasets=[DatasetInput("train", "s3://data/v2", "sha256:" + "2" * 64)],
                code_repo="https://github.com/acme/credit",
                code_commit="b" * 40,
            ),
        ),
        (
            {"w.bin": "fine-tuned"},
            VersionInput(lineage=[LineageInput("parent", "credit/2")]),
        ),
    ]
    registry = env.reg.registry()
    try:
        for number, (files, info) in enumerate(specs, start=1):
            model = make_model(tmp_path / f"credit-{number}", files)
            registry.sign_and_register(
                model, "credit", env.signer("trainer"), info, write_signature=False
            )
    finally:
        registry.close()


def _local_as_over_http(text: str) -> object:
    """The local diff's JSON with the policy's name for the key put as a diff over HTTP
    names the trust option (quoted in version checks, bare in deployment checks)."""
    renamed = text.replace("'trainer'", _GIVEN)
    return json.loads(renamed.replace("model signer trainer (", "model signer the trust given ("))


@pytest.mark.parametrize(("left", "right"), [("credit/1", "credit/2"), ("credit/2", "credit/3")])
def test_diff_over_http_is_the_local_diff_with_the_same_trust(
    reg: RegistryEnv,
    env: GateEnv,
    server: ServerProcess,
    tmp_path: Path,
    left: str,
    right: str,
) -> None:
    _trust_only_trainer_as_model_signer(env)
    _versions(env, tmp_path)
    local = reg.cli("diff", left, right, "--json", check=True)
    reader = token(reg, "reader", name="ci")
    trust = ("--key", _public_key(env, "trainer", tmp_path))
    before = state_without_audit(reg)
    remote = client_cli(server.base_url, reader, "diff", left, right, *trust, "--json")
    assert remote.returncode == 0, remote.stderr
    shown = json.loads(remote.stdout)
    assert shown == _local_as_over_http(local.stdout)
    # Not vacuous: the evidence verified, so the values are the signed ones.
    assert shown["left"]["verified"] is True
    assert shown["right"]["verified"] is True
    assert all(e["status"] == "verified" for e in shown["left"]["evidence"])
    if right == "credit/2":
        assert shown["params"]["verified"] == {"left": True, "right": True}
        assert {e["key"]: e["change"] for e in shown["params"]["entries"]} == {
            "epochs": "added",
            "lr": "changed",
            "optim.name": "same",
        }
    else:
        [edge] = shown["lineage"]["entries"]
        assert (edge["key"], edge["change"]) == ("parent credit/2", "added")
        assert shown["lineage"]["verified"] == {"left": True, "right": True}
    text = client_cli(server.base_url, reader, "diff", left, right, *trust)
    assert text.returncode == 0, text.stderr
    assert "status: checked with the trust given" in text.stdout
    assert state_without_audit(reg) == before  # it reads only


def test_diff_over_http_with_another_trust_shows_nothing_as_verified(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _trust_only_trainer_as_model_signer(env)
    _versions(env, tmp_path)
    reader = token(reg, "reader", name="ci")
    result = client_cli(
        server.base_url,
        reader,
        "diff",
        "credit/1",
        "credit/2",
        "--key",
        _public_key(env, "mallory", tmp_path),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["left"]["verified"] is False
    assert "signature" in shown["left"]["failed_checks"]
    assert {e["status"] for e in shown["left"]["evidence"]} == {"unverified"}
    assert shown["params"]["verified"] == {"left": False, "right": False}


def test_diff_over_http_refusals_are_one_line_and_change_nothing(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _trust_only_trainer_as_model_signer(env)
    _versions(env, tmp_path)
    reader = token(reg, "reader", name="ci")
    trust = ("--key", _public_key(env, "trainer", tmp_path))
    before = state_without_audit(reg)
    cases = [
        (("credit/1", "credit/2"), 2, "give the signer's trust"),  # no trust option
        (("credit/1", "credit/9", *trust), 4, "not found"),
        (("credit/1", "nothing@production", *trust), 4, ""),
        (("credit/1", "Bad Ref!", *trust), 2, ""),
    ]
    for args, code, words in cases:
        result = client_cli(server.base_url, reader, "diff", *args)
        assert result.returncode == code, (args, result.stderr)
        assert words in one_line_error(result.stderr), (args, result.stderr)
        assert result.stdout == ""
    assert state_without_audit(reg) == before
    # Locally the trust options are refused: the registry's policy set is the trust there.
    local = reg.cli("diff", "credit/1", "credit/2", *trust)
    assert local.returncode == 2
    assert "are for a server" in one_line_error(local.stderr)


def test_a_lying_server_cannot_pass_off_changed_evidence_or_records(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    """Documented (docs/diff.md "Against a server"): evidence bytes that are not the ones
    the server lists make the diff fail (exit 1, nothing shown); a record whose values
    were changed is shown with the signed values, and its side does not verify
    (``registry.records``)."""
    _trust_only_trainer_as_model_signer(env)
    _versions(env, tmp_path)
    reader = token(reg, "reader", name="ci")
    trust = ("--key", _public_key(env, "trainer", tmp_path))

    def flip_evidence_byte(path: str, body: bytes) -> bytes:
        if "/versions/2/evidence/" in path and body:
            return body[:-2] + bytes([body[-2] ^ 1]) + body[-1:]
        return body

    with lying_proxy(server.base_url, flip_evidence_byte) as proxy:
        result = client_cli(proxy.base_url, reader, "diff", "credit/1", "credit/2", *trust)
    assert result.returncode == 1, result.stderr
    assert "whose bytes have another digest" in one_line_error(result.stderr)
    assert result.stdout == ""

    def other_params(path: str, body: bytes) -> bytes:
        if path == "/api/v1/models/credit/versions/2":
            return body.replace(b'"lr":0.05', b'"lr":0.5').replace(b'"lr": 0.05', b'"lr": 0.5')
        return body

    with lying_proxy(server.base_url, other_params) as proxy:
        lied = client_cli(proxy.base_url, reader, "diff", "credit/1", "credit/2", *trust, "--json")
    assert lied.returncode == 0, lied.stderr
    shown = json.loads(lied.stdout)
    lr = next(e for e in shown["params"]["entries"] if e["key"] == "lr")
    assert lr["right"] == 0.05  # the signed provenance's value, not the record's 0.5
    assert shown["params"]["verified"] == {"left": True, "right": True}
    assert shown["right"]["verified"] is False
    assert "registry.records" in shown["right"]["failed_checks"]
    assert shown["left"]["verified"] is True


def test_diff_of_deployments_over_http_is_the_local_diff(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _trust_only_trainer_as_model_signer(env)
    for name, auc in (("enc", 0.95), ("ranker", 0.91), ("ranker", 0.94), ("chat", 0.93)):
        env.sign_version(name, tmp_path / f"{name}-{auc}", metrics={"auc": auc})
    registry = reg.registry()
    try:
        registry.create_deployment("stack")
        registry.release_deployment(
            "stack",
            {"encoder": "enc/1", "ranker": "ranker/1", "llm": "chat/1"},
            env.signer("trainer"),
            metadata={"ticket": "OPS-1"},
        )
        registry.release_deployment(
            "stack",
            {"encoder": "enc/1", "ranker": "ranker/2"},
            env.signer("trainer"),
            metadata={"ticket": "OPS-2"},
        )
        registry.set_alias("stack", "production", 1, reason="launch")
    finally:
        registry.close()
    local = reg.cli("diff", "stack@production", "stack/2", "--json", check=True)
    reader = token(reg, "reader", name="ci")
    trust = ("--key", _public_key(env, "trainer", tmp_path))
    before = state_without_audit(reg)
    remote = client_cli(
        server.base_url, reader, "diff", "stack@production", "stack/2", *trust, "--json"
    )
    assert remote.returncode == 0, remote.stderr
    shown = json.loads(remote.stdout)
    assert shown == _local_as_over_http(local.stdout)
    assert shown["left"]["statement"]["verified"] is True
    roles = {r["role"]: r["change"] for r in shown["roles"]}
    assert roles == {"encoder": "same", "llm": "removed", "ranker": "changed"}
    ranker = next(r for r in shown["roles"] if r["role"] == "ranker")
    assert ranker["diff"]["metrics"]["verified"] == {"left": True, "right": True}
    text = client_cli(server.base_url, reader, "diff", "stack/1", "stack/2", *trust)
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("statement verifies with the trust given") == 2
    # A deployment and a model version are not compared; an unknown deployment is 4.
    mixed = client_cli(server.base_url, reader, "diff", "stack/1", "enc/1", *trust)
    assert mixed.returncode == 2
    assert "is a deployment and" in one_line_error(mixed.stderr)
    unknown = client_cli(server.base_url, reader, "diff", "stack/1", "stack/9", *trust)
    assert unknown.returncode == 4, unknown.stderr
    one_line_error(unknown.stderr)
    assert state_without_audit(reg) == before
