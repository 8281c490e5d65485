"""Deployments over HTTP against a real ``mlprov serve`` on both backends: create,
release (signed here), alias moves through the server's gate, and ``pull`` and
``verify`` checked here against the caller's trust; refused requests change nothing,
and a lying server makes pull and verify fail with nothing installed."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlprov.registry import DatasetInput
from mlprov.signing import load_private_key, public_key_pem
from support.client_mode import client_cli, lying_proxy
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, one_line_error
from support.server_process import ServerProcess, running_server, state_without_audit, token

BASIC = """
- signatures: {count: 1, signers: [trainer]}
- provenance: {builders: [trainer], build_types: ['https://mlprov.dev/training/v1']}
- id: auc
  metric: "auc >= 0.9"
"""

DEPLOYMENT_POLICY = """\
version: 1
deployments:
  - name: stack-prod
    deployments: ['search-*']
    targets:
      aliases: [production]
    require:
      - members_pass: true
"""

DATA = "sha256:" + "12" * 32
MEMBERS = ("encoder=text-enc/1", "ranker=ranker/1", "llm=chat/1")


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    made = gate_env(reg, tmp_path)
    (made.folder / "deployments.yaml").write_text(DEPLOYMENT_POLICY)
    return made


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _models(env: GateEnv, tmp: Path, *, ranker_auc: float = 0.95) -> None:
    env.apply(BASIC)
    for name, auc in (("text-enc", 0.95), ("ranker", ranker_auc), ("chat", 0.93)):
        env.sign_version(
            name,
            tmp / name,
            metrics={"auc": auc},
            datasets=[DatasetInput("corpus", "s3://data/corpus", DATA)],
        )


def _public_key(env: GateEnv, name: str, tmp: Path) -> str:
    path = tmp / f"{name}.pub"
    path.write_bytes(public_key_pem(load_private_key(env.keys[name]).public_key()))
    return str(path)


def _release(env: GateEnv, server_url: str, publisher: str) -> None:
    made = client_cli(server_url, publisher, "deployment", "create", "search-stack")
    assert made.returncode == 0, made.stderr
    released = client_cli(
        server_url,
        publisher,
        "deployment",
        "release",
        "search-stack",
        *MEMBERS,
        "--meta",
        "ticket=OPS-1",
        "--key",
        str(env.key_file("trainer")),
    )
    assert released.returncode == 0, released.stderr


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".mlprov-installed.json"  # holds mtimes
    }


def test_create_release_promote_and_pull_over_http_as_locally(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _models(env, tmp_path)
    publisher = token(reg, "publisher", name="ci")
    promoter = token(reg, "promoter", name="release")
    reader = token(reg, "reader", name="serving")
    made = client_cli(
        server.base_url,
        publisher,
        "deployment",
        "create",
        "search-stack",
        "--description",
        "search",
        "--json",
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["name"] == "search-stack"
    released = client_cli(
        server.base_url,
        publisher,
        "deployment",
        "release",
        "search-stack",
        *MEMBERS,
        "--meta",
        "ticket=OPS-1",
        "--key",
        str(env.key_file("trainer")),
        "--reason",
        "first stack",
        "--json",
    )
    assert released.returncode == 0, released.stderr
    version = json.loads(released.stdout)
    assert version["version"] == 1
    assert version["metadata"] == {"ticket": "OPS-1"}
    registry = reg.registry()
    try:
        stored = registry.deployment_version("search-stack/1")
        assert [(m.role, m.ref) for m in stored.members] == [
            ("encoder", "text-enc/1"),
            ("llm", "chat/1"),
            ("ranker", "ranker/1"),
        ]
        assert stored.bundle_digest == version["bundle_digest"]
        # The registry verifies the bundle signed by the client with its own trust.
        verified = registry.verify("search-stack/1")
        assert verified.report.passed, verified.report.failures
        entry = [e for e in registry.audit_log() if e.action == "deployment.release"][-1]
        assert entry.reason == "first stack"
    finally:
        registry.close()

    # Reads over HTTP show what the local registry shows.
    for args in (
        ("deployment", "show", "search-stack", "--json"),
        ("deployment", "show", "search-stack/1", "--json"),
        ("deployment", "list", "--json"),
    ):
        remote = client_cli(server.base_url, reader, *args)
        local = reg.cli(*args)
        assert remote.returncode == local.returncode == 0, remote.stderr
        assert json.loads(remote.stdout) == json.loads(local.stdout)

    moved = client_cli(
        server.base_url,
        promoter,
        "alias",
        "set",
        "search-stack",
        "production",
        "1",
        "--expect-generation",
        "0",
        "--json",
    )
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["generation"] == 1
    shown = client_cli(server.base_url, reader, "alias", "show", "search-stack", "production")
    assert shown.returncode == 0, shown.stderr
    assert "search-stack@production -> 1 (generation 1)" in shown.stdout
    history = client_cli(server.base_url, reader, "alias", "history", "search-stack", "--json")
    local_history = reg.cli("alias", "history", "search-stack", "--json")
    assert history.returncode == local_history.returncode == 0, history.stderr
    assert json.loads(history.stdout) == json.loads(local_history.stdout)
    assert [e["to_version"] for e in json.loads(history.stdout)] == [1]

    trainer = _public_key(env, "trainer", tmp_path)
    target = tmp_path / "serve"
    pulled = client_cli(
        server.base_url,
        reader,
        "pull",
        "search-stack@production",
        "--to",
        str(target),
        "--key",
        trainer,
        "--json",
    )
    assert pulled.returncode == 0, pulled.stderr
    answer = json.loads(pulled.stdout)
    assert answer["ref"] == "search-stack/1"
    assert {c["id"] for c in answer["checks"]} >= {"deployment.statement", "deployment.members"}
    assert all(c["status"] == "passed" for c in answer["checks"])
    local_target = tmp_path / "local-serve"
    local = reg.cli("pull", "search-stack@production", "--to", str(local_target))
    assert local.returncode == 0, local.stderr
    # Same layout and bytes as a local pull (ROLE/... and deployment.sig).
    assert _tree(target) == _tree(local_target)
    assert sorted(p.name for p in target.iterdir()) == [
        "deployment.sig",
        "encoder",
        "llm",
        "ranker",
    ]
    assert (target / "deployment.sig").read_bytes() == stored.bundle

    checked = client_cli(
        server.base_url, reader, "verify", "search-stack/1", "--key", trainer, "--json"
    )
    assert checked.returncode == 0, checked.stderr
    statuses = {(c["id"], c["subject"]): c["status"] for c in json.loads(checked.stdout)["checks"]}
    assert statuses[("deployment.statement", "search-stack/1")] == "passed"
    assert statuses[("deployment.members", "search-stack/1")] == "passed"
    assert statuses[("member.files", "ranker/1")] == "passed"
    assert set(statuses.values()) == {"passed"}
    by_alias = client_cli(
        server.base_url, reader, "verify", "search-stack@production", "--key", trainer
    )
    assert by_alias.returncode == 0, by_alias.stderr
    assert "deployment.statement" in by_alias.stdout

    # The caller's trust decides: a key that did not sign fails, in one line.
    untrusted = _public_key(env, "mallory", tmp_path)
    wrong = client_cli(server.base_url, reader, "verify", "search-stack/1", "--key", untrusted)
    assert wrong.returncode == 1, wrong.stdout
    assert "deployment.statement" in one_line_error(wrong.stderr)
    other = tmp_path / "other"
    refused = client_cli(
        server.base_url,
        reader,
        "pull",
        "search-stack@production",
        "--to",
        str(other),
        "--key",
        untrusted,
    )
    assert refused.returncode == 1, refused.stderr
    one_line_error(refused.stderr)
    assert not other.exists()


def test_a_member_failing_its_policy_blocks_the_move_over_http(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _models(env, tmp_path, ranker_auc=0.5)
    publisher = token(reg, "publisher", name="ci")
    promoter = token(reg, "promoter", name="release")
    _release(env, server.base_url, publisher)
    before = reg.snapshot()
    denied = client_cli(
        server.base_url, promoter, "alias", "set", "search-stack", "production", "1"
    )
    assert denied.returncode == 1, denied.stderr
    line = one_line_error(denied.stderr)
    assert "stack-prod/members_pass" in line, line
    after = reg.snapshot()
    assert after["rows"]["deployment_aliases"] == before["rows"]["deployment_aliases"] == 0
    assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1
    registry = reg.registry()
    try:
        entry = registry.audit_log()[-1]
        assert (entry.action, entry.subject) == (
            "deployment.alias.set.denied",
            "search-stack@production",
        )
        assert json.loads(entry.details)["decision"]["allowed"] is False
    finally:
        registry.close()


def test_wrong_roles_and_bad_inputs_change_nothing(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _models(env, tmp_path)
    publisher = token(reg, "publisher", name="ci")
    reader = token(reg, "reader", name="serving")
    promoter = token(reg, "promoter", name="release")
    _release(env, server.base_url, publisher)
    key = str(env.key_file("trainer"))
    before = state_without_audit(reg)
    for who, args in (
        (reader, ("deployment", "create", "other-stack")),
        (promoter, ("deployment", "release", "search-stack", *MEMBERS, "--key", key)),
        (publisher, ("alias", "set", "search-stack", "production", "1")),
    ):
        result = client_cli(server.base_url, who, *args)
        assert result.returncode == 6, (args, result.stderr)
        one_line_error(result.stderr)
    for args, code in (
        (("deployment", "release", "search-stack", "Bad Role=ranker/1", "--key", key), 2),
        (("deployment", "release", "search-stack", "ranker=ranker@prod", "--key", key), 2),
        (("deployment", "release", "search-stack", "ranker=nothing/1", "--key", key), 4),
        (("deployment", "create", "ranker"), 3),
        (("deployment", "show", "no-such-stack"), 4),
    ):
        result = client_cli(server.base_url, publisher, *args)
        assert result.returncode == code, (args, result.stderr)
        one_line_error(result.stderr)
    after = state_without_audit(reg)
    after.pop("audit_rows")
    before.pop("audit_rows")
    assert after == before


def _bundle_tamper(body: bytes) -> bytes:
    """The bundle with its statement's metadata changed (the signature kept)."""
    bundle = json.loads(body)
    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"]).replace(b"OPS-1", b"OPS-2")
    envelope["payload"] = base64.b64encode(payload).decode("ascii")
    return json.dumps(bundle).encode()


