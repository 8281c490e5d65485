"""Deployments end to end on both backends: release, the gate on deployment aliases (a
member failing its own policy blocks the move, audited, nothing moved), verification of
the signed bundle statement and of the members' bytes, the whole-folder pull, and bad
inputs that change nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlprov.errors import (
    ConflictError,
    InvalidInputError,
    MlprovError,
    NotFoundError,
    PolicyDenied,
    VerificationError,
)
from mlprov.policy import PolicyError
from mlprov.registry import VersionInput
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, execute, one_line_error

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
      - same_datasets: true
      - id: has-ranker
        cel: "'ranker' in members && members['ranker'].model == 'ranker'"
"""

DATA = "sha256:" + "12" * 32
OTHER_DATA = "sha256:" + "34" * 32


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    made = gate_env(reg, tmp_path)
    (made.folder / "deployments.yaml").write_text(DEPLOYMENT_POLICY)
    return made


def _sign(env: GateEnv, tmp: Path, name: str, auc: float, data: str = DATA) -> int:
    from mlprov.registry import DatasetInput

    return env.sign_version(
        name,
        tmp / name,
        metrics={"auc": auc},
        datasets=[DatasetInput("corpus", "s3://data/corpus", data)],
    )


def _stack(env: GateEnv, tmp: Path, *, ranker_auc: float = 0.95, ranker_data: str = DATA) -> None:
    """``search-stack`` version 1: encoder=text-enc/1 ranker=ranker/1 llm=chat/1."""
    env.apply(BASIC)
    _sign(env, tmp, "text-enc", 0.95)
    _sign(env, tmp, "ranker", ranker_auc, ranker_data)
    _sign(env, tmp, "chat", 0.93)
    registry = env.reg.registry()
    try:
        registry.create_deployment("search-stack", description="search")
        made = registry.release_deployment(
            "search-stack",
            {"encoder": "text-enc/1", "ranker": "ranker/1", "llm": "chat/1"},
            env.signer("trainer"),
            metadata={"ticket": "OPS-1"},
        )
        assert made.version == 1
    finally:
        registry.close()


def _checks(judgement: object) -> dict[str, str]:
    report = judgement.report  # type: ignore[attr-defined]
    return {f"{c.id} {c.subject}": c.status.value for c in report.checks}


