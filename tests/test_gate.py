"""The gate, end to end on both backends: the active policy set decides every move, a
denial changes nothing but its own audit entry, and serving installs only what passes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from mlprov.errors import MlprovError, PolicyDenied, VerificationError
from mlprov.policy import PolicyError
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model, one_line_error

BASIC = """
- signatures: {count: 1, signers: [trainer]}
- provenance: {builders: [trainer], build_types: ['https://mlprov.dev/training/v1']}
- id: auc
  metric: "auc >= 0.9"
"""


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


def _denied(env: GateEnv, move: object, words: str) -> None:
    """``move()`` is denied naming ``words``; nothing but one denial entry is written."""
    before = env.reg.snapshot()
    registry = env.reg.registry()
    try:
        with pytest.raises(PolicyDenied) as caught:
            move(registry)  # type: ignore[operator]
        assert caught.value.exit_code == 1
        assert words in caught.value.message, caught.value.message
        after = env.reg.snapshot()
        assert after["aliases"] == before["aliases"]
        assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1
        entry = registry.audit_log()[-1]
        assert entry.action.endswith(".denied")
        assert json.loads(entry.details)["decision"]["allowed"] is False
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()


def _set(number: int, alias: str = "production") -> object:
    return lambda registry: registry.set_alias("m", alias, number)


def test_a_signed_version_from_a_trusted_builder_meeting_the_bar_is_promoted(
    env: GateEnv, tmp_path: Path
) -> None:
    env.apply(BASIC)
    number = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    registry = env.reg.registry()
    try:
        event = registry.set_alias("m", "production", number)
        assert event is not None
        entry = registry.audit_log()[-1]
        decision = json.loads(entry.details)["decision"]
        assert decision["allowed"] is True
        assert decision["policy_digest"] == registry.policy().digest  # type: ignore[union-attr]
    finally:
        registry.close()


def test_unsigned_untrusted_and_low_versions_are_denied(env: GateEnv, tmp_path: Path) -> None:
    env.apply(BASIC)
    registry = env.reg.registry()
    try:
        registry.register(make_model(tmp_path / "u", {"w.bin": "unsigned"}), "m")  # 1
    finally:
        registry.close()
    env.sign_version("m", tmp_path / "x", signer="mallory", metrics={"auc": 0.99})  # 2
    env.sign_version("m", tmp_path / "low", metrics={"auc": 0.5})  # 3
    _denied(env, _set(1), "unsigned")
    _denied(env, _set(2), "prod/signatures")
    _denied(env, _set(3), "prod/auc: auc = 0.5")


def test_a_metric_only_in_unsigned_metadata_does_not_count(env: GateEnv, tmp_path: Path) -> None:
    """The registry record says auc 0.95, but it was registered unsigned and signed
    later: no signed document carries the metric."""
    env.apply(BASIC)
    registry = env.reg.registry()
    try:
        from mlprov.registry import VersionInput

        registry.register(make_model(tmp_path / "m"), "m", VersionInput(metrics={"auc": 0.95}))
        registry.sign_version("m/1", env.signer("trainer"))
        assert registry.get_version("m/1").metrics["auc"] == 0.95
    finally:
        registry.close()
    _denied(env, _set(1), "auc is not in the signed evidence")


def test_no_regression_against_the_champion(env: GateEnv, tmp_path: Path) -> None:
    env.apply(BASIC + "- id: champion\n  no_regression: {metric: auc, tolerance: 0.01}\n")
    first = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.97})
    worse = env.sign_version("m", tmp_path / "b", metrics={"auc": 0.93})
    registry = env.reg.registry()
    try:
        registry.set_alias("m", "production", first)
    finally:
        registry.close()
    _denied(env, _set(worse), "prod/champion")


def test_approvals_count_distinct_trusted_approvers_never_the_creator(
    env: GateEnv, tmp_path: Path
) -> None:
    env.apply(BASIC + "- approvals: {count: 2}\n")
    number = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    registry = env.reg.registry()
    try:
        registry.approve(f"m/{number}", "production", env.signer("alice"))
        registry.approve(f"m/{number}", "production", env.signer("alice"), comment="again")
        registry.approve(f"m/{number}", "production", env.signer("mallory"))
    finally:
        registry.close()
    _denied(env, _set(number), "prod/approvals")  # alice twice + an untrusted key: 1
    registry = env.reg.registry()
    try:
        registry.approve(f"m/{number}", "staging", env.signer("bob"))  # another target
    finally:
        registry.close()
    _denied(env, _set(number), "prod/approvals")
    registry = env.reg.registry()
    try:
        registry.approve(f"m/{number}", "production", env.signer("bob"))
        assert registry.set_alias("m", "production", number) is not None
    finally:
        registry.close()


def test_a_waiver_needs_two_holders_and_expires(env: GateEnv, tmp_path: Path) -> None:
    env.apply(
        BASIC,
        options="waivers: {requirements: [auc], role: approver, approvers: 2, max_duration: 72h}",
    )
    number = env.sign_version("m", tmp_path / "low", metrics={"auc": 0.5})
    registry = env.reg.registry()
    try:
        registry.waive(
            f"m/{number}", "production", env.signer("alice"), reason="incident 7",
            expires_in=timedelta(hours=24), requirements=("prod/auc",),
        )  # fmt: skip
    finally:
        registry.close()
    _denied(env, _set(number), "prod/auc")  # one holder is not enough
    registry = env.reg.registry()
    try:
        registry.waive(
            f"m/{number}", "production", env.signer("bob"), reason="incident 7",
            expires_in=timedelta(hours=24), requirements=("prod/auc",),
        )  # fmt: skip
        assert registry.set_alias("m", "production", number) is not None
        decision = json.loads(registry.audit_log()[-1].details)["decision"]["policy"]
        assert any(r["status"] == "waived" for r in decision["results"])
    finally:
        registry.close()


def test_a_revoked_signer_key_fails_the_gate(env: GateEnv, tmp_path: Path) -> None:
    env.apply(BASIC)
    number = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    registry = env.reg.registry()
    try:
        pub = (env.folder / "keys" / "trainer.pub").read_bytes()
        registry.revoke(reason="leaked", signer=env.signer("alice"), key_pem=pub)
    finally:
        registry.close()
    _denied(env, _set(number), "revoked")


def test_a_policy_file_with_a_typo_is_refused_naming_file_line_and_key(
    env: GateEnv,
) -> None:
    folder = env.write_policy("- signatures: {count: 1, signers: [trainer]}\n- metrik: 'auc > 1'")
    before = env.reg.snapshot()
    result = env.reg.cli("policy", "apply", str(folder))
    assert result.returncode == 2, result.stderr
    line = one_line_error(result.stderr)
    assert "production.yaml" in line
    assert "metrik" in line
    assert env.reg.snapshot() == before


def test_a_cel_expression_that_errors_is_a_denial(env: GateEnv, tmp_path: Path) -> None:
    env.apply(BASIC + "- id: odd\n  cel: 'version.size / 0 > 1'\n")
    number = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    _denied(env, _set(number), "prod/odd")


def test_policy_check_reports_and_changes_nothing(env: GateEnv, tmp_path: Path) -> None:
    env.apply(BASIC)
    good = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    bad = env.sign_version("m", tmp_path / "b", metrics={"auc": 0.5})
    before = env.reg.snapshot()
    ok = env.reg.cli("policy", "check", f"m/{good}", "--target", "production")
    assert ok.returncode == 0, ok.stderr
    for fmt in ("json", "sarif", "junit"):
        out = tmp_path / f"report.{fmt}"
        result = env.reg.cli(
            "policy", "check", f"m/{bad}", "--target", "production", "--format", fmt,
            "--output", str(out),
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert "prod/auc" in one_line_error(result.stderr)
        assert out.read_text().strip()
    sarif = json.loads((tmp_path / "report.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert any(r["ruleId"] == "policy:prod/auc" for r in sarif["runs"][0]["results"])
    assert env.reg.snapshot() == before


def test_pull_installs_only_what_passes_the_alias_policy(env: GateEnv, tmp_path: Path) -> None:
    env.apply(BASIC)
    number = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    registry = env.reg.registry()
    try:
        registry.set_alias("m", "production", number)
    finally:
        registry.close()
    out = tmp_path / "served"
    pulled = env.reg.cli("pull", "m@production", "--to", str(out))
    assert pulled.returncode == 0, pulled.stderr
    assert sorted(p.name for p in out.iterdir()) == [".mlprov-installed.json", "model.sig", "w.bin"]
    # The policy tightens: what production holds no longer passes, and is not served.
    env.apply(BASIC.replace("auc >= 0.9", "auc >= 0.99"))
    refused = env.reg.cli("pull", "m@production", "--to", str(tmp_path / "again"))
    assert refused.returncode == 1, refused.stderr
    assert "prod/auc" in one_line_error(refused.stderr)
    assert not (tmp_path / "again").exists()


def test_pull_without_a_policy_set_trusts_nothing(reg: RegistryEnv, tmp_path: Path) -> None:
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "m"), "m")
        registry.set_alias("m", "production", 1)
        with pytest.raises(VerificationError, match="no policy set is applied"):
            registry.pull("m@production", tmp_path / "out")
    finally:
        registry.close()
    assert not (tmp_path / "out").exists()


def test_a_bad_policy_folder_is_a_policy_error(env: GateEnv) -> None:
    registry = env.reg.registry()
    try:
        with pytest.raises(PolicyError):
            registry.apply_policy({"p.yaml": b"version: 1\npolicies: {}\n"})
        with pytest.raises(MlprovError):
            registry.apply_policy({})
    finally:
        registry.close()


def test_verify_ref_uses_the_registry_trust_and_the_alias_policy(
    env: GateEnv, tmp_path: Path
) -> None:
    no_trust = env.reg.cli("register", str(make_model(tmp_path / "u")), "--name", "m", "--no-git")
    assert no_trust.returncode == 0, no_trust.stderr
    refused = env.reg.cli("verify", "m/1")
    assert refused.returncode == 1, refused.stderr
    assert "no policy set is applied" in one_line_error(refused.stderr)
    env.apply(BASIC)
    good = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    low = env.sign_version("m", tmp_path / "b", metrics={"auc": 0.5})
    assert env.reg.cli("verify", f"m/{good}", "--deep").returncode == 0
    assert env.reg.cli("verify", f"m/{low}").returncode == 0  # verifies: policy not asked
    registry = env.reg.registry()
    try:
        registry.set_alias("m", "production", good)
    finally:
        registry.close()
    held = env.reg.cli("verify", "m@production", "--format", "sarif")
    assert held.returncode == 0, held.stderr
    assert json.loads(held.stdout)["version"] == "2.1.0"
    unsigned = env.reg.cli("verify", "m/1")
    assert unsigned.returncode == 1
    assert "unsigned" in one_line_error(unsigned.stderr)


def test_dry_run_shows_the_decision_and_moves_nothing(env: GateEnv, tmp_path: Path) -> None:
    env.apply(BASIC)
    low = env.sign_version("m", tmp_path / "b", metrics={"auc": 0.5})
    before = env.reg.snapshot()
    result = env.reg.cli("alias", "set", "m", "production", str(low), "--dry-run")
    assert result.returncode == 1, result.stderr
    assert "FAIL  policy:prod/auc" in result.stdout
    assert "prod/auc" in one_line_error(result.stderr)
    staged = env.reg.cli("stage", "set", "m", str(low), "Staging", "--dry-run")
    assert staged.returncode == 0, staged.stderr  # no policy protects Staging
    assert env.reg.snapshot() == before


def test_status_reports_every_alias_and_revocations(env: GateEnv, tmp_path: Path) -> None:
    env.apply(BASIC)
    good = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    registry = env.reg.registry()
    try:
        registry.set_alias("m", "production", good)
        registry.set_alias("m", "canary", good)
    finally:
        registry.close()
    ok = env.reg.cli("status", "--json")
    assert ok.returncode == 0, ok.stderr
    assert [(s["alias"], s["ok"]) for s in json.loads(ok.stdout)] == [
        ("canary", True),
        ("production", True),
    ]
    registry = env.reg.registry()
    try:
        registry.revoke(reason="bad data", signer=env.signer("alice"), version=f"m/{good}")
    finally:
        registry.close()
    revoked = env.reg.cli("status", "--json")
    assert revoked.returncode == 1
    assert all(s["revoked"] for s in json.loads(revoked.stdout))
    assert "revoked" in one_line_error(revoked.stderr)