def _lies(
    tampered_bundle_digest: str,
) -> dict[str, tuple[Callable[[str, bytes], bytes], str, str]]:
    def blob_bytes(path: str, body: bytes) -> bytes:
        return body.replace(b"ranker", b"RANKER") if path.startswith("/api/v1/blobs/") else body

    def statement(path: str, body: bytes) -> bytes:
        if path.endswith("/deployments/search-stack/versions/1/bundle"):
            return _bundle_tamper(body)
        if path.endswith("/deployments/search-stack/versions/1"):
            record = json.loads(body)
            record["bundle_digest"] = tampered_bundle_digest
            return json.dumps(record).encode()
        return body

    def members(path: str, body: bytes) -> bytes:
        if path.endswith("/deployments/search-stack/versions/1"):
            record = json.loads(body)
            by_role = {m["role"]: m for m in record["members"]}
            by_role["ranker"]["digest"] = by_role["llm"]["digest"]
            return json.dumps(record).encode()
        return body

    # lie -> (what pull's error names, what verify's error names)
    return {
        "blob bytes": (blob_bytes, "digest mismatch", "member.files (ranker/1)"),
        "statement": (statement, "deployment.statement", "deployment.statement"),
        "member digest": (members, "deployment.members", "deployment.members"),
    }


def test_a_lying_server_makes_pull_and_verify_fail_with_nothing_installed(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _models(env, tmp_path)
    publisher = token(reg, "publisher", name="ci")
    promoter = token(reg, "promoter", name="release")
    reader = token(reg, "reader", name="serving")
    _release(env, server.base_url, publisher)
    moved = client_cli(server.base_url, promoter, "alias", "set", "search-stack", "production", "1")
    assert moved.returncode == 0, moved.stderr
    registry = reg.registry()
    try:
        bundle = registry.deployment_version("search-stack/1").bundle
    finally:
        registry.close()
    tampered = "sha256:" + hashlib.sha256(_bundle_tamper(bundle)).hexdigest()
    trainer = _public_key(env, "trainer", tmp_path)
    before = state_without_audit(reg)
    for lie, (rewrite, pull_error, verify_error) in _lies(tampered).items():
        target = tmp_path / f"serve-{lie.replace(' ', '-')}"
        with lying_proxy(server.base_url, rewrite) as proxy:
            pulled = client_cli(
                proxy.base_url,
                reader,
                "pull",
                "search-stack@production",
                "--to",
                str(target),
                "--key",
                trainer,
            )
            checked = client_cli(
                proxy.base_url, reader, "verify", "search-stack/1", "--key", trainer
            )
        assert pulled.returncode == 1, (lie, pulled.stderr)
        assert pull_error in one_line_error(pulled.stderr), (lie, pulled.stderr)
        assert not target.exists(), lie
        assert checked.returncode == 1, (lie, checked.stdout, checked.stderr)
        assert verify_error in one_line_error(checked.stderr), (lie, checked.stderr)
    # A server that returns another statement to sign at release gets nothing signed.
    with lying_proxy(
        server.base_url,
        lambda path, body: (
            body.replace(b"OPS-1", b"OPS-9") if path.endswith("/statement") else body
        ),
    ) as proxy:
        refused = client_cli(
            proxy.base_url,
            publisher,
            "deployment",
            "release",
            "search-stack",
            *MEMBERS,
            "--meta",
            "ticket=OPS-1",
            "--key",
            str(env.key_file("trainer")),
        )
    assert refused.returncode == 2, refused.stderr
    assert "nothing was signed" in one_line_error(refused.stderr)
    after = state_without_audit(reg)
    after.pop("audit_rows")
    before.pop("audit_rows")
    assert after == before