def test_a_released_deployment_is_promoted_verified_and_pulled_whole(
    env: GateEnv, tmp_path: Path
) -> None:
    _stack(env, tmp_path)
    registry = env.reg.registry()
    try:
        version = registry.deployment_version("search-stack/1")
        assert [(m.role, m.ref) for m in version.members] == [
            ("encoder", "text-enc/1"),
            ("llm", "chat/1"),
            ("ranker", "ranker/1"),
        ]
        assert version.meta == {"ticket": "OPS-1"}
        assert all(m.digest == registry.get_version(m.ref).digest for m in version.members)
        # The bundle statement: in-toto v1, one subject per member with its digest.
        from mlprov.signing import inspect_attestation

        inspected = inspect_attestation(version.bundle)
        assert inspected.statement["_type"] == "https://in-toto.io/Statement/v1"
        assert {name for name, _d in inspected.subjects} == {
            "encoder:text-enc/1",
            "llm:chat/1",
            "ranker:ranker/1",
        }
        event = registry.set_alias("search-stack", "production", 1, reason="launch")
        assert event is not None
        assert event.generation == 1
        assert registry.get_deployment("search-stack").aliases == {"production": 1}
        assert registry.get_alias("search-stack", "production").version == 1
        assert [e.to_version for e in registry.alias_history("search-stack")] == [1]
        entry = registry.audit_log()[-1]
        assert (entry.action, entry.subject) == ("deployment.alias.set", "search-stack@production")
        moved = registry.outbox()[-1]
        assert (moved.type, moved.model, moved.audit_seq) == (
            "alias.moved",
            "search-stack",
            entry.seq,
        )
        decision = json.loads(entry.details)["decision"]
        assert decision["allowed"] is True
        assert {r["id"] for r in decision["policy"]["results"]} == {
            "stack-prod/verified",
            "stack-prod/members_pass",
            "stack-prod/same_datasets",
            "stack-prod/has-ranker",
        }
        deep = registry.verify("search-stack@production", deep=True)
        assert deep.report.passed, deep.report.failures
        checks = _checks(deep)
        assert checks["deployment.statement search-stack/1"] == "passed"
        assert checks["deployment.members search-stack/1"] == "passed"
        assert checks["files.deep ranker/1"] == "passed"
        assert deep.decision is not None
        assert deep.decision.allowed
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
    target = tmp_path / "serve"
    result = env.reg.cli("pull", "search-stack@production", "--to", str(target), "--json")
    assert result.returncode == 0, result.stderr
    pulled = json.loads(result.stdout)
    assert pulled["ref"] == "search-stack/1"
    assert sorted(p.name for p in target.iterdir()) == [
        "deployment.sig",
        "encoder",
        "llm",
        "ranker",
    ]
    assert (target / "ranker" / "w.bin").read_text() == f"ranker {'ranker'}"
    assert (target / "encoder" / "model.sig").is_file()
    assert (target / "deployment.sig").read_bytes() == version.bundle
    shown = env.reg.cli("deployment", "show", "search-stack", "--json", check=True)
    assert json.loads(shown.stdout)["aliases"] == {"production": 1}
    listed = env.reg.cli("deployment", "list", "--json", check=True)
    assert [d["name"] for d in json.loads(listed.stdout)] == ["search-stack"]
    status = env.reg.cli("status", "--json", check=True)
    assert any(s.get("model") == "search-stack" and s["ok"] for s in json.loads(status.stdout)), (
        status.stdout
    )


def test_a_deployment_whose_member_fails_its_policy_cannot_be_promoted(
    env: GateEnv, tmp_path: Path
) -> None:
    _stack(env, tmp_path, ranker_auc=0.5)
    before = env.reg.snapshot()
    registry = env.reg.registry()
    try:
        with pytest.raises(PolicyDenied) as caught:
            registry.set_alias("search-stack", "production", 1)
        assert caught.value.exit_code == 1
        assert "stack-prod/members_pass" in caught.value.message
        assert "ranker (ranker/1) fails its policy: prod/auc" in caught.value.message
        after = env.reg.snapshot()
        assert after["rows"]["deployment_aliases"] == before["rows"]["deployment_aliases"] == 0
        assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1
        entry = registry.audit_log()[-1]
        assert entry.action == "deployment.alias.set.denied"
        assert entry.subject == "search-stack@production"
        assert json.loads(entry.details)["decision"]["allowed"] is False
        event = registry.outbox()[-1]
        assert (event.type, event.model, event.audit_seq) == (
            "move.denied",
            "search-stack",
            entry.seq,
        )
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
    before = env.reg.snapshot()
    result = env.reg.cli("alias", "set", "search-stack", "production", "1")
    assert result.returncode == 1
    assert "members_pass" in one_line_error(result.stderr)
    after = env.reg.snapshot()
    assert after["rows"]["deployment_aliases"] == 0
    assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1
    target = tmp_path / "serve"
    # Nothing at production: pull finds nothing and installs nothing.
    result = env.reg.cli("pull", "search-stack@production", "--to", str(target))
    assert result.returncode == 4, result.stderr
    assert not target.exists()


def test_members_trained_on_different_dataset_versions_are_refused(
    env: GateEnv, tmp_path: Path
) -> None:
    _stack(env, tmp_path, ranker_data=OTHER_DATA)
    registry = env.reg.registry()
    try:
        with pytest.raises(PolicyDenied) as caught:
            registry.set_alias("search-stack", "production", 1)
        assert "stack-prod/same_datasets" in caught.value.message
        assert "corpus" in caught.value.message
        assert "members_pass" not in caught.value.message
    finally:
        registry.close()


