"""Verification through the registry, on both backends: what the engine's unit tests
cover with built snapshots, here made by real registrations and then broken the way an
attacker or an accident would break them (a database row edited, a blob rewritten, a
policy applied in the middle of a move)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mlprov.errors import PolicyDenied
from mlprov.registry import DatasetInput, LineageInput
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, execute, one_line_error

TRUSTED = """
- signatures: {count: 1, signers: [trainer]}
"""
LINEAGE = TRUSTED + "- verified_lineage: true\n"
TRAIN = "train=s3://data/train@sha256:" + "c3" * 32


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


def _family(env: GateEnv, tmp_path: Path) -> tuple[int, int]:
    """``m/1`` (the parent) and ``m/2`` fine-tuned from it, both signed by the trainer."""
    parent = env.sign_version("m", tmp_path / "parent")
    child = env.sign_version(
        "m", tmp_path / "child", lineage=[LineageInput("parent", f"m/{parent}")]
    )
    return parent, child


def _judge(env: GateEnv, ref: str, **options: Any) -> Any:
    registry = env.reg.registry()
    try:
        return registry.verify(ref, **options)
    finally:
        registry.close()


def _failed(judgement: Any) -> dict[str, str]:
    return {f"{c.id} {c.subject}": c.message for c in judgement.report.failures}


def _denied_move(env: GateEnv, number: int, words: str) -> None:
    before = env.reg.snapshot()
    registry = env.reg.registry()
    try:
        with pytest.raises(PolicyDenied) as caught:
            registry.set_alias("m", "production", number)
        assert words in caught.value.message, caught.value.message
        entry = registry.audit_log()[-1]
        assert entry.action == "alias.set.denied"
        assert json.loads(entry.details)["decision"]["allowed"] is False
    finally:
        registry.close()
    after = env.reg.snapshot()
    assert after["aliases"] == before["aliases"]
    assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1


def test_a_parent_whose_recorded_manifest_was_edited_fails_the_childs_gate(
    env: GateEnv, tmp_path: Path
) -> None:
    env.apply(LINEAGE)
    parent, child = _family(env, tmp_path)
    assert _judge(env, f"m/{child}").report.passed
    execute(
        env.reg,
        "UPDATE version_files SET digest = ? WHERE version_id = "
        "(SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id "
        "WHERE m.name = 'm' AND v.number = ?)",
        "sha256:" + "ab" * 32,
        parent,
    )
    failures = _failed(_judge(env, f"m/{child}"))
    assert any(k.startswith(f"lineage.parent:m/{parent}") for k in failures), failures
    _denied_move(env, child, "prod/verified_lineage")


def test_a_parents_stored_bytes_rewritten_in_the_store_are_found_by_deep(
    env: GateEnv, tmp_path: Path
) -> None:
    """Blobs are checked on every read, so the gate (which reads none) passes; ``--deep``
    re-hashes the version's and its ancestors' blobs and names the parent."""
    env.apply(LINEAGE)
    parent, child = _family(env, tmp_path)
    blob = hashlib.sha256(f"m {tmp_path.joinpath('parent').name}".encode()).hexdigest()
    path = env.reg.home / "blobs" / "sha256" / blob[:2] / blob
    path.chmod(0o644)
    path.write_bytes(b"swapped in the store")
    assert _judge(env, f"m/{child}").report.passed
    deep = _judge(env, f"m/{child}", deep=True)
    failures = _failed(deep)
    assert list(failures) == [f"files.deep m/{parent}"], failures
    assert "corrupt" in failures[f"files.deep m/{parent}"]
    passed = [c.subject for c in deep.report.checks if c.id == "files.deep" and c.status.value]
    assert f"m/{child}" in passed
    result = env.reg.cli("verify", f"m/{child}", "--deep")
    assert result.returncode == 1, result.stderr
    assert "files.deep" in one_line_error(result.stderr)


def test_a_lineage_claim_whose_digest_does_not_match_the_parent_is_denied(
    env: GateEnv, tmp_path: Path
) -> None:
    env.apply(LINEAGE)
    parent, child = _family(env, tmp_path)
    execute(
        env.reg,
        "UPDATE versions SET digest = ? WHERE number = ? AND model_id = "
        "(SELECT id FROM models WHERE name = 'm')",
        "sha256:" + "ee" * 32,
        parent,
    )
    failures = _failed(_judge(env, f"m/{child}"))
    message = failures.get(f"lineage.parent:m/{parent} m/{child}", "")
    assert "digest" in message, failures
    _denied_move(env, child, "prod/verified_lineage")


def test_a_dataset_digest_that_differs_between_provenance_and_bom_is_denied(
    env: GateEnv, tmp_path: Path
) -> None:
    """The trainer's own key signed an ML-BOM naming another training set than the
    provenance (a pipeline that mixed up two runs): the version must not be promoted."""
    from mlprov import provenance

    env.apply(TRUSTED + "- datasets: {uris: ['s3://data/*']}\n")
    number = env.sign_version("m", tmp_path / "a", datasets=[DatasetInput.parse(TRAIN)])
    assert _judge(env, f"m/{number}").report.passed
    registry = env.reg.registry()
    try:
        record = registry.get_version(f"m/{number}")
        other = [record.datasets[0].model_copy(update={"digest": "sha256:" + "99" * 32})]
        inputs = provenance.ProvenanceInputs.from_version(
            record.model_copy(update={"datasets": other})
        )
        forged = env.signer("trainer").sign(provenance.statement_for_bom(inputs)).bundle
    finally:
        registry.close()
    execute(
        env.reg,
        "UPDATE evidence SET content = ?, digest = ? WHERE kind = 'bom'",
        forged,
        "sha256:" + hashlib.sha256(forged).hexdigest(),
    )
    failures = _failed(_judge(env, f"m/{number}"))
    assert "dataset 'train' differs" in failures.get(f"datasets m/{number}", ""), failures
    _denied_move(env, number, "differs")


def test_an_alias_pointer_edited_in_the_database_is_reported_never_served(
    env: GateEnv, tmp_path: Path
) -> None:
    env.apply(TRUSTED)
    first = env.sign_version("m", tmp_path / "a")
    second = env.sign_version("m", tmp_path / "b")
    registry = env.reg.registry()
    try:
        registry.set_alias("m", "production", first)
    finally:
        registry.close()
    ok = _judge(env, "m@production")
    check = next(c for c in ok.report.checks if c.id == "registry.alias")
    assert check.status.value == "passed", check
    execute(
        env.reg,
        "UPDATE aliases SET version_id = (SELECT v.id FROM versions v JOIN models m "
        "ON m.id = v.model_id WHERE m.name = 'm' AND v.number = ?)",
        second,
    )
    failures = _failed(_judge(env, "m@production"))
    assert "changed outside mlprov" in failures.get("registry.alias m@production", ""), failures
    before = env.reg.snapshot()
    pulled = env.reg.cli("pull", "m@production", "--to", str(tmp_path / "served"))
    assert pulled.returncode == 1, pulled.stderr
    assert "registry.alias" in one_line_error(pulled.stderr)
    assert not (tmp_path / "served").exists()
    status = env.reg.cli("status", "--json")
    assert status.returncode == 1, status.stderr
    (row,) = json.loads(status.stdout)
    assert row["ok"] is False
    assert "registry.alias" in row["problem"]
    assert env.reg.snapshot() == before


def test_an_alias_whose_audit_entry_was_rewritten_to_match_is_reported(
    env: GateEnv, tmp_path: Path
) -> None:
    env.apply(TRUSTED)
    first = env.sign_version("m", tmp_path / "a")
    second = env.sign_version("m", tmp_path / "b")
    registry = env.reg.registry()
    try:
        registry.set_alias("m", "production", first)
        entry = registry.audit_log()[-1]
    finally:
        registry.close()
    details = json.loads(entry.details)
    details["to"] = second
    execute(
        env.reg, "UPDATE audit_log SET details = ? WHERE seq = ?", json.dumps(details), entry.seq
    )
    execute(
        env.reg,
        "UPDATE aliases SET version_id = (SELECT v.id FROM versions v JOIN models m "
        "ON m.id = v.model_id WHERE m.name = 'm' AND v.number = ?)",
        second,
    )
    failures = _failed(_judge(env, "m@production"))
    assert "was modified" in failures.get("registry.alias m@production", ""), failures


def test_trust_options_narrow_the_registry_trust_and_never_widen_it(
    env: GateEnv, tmp_path: Path
) -> None:
    env.apply(TRUSTED)
    trainer = env.sign_version("m", tmp_path / "a")
    stranger = env.sign_version("m", tmp_path / "b", signer="mallory")
    keys = tmp_path / "pub"
    keys.mkdir()
    from mlprov.signing import load_private_key, public_key_pem

    for name in ("trainer", "mallory", "alice"):
        (keys / f"{name}.pub").write_bytes(
            public_key_pem(load_private_key(env.keys[name]).public_key())
        )
    before = env.reg.snapshot()
    ok = env.reg.cli("verify", f"m/{trainer}", "--key", str(keys / "trainer.pub"))
    assert ok.returncode == 0, ok.stderr
    assert "signature.narrowed" in ok.stdout
    # Trusted by the registry, but not by the key given: narrowed away.
    narrowed = env.reg.cli("verify", f"m/{trainer}", "--key", str(keys / "alice.pub"))
    assert narrowed.returncode == 1, narrowed.stderr
    assert "signature.narrowed" in one_line_error(narrowed.stderr)
    # The key given verifies, but the registry does not trust it: never widened.
    widened = env.reg.cli("verify", f"m/{stranger}", "--key", str(keys / "mallory.pub"))
    assert widened.returncode == 1, widened.stderr
    assert "signature" in one_line_error(widened.stderr)
    assert env.reg.snapshot() == before


@pytest.mark.parametrize("stricter", [True, False])
def test_a_real_policy_apply_landing_during_a_move_is_never_slipped_through(
    env: GateEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stricter: bool
) -> None:
    """The gate judged with one policy set; another is applied (through the real
    ``apply_policy``, on its own connection) before the move commits. The move's
    compare-and-set on the policy digest sends it back to be judged by the new set.
    (A move denied by the set active when it was judged is denied; that is never unsafe.)"""
    import mlprov.registry.policies as policies

    env.apply(TRUSTED + "- metric: 'auc >= 0.9'\n")
    number = env.sign_version("m", tmp_path / "a", metrics={"auc": 0.95})
    real_judge = policies.judge
    calls: list[str | None] = []

    def judge_then_apply(*args: Any, **kwargs: Any) -> Any:
        judgement = real_judge(*args, **kwargs)
        calls.append(judgement.policy_digest)
        if len(calls) == 1:
            # Stricter: the version no longer passes. Not stricter: it still does, but the
            # decision must name the set that is active when the move commits.
            env.apply(TRUSTED + f"- metric: 'auc >= {0.99 if stricter else 0.91}'\n")
        return judgement

    monkeypatch.setattr(policies, "judge", judge_then_apply)
    registry = env.reg.registry()
    try:
        if stricter:
            with pytest.raises(PolicyDenied) as caught:
                registry.set_alias("m", "production", number)
            assert "auc" in caught.value.message
            assert "production" not in registry.get_model("m").aliases
        else:
            assert registry.set_alias("m", "production", number) is not None
        assert len(calls) == 2
        assert calls[0] != calls[1]
        last = registry.audit_log()[-1]
        assert json.loads(last.details)["decision"]["policy_digest"] == calls[1]
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