def test_a_deployment_cel_rule_across_members_is_enforced(env: GateEnv, tmp_path: Path) -> None:
    _stack(env, tmp_path)
    registry = env.reg.registry()
    try:
        registry.release_deployment(
            "search-stack",
            {"encoder": "text-enc/1", "reranker": "ranker/1"},
            env.signer("trainer"),
        )
        with pytest.raises(PolicyDenied) as caught:
            registry.set_alias("search-stack", "production", 2)
        assert "stack-prod/has-ranker" in caught.value.message
        assert registry.set_alias("search-stack", "production", 1) is not None
    finally:
        registry.close()


def test_a_members_bytes_changed_in_storage_fail_the_deployments_deep_verification(
    env: GateEnv, tmp_path: Path
) -> None:
    _stack(env, tmp_path)
    registry = env.reg.registry()
    try:
        registry.set_alias("search-stack", "production", 1)
    finally:
        registry.close()
    blob = hashlib.sha256(b"ranker ranker").hexdigest()
    path = env.reg.home / "blobs" / "sha256" / blob[:2] / blob
    path.chmod(0o644)
    path.write_bytes(b"swapped in the store")
    result = env.reg.cli("verify", "search-stack/1", "--deep")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "files.deep" in one_line_error(result.stderr)
    result = env.reg.cli("verify", "search-stack/1", "--deep", "--json")
    assert result.returncode == 1
    failed = [c for c in json.loads(result.stdout)["checks"] if c["status"] == "failed"]
    assert [(c["id"], c["subject"]) for c in failed] == [("files.deep", "ranker/1")]
    target = tmp_path / "serve"
    result = env.reg.cli("pull", "search-stack@production", "--to", str(target))
    assert result.returncode == 1, result.stderr
    one_line_error(result.stderr)
    assert not target.exists()
    assert not any(p.name.startswith(".serve") for p in tmp_path.iterdir())


def test_a_bundle_statement_swapped_in_the_database_fails_verification(
    env: GateEnv, tmp_path: Path
) -> None:
    _stack(env, tmp_path)
    registry = env.reg.registry()
    try:
        second = registry.release_deployment(
            "search-stack", {"encoder": "text-enc/1"}, env.signer("trainer")
        )
    finally:
        registry.close()
    execute(
        env.reg,
        "UPDATE deployment_versions SET bundle = ? WHERE number = 1",
        second.bundle,
    )
    registry = env.reg.registry()
    try:
        judged = registry.verify("search-stack/1")
        assert _checks(judged)["deployment.statement search-stack/1"] == "failed"
        with pytest.raises(PolicyDenied):
            registry.set_alias("search-stack", "production", 1)
    finally:
        registry.close()


def test_a_bundle_signed_by_an_untrusted_key_fails_verification(
    env: GateEnv, tmp_path: Path
) -> None:
    _stack(env, tmp_path)
    registry = env.reg.registry()
    try:
        registry.release_deployment(
            "search-stack", {"encoder": "text-enc/1", "ranker": "ranker/1"}, env.signer("mallory")
        )
        judged = registry.verify("search-stack/2")
        assert _checks(judged)["deployment.statement search-stack/2"] == "failed"
        with pytest.raises(PolicyDenied) as caught:
            registry.set_alias("search-stack", "production", 2)
        assert "deployment.statement" in caught.value.message
    finally:
        registry.close()


def test_names_are_one_namespace_for_models_and_deployments(env: GateEnv, tmp_path: Path) -> None:
    _stack(env, tmp_path)
    before = env.reg.snapshot()
    result = env.reg.cli("deployment", "create", "ranker")
    assert result.returncode == 3
    assert "is a model" in one_line_error(result.stderr)
    registry = env.reg.registry()
    try:
        with pytest.raises(ConflictError, match="is a deployment"):
            registry.create_model("search-stack")
        with pytest.raises(ConflictError, match="already exists"):
            registry.create_deployment("search-stack")
    finally:
        registry.close()
    model = tmp_path / "clash"
    model.mkdir()
    (model / "w.bin").write_text("clash")
    result = env.reg.cli("register", str(model), "--name", "search-stack")
    assert result.returncode == 3, result.stderr
    assert "is a deployment" in one_line_error(result.stderr)
    assert env.reg.snapshot() == before  # no row, no blob


@pytest.mark.parametrize(
    ("members", "code", "words"),
    [
        (["encoder=nope/1"], 4, "model 'nope' not found"),
        (["encoder=text-enc/9"], 4, "text-enc/9 not found"),
        (["Encoder=text-enc/1"], 2, "invalid role"),
        (["encoder=text-enc/1", "encoder=chat/1"], 2, "given twice"),
        (["encoder"], 2, "ROLE=MODEL/VERSION"),
        (["encoder=text-enc@production"], 2, "pin a version number"),
        (["encoder=text-enc/x"], 2, "invalid reference"),
        (["encoder=unsigned/1"], 2, "has no model signature"),
        (["encoder=search-stack/1"], 2, "is a deployment"),
    ],
    ids=[
        "unknown-model",
        "unknown-version",
        "role-syntax",
        "duplicate-role",
        "no-equals",
        "alias-not-pinned",
        "bad-reference",
        "member-not-signed",
        "deployment-as-member",
    ],
)
def test_bad_release_inputs_change_nothing(
    env: GateEnv, tmp_path: Path, members: list[str], code: int, words: str
) -> None:
    _stack(env, tmp_path)
    registry = env.reg.registry()
    try:
        from support.registry_env import make_model

        registry.register(make_model(tmp_path / "u", {"w.bin": "unsigned"}), "unsigned")
    finally:
        registry.close()
    before = env.reg.snapshot()
    key = env.key_file("trainer")
    result = env.reg.cli("deployment", "release", "search-stack", *members, "--key", str(key))
    assert result.returncode == code, result.stderr
    assert words in one_line_error(result.stderr)
    assert env.reg.snapshot() == before


def test_other_bad_inputs_change_nothing(env: GateEnv, tmp_path: Path) -> None:
    _stack(env, tmp_path)
    before = env.reg.snapshot()
    key = str(env.key_file("trainer"))
    for args, code in [
        (("deployment", "release", "nowhere", "encoder=text-enc/1", "--key", key), 4),
        (("deployment", "release", "search-stack", "--key", key), 2),
        (("deployment", "show", "search-stack/7"), 4),
        (("deployment", "create", "Bad Name"), 2),
        (("alias", "set", "search-stack", "production", "7"), 4),
        (("alias", "set", "search-stack", "latest", "1"), 2),
        (("verify", "search-stack@nowhere"), 4),
        (("verify", "search-stack/1", "--key", str(env.folder / "keys" / "trainer.pub")), 2),
        (("pull", "search-stack/1", "--to", str(tmp_path / "x")), 2),
        (
            (
                "deployment",
                "release",
                "search-stack",
                "encoder=text-enc/1",
                "--meta",
                "novalue",
                "--key",
                key,
            ),
            2,
        ),
    ]:
        result = env.reg.cli(*args)
        assert result.returncode == code, (args, result.stderr)
        one_line_error(result.stderr)
    assert env.reg.snapshot() == before
    assert not (tmp_path / "x").exists()


def test_a_deployment_version_is_numbered_and_signed_before_it_is_stored(
    env: GateEnv, tmp_path: Path
) -> None:
    _stack(env, tmp_path)
    result = env.reg.cli(
        "deployment",
        "release",
        "search-stack",
        "encoder=text-enc/1",
        "ranker=ranker/1",
        "--meta",
        "ticket=OPS-2",
        "--key",
        str(env.key_file("trainer")),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["version"] == 2
    assert made["metadata"] == {"ticket": "OPS-2"}
    registry = env.reg.registry()
    try:
        entry = registry.audit_log()[-1]
        assert (entry.action, entry.subject) == ("deployment.release", "search-stack/2")
        assert json.loads(entry.details)["bundle_digest"] == made["bundle_digest"]
        # Rollback and delete go through the same gate; the policy does not allow delete.
        registry.set_alias("search-stack", "production", 2)
        event = registry.set_alias("search-stack", "production", 1)
        assert event is not None
        assert event.kind == "rollback"
        with pytest.raises(PolicyDenied, match="allow_delete"):
            registry.delete_alias("search-stack", "production")
        assert registry.get_alias("search-stack", "production").version == 1
    finally:
        registry.close()


def test_deployment_policies_are_strict_and_backwards_compatible(env: GateEnv) -> None:
    from mlprov.policy import load_policy_set

    files = {"p.yaml": DEPLOYMENT_POLICY.encode()}
    loaded = load_policy_set(files)
    assert [p.name for p in loaded.deployment_policies] == ["stack-prod"]
    assert loaded.policies == ()
    for bad, words in [
        (DEPLOYMENT_POLICY.replace("same_datasets: true", "same_dataset: true"), "unknown key"),
        (DEPLOYMENT_POLICY.replace("members_pass: true", "members_pass: {target: '1'}"), "digits"),
        (DEPLOYMENT_POLICY.replace("'ranker' in members", "'ranker' in ("), "CEL"),
        (DEPLOYMENT_POLICY.replace("name: stack-prod", "name: 'bad name'"), "name"),
    ]:
        with pytest.raises(PolicyError) as caught:
            load_policy_set({"p.yaml": bad.encode()})
        assert words in caught.value.message, caught.value.message
    # A set without a deployments section has the same digest it always had.
    plain = {"p.yaml": b"version: 1\npolicies: []\n"}
    assert load_policy_set(plain).deployment_policies == ()


def test_without_a_policy_set_a_deployment_moves_but_is_not_pulled(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    env = gate_env(reg, tmp_path)
    registry = reg.registry()
    try:
        signed = registry.sign_and_register(
            _model(tmp_path), "enc", env.signer("trainer"), VersionInput(), write_signature=False
        )
        registry.create_deployment("stack")
        registry.release_deployment("stack", {"encoder": signed.version.ref}, env.signer("trainer"))
        assert registry.set_alias("stack", "production", 1) is not None
        with pytest.raises(VerificationError, match="no policy set"):
            registry.pull_deployment("stack@production", tmp_path / "serve")
        assert not (tmp_path / "serve").exists()
        with pytest.raises(NotFoundError):
            registry.deployment_version("stack/2")
        with pytest.raises(InvalidInputError):
            registry.release_deployment("stack", {}, env.signer("trainer"))
    finally:
        registry.close()
    assert isinstance(NotFoundError("x"), MlprovError)


def _model(tmp_path: Path) -> Path:
    from support.registry_env import make_model

    return make_model(tmp_path / "enc", {"w.bin": "enc"})


def test_lineage_shows_deployments_both_ways(env: GateEnv, tmp_path: Path) -> None:
    _stack(env, tmp_path)
    result = env.reg.cli("lineage", "search-stack/1", "--json", check=True)
    graph = json.loads(result.stdout)
    assert graph["root"] == "search-stack/1"
    assert {(e["relation"], e["parent"]) for e in graph["edges"]} == {
        ("member:encoder", "text-enc/1"),
        ("member:llm", "chat/1"),
        ("member:ranker", "ranker/1"),
    }
    result = env.reg.cli("lineage", "ranker/1", "--descendants", "--json", check=True)
    edges = json.loads(result.stdout)["edges"]
    assert edges == [{"child": "search-stack/1", "relation": "member:ranker", "parent": "ranker/1"}]
    tree = env.reg.cli("lineage", "search-stack@latest", check=True).stdout
    assert "member:ranker: ranker/1" in tree


def test_concurrent_releases_get_distinct_numbers(env: GateEnv, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _stack(env, tmp_path)

    def release(_index: int) -> int:
        registry = env.reg.registry()
        try:
            made = registry.release_deployment(
                "search-stack", {"encoder": "text-enc/1"}, env.signer("trainer")
            )
            return int(made.version)
        finally:
            registry.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        numbers = sorted(pool.map(release, range(4)))
    assert numbers == [2, 3, 4, 5]
    registry = env.reg.registry()
    try:
        assert [v.version for v in registry.deployment_versions("search-stack")] == [1, 2, 3, 4, 5]
        for number in numbers:  # each signed statement names its own number
            assert registry.verify(f"search-stack/{number}").report.passed
    finally:
        registry.close()


def test_a_deployment_alias_edited_in_the_database_is_reported_and_never_pulled(
    env: GateEnv, tmp_path: Path
) -> None:
    _stack(env, tmp_path)
    registry = env.reg.registry()
    try:
        registry.release_deployment(
            "search-stack", {"encoder": "text-enc/1", "ranker": "ranker/1"}, env.signer("trainer")
        )
        registry.set_alias("search-stack", "production", 1)
        assert (
            _checks(registry.verify("search-stack@production"))[
                "registry.alias search-stack@production"
            ]
            == "passed"
        )
    finally:
        registry.close()
    execute(
        env.reg,
        "UPDATE deployment_aliases SET deployment_version_id = "
        "(SELECT id FROM deployment_versions WHERE number = 2)",
    )
    result = env.reg.cli("verify", "search-stack@production")
    assert result.returncode == 1
    assert "registry.alias" in one_line_error(result.stderr)
    target = tmp_path / "serve"
    result = env.reg.cli("pull", "search-stack@production", "--to", str(target))
    assert result.returncode == 1
    assert "changed outside mlprov" in one_line_error(result.stderr)
    assert not target.exists()
    status = env.reg.cli("status", "--json")
    assert status.returncode == 1
    assert [s["ok"] for s in json.loads(status.stdout) if s.get("deployment")] == [False]
    audit = env.reg.cli("audit", "verify")
    assert audit.returncode == 1
    assert "deployment alias search-stack@production is version 2" in one_line_error(audit.stderr)
    # And a history row rewritten in the database is found too.
    execute(
        env.reg,
        "UPDATE deployment_aliases SET deployment_version_id = "
        "(SELECT id FROM deployment_versions WHERE number = 1)",
    )
    assert env.reg.cli("audit", "verify").returncode == 0
    execute(env.reg, "UPDATE deployment_alias_history SET actor = 'mallory'")
    audit = env.reg.cli("audit", "verify")
    assert audit.returncode == 1
    assert "deployment alias history row 1" in one_line_error(audit.stderr)


def test_a_deployment_with_a_revoked_member_is_never_a_target_whatever_the_policies(
    env: GateEnv, tmp_path: Path
) -> None:
    """``stack`` is selected by no deployment policy: moves are allowed, except to a
    version with a revoked member (built in)."""
    _stack(env, tmp_path)
    registry = env.reg.registry()
    try:
        registry.create_deployment("stack")
        signer = env.signer("trainer")
        registry.release_deployment("stack", {"encoder": "text-enc/1"}, signer)
        registry.release_deployment("stack", {"encoder": "text-enc/1", "llm": "chat/1"}, signer)
        assert registry.set_alias("stack", "production", 1) is not None
        registry.revoke(reason="bad data", signer=env.signer("alice"), version="chat/1")
        before = env.reg.snapshot()
        with pytest.raises(PolicyDenied) as caught:
            registry.set_alias("stack", "production", 2)
        assert "chat/1" in caught.value.message
        assert "revoked" in caught.value.message
        after = env.reg.snapshot()
        assert after["rows"]["deployment_alias_history"] == 1
        assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1
        assert registry.get_alias("stack", "production").version == 1
    finally:
        registry.close()
