"""``mlprov diff A B`` and ``mlprov rebuild-check REF PATH`` on real registrations, on
SQLite and PostgreSQL: facts from verified evidence, JSON shapes, bad references, and
rebuild checks that are identical, differ, or are recorded as signed attestations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlprov.registry import REBUILD_PREDICATE_TYPE, DatasetInput, VersionInput
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model, one_line_error

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    gate = gate_env(reg, tmp_path)
    gate.apply("- signatures: {count: 1, signers: [trainer]}")
    return gate


def _register(
    env: GateEnv,
    folder: Path,
    files: dict[str, bytes | str],
    *,
    signer: str = "trainer",
    **info: Any,
) -> int:
    registry = env.reg.registry()
    try:
        model = make_model(folder, files)
        signed = registry.sign_and_register(
            model, "credit", env.signer(signer), VersionInput(**info), write_signature=False
        )
        return int(signed.version.version)
    finally:
        registry.close()


FILES_1: dict[str, bytes | str] = {
    "config.json": '{"layers": 2}\n',
    "weights.bin": b"\x00" * 100,
    "tokenizer.json": "{}",
}
FILES_2: dict[str, bytes | str] = {
    "config.json": '{"layers": 3}\n',
    "weights.bin": b"\x00" * 100,
    "extra.txt": "new file, 22 bytes...\n",
}


def _two_versions(env: GateEnv, tmp_path: Path) -> None:
    _register(
        env,
        tmp_path / "m1",
        FILES_1,
        params={"lr": 0.1, "optim": {"name": "adam"}},
        metrics={"auc": 0.9, "auc[segment=retail]": 0.85},
        datasets=[DatasetInput("train", "s3://data/train-v1", DIGEST_1)],
        code_repo="https://github.com/acme/credit",
        code_commit=COMMIT_A,
    )
    _register(
        env,
        tmp_path / "m2",
        FILES_2,
        params={"lr": 0.05, "optim": {"name": "adam"}, "epochs": 3},
        metrics={"auc": 0.92, "auc[segment=retail]": 0.8},
        datasets=[DatasetInput("train", "s3://data/train-v2", DIGEST_2)],
        code_repo="https://github.com/acme/credit",
        code_commit=COMMIT_B,
    )


def _entries(section: dict[str, Any]) -> dict[str, tuple[Any, Any, str]]:
    return {e["key"]: (e["left"], e["right"], e["change"]) for e in section["entries"]}


def test_diff_json_shows_verified_params_metrics_datasets_code_files(
    env: GateEnv, tmp_path: Path
) -> None:
    _two_versions(env, tmp_path)
    result = env.reg.cli("diff", "credit/1", "credit/2", "--format", "json", check=True)
    shown = json.loads(result.stdout)
    assert set(shown) == {
        "left",
        "right",
        "params",
        "metrics",
        "datasets",
        "code",
        "lineage",
        "files",
    }
    assert shown["left"]["ref"] == "credit/1"
    assert shown["right"]["ref"] == "credit/2"
    assert shown["left"]["verified"] is True
    assert shown["left"]["failed_checks"] == []
    for name in ("params", "metrics", "datasets", "code"):
        assert shown[name]["verified"] == {"left": True, "right": True}, name
    assert _entries(shown["params"]) == {
        "epochs": (None, 3, "added"),
        "lr": (0.1, 0.05, "changed"),
        "optim.name": ("adam", "adam", "same"),
    }
    assert _entries(shown["metrics"]) == {
        "auc": (0.9, 0.92, "changed"),
        "auc[segment=retail]": (0.85, 0.8, "changed"),
    }
    assert _entries(shown["datasets"]) == {
        "train": (
            {"uri": "s3://data/train-v1", "digest": DIGEST_1},
            {"uri": "s3://data/train-v2", "digest": DIGEST_2},
            "changed",
        )
    }
    assert _entries(shown["code"]) == {
        "commit": (COMMIT_A, COMMIT_B, "changed"),
        "repository": ("https://github.com/acme/credit",) * 2 + ("same",),
    }
    files = shown["files"]
    assert files["identical"] is False
    assert files["unchanged"] == 1
    assert [(f["path"], f["change"]) for f in files["added"]] == [("extra.txt", "added")]
    assert files["added"][0]["left"] is None
    assert files["added"][0]["right"]["size"] == len(str(FILES_2["extra.txt"]))
    assert [f["path"] for f in files["removed"]] == ["tokenizer.json"]
    assert files["removed"][0]["left"]["size"] == 2
    [changed] = files["changed"]
    assert changed["path"] == "config.json"
    assert changed["left"]["digest"] != changed["right"]["digest"]
    assert changed["left"]["digest"].startswith("sha256:")
    # Evidence: signature, provenance, ML-BOM, model card, each verified, with its signer.
    kinds = [(e["kind"], e["status"]) for e in shown["left"]["evidence"]]
    assert sorted(kinds) == sorted(
        [
            ("signature", "verified"),
            ("provenance", "verified"),
            ("bom", "verified"),
            ("model-card", "verified"),
        ]
    )
    assert all(e["signer"].startswith("key:") for e in shown["left"]["evidence"])
    # --json is the same document as --format json.
    again = env.reg.cli("diff", "credit/1", "credit/2", "--json", check=True)
    assert json.loads(again.stdout) == shown


def test_diff_text_is_a_readable_table(env: GateEnv, tmp_path: Path) -> None:
    _two_versions(env, tmp_path)
    result = env.reg.cli("diff", "credit/1", "credit/2", check=True, timeout=120)
    out = result.stdout
    assert out.startswith("diff credit/1 -> credit/2\n")
    assert "credit/1" in out
    assert "verifies" in out
    for text in ("lr", "0.05", "auc[segment=retail]", "epochs", "added", "tokenizer.json"):
        assert text in out, text
    assert "files (1 added, 1 removed, 1 changed, 1 unchanged)" in out
    assert "registry record, unverified" not in out
    assert result.stderr == ""


def test_unverified_evidence_and_record_values_are_marked(env: GateEnv, tmp_path: Path) -> None:
    """Version 2 is signed by mallory, whom the registry does not trust: its values are
    the registry's records, marked unverified, and its evidence shows as unverified with
    mallory's key as its signer."""
    _register(env, tmp_path / "m1", FILES_1, params={"lr": 0.1}, metrics={"auc": 0.9})
    _register(
        env, tmp_path / "m2", FILES_1, signer="mallory", params={"lr": 0.2}, metrics={"auc": 0.99}
    )
    shown = json.loads(env.reg.cli("diff", "credit/1", "credit/2", "--json", check=True).stdout)
    assert shown["right"]["verified"] is False
    assert "signature" in shown["right"]["failed_checks"]
    for name in ("params", "metrics", "datasets", "code"):
        assert shown[name]["verified"] == {"left": True, "right": False}, name
    assert _entries(shown["metrics"]) == {"auc": (0.9, 0.99, "changed")}
    statuses = {e["kind"]: e["status"] for e in shown["right"]["evidence"]}
    assert statuses == {
        "signature": "unverified",
        "provenance": "unverified",
        "bom": "unverified",
        "model-card": "unverified",
    }
    mallory = {e["signer"] for e in shown["right"]["evidence"]}
    trainer = {e["signer"] for e in shown["left"]["evidence"]}
    assert len(mallory) == 1
    assert mallory != trainer
    assert shown["files"]["identical"] is True  # the same bytes, signed by another key
    text = env.reg.cli("diff", "credit/1", "credit/2", check=True).stdout
    assert "registry record, unverified" in text
    assert "does NOT verify" in text


def test_diff_lists_attestations_added_later(env: GateEnv, tmp_path: Path) -> None:
    _two_versions(env, tmp_path)
    predicate = tmp_path / "eval.json"
    predicate.write_text(json.dumps({"metrics": {"auc": 0.95}}))
    env.reg.cli(
        "attest",
        "credit/2",
        "--predicate-type",
        "https://mlprov.dev/evaluation/v1",
        "--predicate",
        str(predicate),
        "--key",
        str(env.key_file("evaluator")),
        check=True,
    )
    shown = json.loads(env.reg.cli("diff", "credit/1", "credit/2", "--json", check=True).stdout)
    right = [e for e in shown["right"]["evidence"] if e["kind"] == "attestation"]
    assert len(right) == 1
    assert right[0]["status"] == "verified"
    assert right[0]["predicate_type"] == "https://mlprov.dev/evaluation/v1"
    assert "evaluator" in right[0]["message"]
    assert not [e for e in shown["left"]["evidence"] if e["kind"] == "attestation"]
    # A trusted evaluator's number is the fact (ADR 0031).
    assert _entries(shown["metrics"])["auc"] == (0.9, 0.95, "changed")


def test_diff_of_a_version_with_itself_is_all_the_same(env: GateEnv, tmp_path: Path) -> None:
    _two_versions(env, tmp_path)
    shown = json.loads(env.reg.cli("diff", "credit/2", "credit/2", "--json", check=True).stdout)
    assert shown["files"]["identical"] is True
    assert shown["files"]["unchanged"] == 3
    for name in ("params", "metrics", "datasets", "code", "lineage"):
        assert all(e["change"] == "same" for e in shown[name]["entries"]), name


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("credit/1", "credit/9"), 4),
        (("nosuch/1", "credit/1"), 4),
        (("credit/1", "credit@production"), 4),
        (("credit/1", "Not A Ref!"), 2),
        (("credit/1", "credit/2", "--format", "yaml"), 2),
    ],
)
def test_diff_bad_input_is_one_line_and_changes_nothing(
    env: GateEnv, tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    _two_versions(env, tmp_path)
    before = env.reg.snapshot()
    result = env.reg.cli("diff", *args)
    assert result.returncode == code, result.stderr
    one_line_error(result.stderr)
    assert result.stdout == ""
    assert env.reg.snapshot() == before


# -- rebuild-check ----------------------------------------------------------------------


def _copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(tmp_path / "m1", tmp_path / name))


def test_rebuild_check_identical(env: GateEnv, tmp_path: Path) -> None:
    _two_versions(env, tmp_path)
    rebuilt = _copy(tmp_path, "rebuilt")
    before = env.reg.snapshot()
    result = env.reg.cli("rebuild-check", "credit/1", str(rebuilt), check=True)
    assert "is credit/1: identical (3 files)" in result.stdout
    shown = json.loads(
        env.reg.cli("rebuild-check", "credit/1", str(rebuilt), "--json", check=True).stdout
    )
    assert shown["result"] == "identical"
    assert shown["attestation"] is None
    assert shown["rebuiltDigest"] == shown["registeredDigest"]
    assert shown["files"]["unchanged"] == 3
    assert shown["files"]["identical"] is True
    assert env.reg.snapshot() == before  # without --attest nothing is written


@pytest.mark.parametrize(
    ("change", "summary", "kind", "path"),
    [
        ("changed", "0 added, 0 removed, 1 changed, 2 unchanged", "changed", "weights.bin"),
        ("extra", "1 added, 0 removed, 0 changed, 3 unchanged", "added", "notes.md"),
        ("missing", "0 added, 1 removed, 0 changed, 2 unchanged", "removed", "tokenizer.json"),
    ],
)
def test_rebuild_check_that_differs_says_which_files_and_exits_1(
    env: GateEnv, tmp_path: Path, change: str, summary: str, kind: str, path: str
) -> None:
    _two_versions(env, tmp_path)
    rebuilt = _copy(tmp_path, "rebuilt")
    if change == "changed":
        (rebuilt / "weights.bin").write_bytes(b"\x01" * 101)
    elif change == "extra":
        (rebuilt / "notes.md").write_text("hello")
    else:
        (rebuilt / "tokenizer.json").unlink()
    before = env.reg.snapshot()
    result = env.reg.cli("rebuild-check", "credit/1", str(rebuilt))
    assert result.returncode == 1
    assert summary in one_line_error(result.stderr)
    assert path in result.stdout
    assert kind in result.stdout
    as_json = env.reg.cli("rebuild-check", "credit/1", str(rebuilt), "--json")
    assert as_json.returncode == 1
    shown = json.loads(as_json.stdout)
    assert shown["result"] == "different"
    [item] = shown["files"][kind]
    assert item["path"] == path
    assert item["change"] == kind
    if kind == "changed":
        assert item["registered"]["size"] == 100
        assert item["rebuilt"]["size"] == 101
        assert item["registered"]["digest"] != item["rebuilt"]["digest"]
    assert env.reg.snapshot() == before


def test_rebuild_check_attests_and_the_attestation_verifies(env: GateEnv, tmp_path: Path) -> None:
    _two_versions(env, tmp_path)
    rebuilt = _copy(tmp_path, "rebuilt")
    result = env.reg.cli(
        "rebuild-check",
        "credit/1",
        str(rebuilt),
        "--attest",
        "--key",
        str(env.key_file("evaluator")),
        "--json",
        check=True,
    )
    shown = json.loads(result.stdout)
    attestation = shown["attestation"]
    assert attestation["predicate_type"] == REBUILD_PREDICATE_TYPE
    registry = env.reg.registry()
    try:
        stored = registry.evidence("credit/1", kind="attestation")
        assert [e.digest for e in stored] == [attestation["digest"]]
        judgement = registry.verify("credit/1")
        checks = {c.id: c for c in judgement.report.checks}
        assert checks["evidence.attestation"].status.value == "passed"
        assert "evaluator" in checks["evidence.attestation"].message
        [fact] = [
            a
            for a in judgement.report.facts.attestations
            if a.predicate_type == REBUILD_PREDICATE_TYPE
        ]
        assert fact.predicate["result"] == "identical"
        assert fact.predicate["version"] == "credit/1"
        assert fact.predicate["registeredDigest"] == shown["registeredDigest"]
        audit = registry.audit_log(subject="credit/1")
        assert audit[-1].action == "evidence.add"
    finally:
        registry.close()
    # diff shows it, verified.
    listed = json.loads(env.reg.cli("diff", "credit/1", "credit/2", "--json", check=True).stdout)
    [item] = [e for e in listed["left"]["evidence"] if e["kind"] == "attestation"]
    assert item["status"] == "verified"
    assert item["predicate_type"] == REBUILD_PREDICATE_TYPE


def test_rebuild_check_that_differs_is_attested_then_exits_1(env: GateEnv, tmp_path: Path) -> None:
    _two_versions(env, tmp_path)
    rebuilt = _copy(tmp_path, "rebuilt")
    (rebuilt / "config.json").write_text('{"layers": 4}\n')
    result = env.reg.cli(
        "rebuild-check",
        "credit/1",
        str(rebuilt),
        "--attest",
        "--key",
        str(env.key_file("trainer")),
    )
    assert result.returncode == 1
    one_line_error(result.stderr)
    assert "attested credit/1" in result.stdout
    registry = env.reg.registry()
    try:
        [fact] = [
            a
            for a in registry.verify("credit/1").report.facts.attestations
            if a.predicate_type == REBUILD_PREDICATE_TYPE
        ]
        assert fact.predicate["result"] == "different"
        assert [c["path"] for c in fact.predicate["files"]["changed"]] == ["config.json"]
    finally:
        registry.close()


def test_rebuild_check_leaves_out_a_signature_file(env: GateEnv, tmp_path: Path) -> None:
    _two_versions(env, tmp_path)
    rebuilt = _copy(tmp_path, "rebuilt")
    (rebuilt / "model.sig").write_text("{}")
    env.reg.cli("rebuild-check", "credit/1", str(rebuilt), check=True)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown version", 4),
        ("unknown model", 4),
        ("missing path", 2),
        ("signing options without --attest", 2),
        ("--attest without a key", 2),
        ("unreadable key", 2),
        ("bad format", 2),
        ("attest a missing path", 2),
        ("a symlink in PATH", 2),
        ("attest with a symlink in PATH", 2),
        ("a server's trust option locally", 2),
    ],
)
def test_rebuild_check_failures_are_one_line_and_change_nothing(
    env: GateEnv, tmp_path: Path, case: str, code: int
) -> None:
    _two_versions(env, tmp_path)
    rebuilt = str(_copy(tmp_path, "rebuilt"))
    key = str(env.key_file("evaluator"))
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    args_by_case: dict[str, tuple[str, ...]] = {
        "unknown version": ("credit/7", rebuilt),
        "unknown model": ("nosuch/1", rebuilt),
        "missing path": ("credit/1", str(tmp_path / "nothing-here")),
        "signing options without --attest": ("credit/1", rebuilt, "--key", key),
        "--attest without a key": ("credit/1", rebuilt, "--attest"),
        "unreadable key": ("credit/1", rebuilt, "--attest", "--key", str(bad_key)),
        "bad format": ("credit/1", rebuilt, "--format", "xml"),
        "attest a missing path": (
            "credit/1",
            str(tmp_path / "nothing-here"),
            "--attest",
            "--key",
            key,
        ),
        "a server's trust option locally": ("credit/1", rebuilt, "--identity", "a@b.c"),
    }
    (_copy(tmp_path, "linked") / "link.bin").symlink_to(tmp_path / "m1" / "weights.bin")
    linked = str(tmp_path / "linked")
    args: tuple[str, ...] = {
        **args_by_case,
        "a symlink in PATH": ("credit/1", linked),
        "attest with a symlink in PATH": ("credit/1", linked, "--attest", "--key", key),
    }[case]
    before = env.reg.snapshot()
    result = env.reg.cli("rebuild-check", *args)
    assert result.returncode == code, result.stderr
    one_line_error(result.stderr)
    assert result.stdout == ""
    assert env.reg.snapshot() == before


def test_a_policy_can_require_an_identical_rebuild(env: GateEnv, tmp_path: Path) -> None:
    """The attestation is a verified fact a CEL requirement reads (docs/diff.md)."""
    _two_versions(env, tmp_path)
    env.apply(
        "- signatures: {count: 1, signers: [trainer]}\n"
        "- id: reproducible\n"
        '  cel: "facts.attestations.exists(a, a.predicate_type == '
        "'https://mlprov.dev/rebuild-check/v1' && a.predicate.result == 'identical')\"\n"
    )
    check = ("policy", "check", "credit/1", "--target", "production")
    assert env.reg.cli(*check).returncode == 1
    rebuilt = _copy(tmp_path, "rebuilt")
    key = str(env.key_file("evaluator"))
    (rebuilt / "weights.bin").write_bytes(b"\x07")
    assert (
        env.reg.cli("rebuild-check", "credit/1", str(rebuilt), "--attest", "--key", key).returncode
        == 1
    )
    assert env.reg.cli(*check).returncode == 1  # a different rebuild does not satisfy it
    shutil.rmtree(rebuilt)
    rebuilt = _copy(tmp_path, "rebuilt")
    env.reg.cli("rebuild-check", "credit/1", str(rebuilt), "--attest", "--key", key, check=True)
    result = env.reg.cli(*check)
    assert result.returncode == 0, result.stdout + result.stderr


def test_diff_shows_lineage_edges(env: GateEnv, tmp_path: Path) -> None:
    from mlprov.registry import LineageInput

    _two_versions(env, tmp_path)
    _register(
        env,
        tmp_path / "m3",
        {"w.bin": "fine-tuned"},
        lineage=[LineageInput("parent", "credit/2")],
    )
    shown = json.loads(env.reg.cli("diff", "credit/2", "credit/3", "--json", check=True).stdout)
    assert shown["lineage"]["verified"] == {"left": True, "right": True}
    [edge] = shown["lineage"]["entries"]
    assert edge["key"] == "parent credit/2"
    assert edge["left"] is None
    assert edge["change"] == "added"
    assert edge["right"] == shown["left"]["digest"]  # bound by the parent's digest
    text = env.reg.cli("diff", "credit/2", "credit/3", check=True).stdout
    assert "parent credit/2" in text


def test_diff_of_versions_hashed_differently_compares_sha256(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    """No policy set: every value is the record's, marked unverified; a blake2b and a
    sha256 version of the same bytes have the same files."""
    registry = reg.registry()
    try:
        model = make_model(tmp_path / "m", FILES_1)
        registry.register(model, "plain", VersionInput(params={"lr": 1}))
        registry.register(model, "plain", VersionInput(params={"lr": 2}), hash_algorithm="blake2b")
        result = registry.diff("plain/1", "plain@latest")
        registry.register(model, "other", VersionInput(params={"lr": 1}))
        across = registry.diff("plain/1", "other/1")  # versions of two models
    finally:
        registry.close()
    assert result.files.identical
    assert result.files.algorithm == "sha256"
    assert result.files.unchanged == 3
    params = result.section("params")
    assert params.verified == (False, False)
    assert [(e.key, e.left, e.right) for e in params.differences] == [("lr", 1, 2)]
    assert not result.left.verified
    assert result.left.evidence == ()
    assert across.identical
    assert across.right.ref == "other/1"
    text = reg.cli("diff", "plain/1", "plain/2", check=True).stdout
    assert "plain/1 and plain/2: registry record, unverified" in text
    assert "evidence: none on either version" in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("diff", "m/1", "m/2"), "give the signer's trust"),
        (("rebuild-check", "m/1", "."), "give the signer's trust"),
    ],
)
def test_against_a_server_without_trust_both_refuse_before_any_request(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    """Client mode (docs/client.md): one line, exit 2, before any request is made (the
    URL below has no server behind it)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPROV_")}
    env.update(MLPROV_HOME=str(tmp_path), MLPROV_REGISTRY="http://127.0.0.1:9")
    result = subprocess.run(
        [sys.executable, "-m", "mlprov", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert says in one_line_error(result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_rebuild_check_of_a_single_file_model(env: GateEnv, tmp_path: Path) -> None:
    registry = env.reg.registry()
    try:
        weights = tmp_path / "model.bin"
        weights.write_bytes(b"single file" * 10)
        registry.sign_and_register(
            weights, "solo", env.signer("trainer"), VersionInput(), write_signature=False
        )
    finally:
        registry.close()
    copy = tmp_path / "copy.bin"
    copy.write_bytes(weights.read_bytes())
    shown = json.loads(
        env.reg.cli("rebuild-check", "solo/1", str(copy), "--json", check=True).stdout
    )
    assert shown["result"] == "identical"
    assert shown["files"]["unchanged"] == 1
    copy.write_bytes(b"other bytes")
    result = env.reg.cli("rebuild-check", "solo/1", str(copy), "--json")
    assert result.returncode == 1
    [item] = json.loads(result.stdout)["files"]["changed"]
    assert item["path"] == "."
    assert item["registered"]["size"] == 110


# -- deployments ------------------------------------------------------------------------


def _member(env: GateEnv, tmp_path: Path, name: str, auc: float) -> int:
    return env.sign_version(name, tmp_path / f"{name}-{auc}", metrics={"auc": auc})


def _stacks(env: GateEnv, tmp_path: Path) -> None:
    """``search-stack`` 1: encoder=text-enc/1 ranker=ranker/1 llm=chat/1 (ticket OPS-1);
    2: encoder=text-enc/1 ranker=ranker/2 rerank=rerank/1 (ticket OPS-2, owner search),
    3: as 2, signed by untrusted mallory; ``production`` -> 1; model ``credit`` 1."""
    _member(env, tmp_path, "text-enc", 0.95)
    _member(env, tmp_path, "ranker", 0.91)
    _member(env, tmp_path, "ranker", 0.94)
    _member(env, tmp_path, "chat", 0.93)
    _member(env, tmp_path, "rerank", 0.9)
    _register(env, tmp_path / "m1", FILES_1)
    registry = env.reg.registry()
    try:
        registry.create_deployment("search-stack")
        registry.release_deployment(
            "search-stack",
            {"encoder": "text-enc/1", "ranker": "ranker/1", "llm": "chat/1"},
            env.signer("trainer"),
            metadata={"ticket": "OPS-1"},
        )
        second = {"encoder": "text-enc/1", "ranker": "ranker/2", "rerank": "rerank/1"}
        meta = {"ticket": "OPS-2", "owner": "search"}
        registry.release_deployment("search-stack", second, env.signer("trainer"), metadata=meta)
        registry.release_deployment("search-stack", second, env.signer("mallory"), metadata=meta)
        registry.set_alias("search-stack", "production", 1, reason="launch")
    finally:
        registry.close()


def test_deployment_diff_json_matches_roles_and_diffs_changed_members(
    env: GateEnv, tmp_path: Path
) -> None:
    _stacks(env, tmp_path)
    result = env.reg.cli("diff", "search-stack/1", "search-stack/2", "--json", check=True)
    shown = json.loads(result.stdout)
    assert set(shown) == {"kind", "left", "right", "roles", "metadata"}
    assert shown["kind"] == "deployment"
    registry = env.reg.registry()
    try:
        first = registry.deployment_version("search-stack/1")
        digests = {
            f"{n}/{v}": registry.get_version(f"{n}/{v}").digest
            for n, v in (("text-enc", 1), ("ranker", 1), ("ranker", 2), ("chat", 1), ("rerank", 1))
        }
    finally:
        registry.close()
    left = shown["left"]
    assert left["ref"] == "search-stack/1"
    assert left["bundle_digest"] == first.bundle_digest
    assert left["signer"] == first.signer
    assert left["statement"]["verified"] is True
    assert [c["id"] for c in left["statement"]["checks"]] == [
        "deployment.statement",
        "deployment.members",
    ]
    assert shown["right"]["ref"] == "search-stack/2"
    assert shown["right"]["statement"]["verified"] is True
    roles = {r["role"]: r for r in shown["roles"]}
    assert [r["role"] for r in shown["roles"]] == ["encoder", "llm", "ranker", "rerank"]
    assert {k: r["change"] for k, r in roles.items()} == {
        "encoder": "same",
        "llm": "removed",
        "ranker": "changed",
        "rerank": "added",
    }
    assert roles["encoder"]["diff"] is None
    assert roles["llm"]["left"] == {"model": "chat", "version": 1, "digest": digests["chat/1"]}
    assert roles["llm"]["right"] is None
    assert roles["llm"]["diff"] is None
    assert roles["rerank"]["left"] is None
    assert roles["rerank"]["right"]["digest"] == digests["rerank/1"]
    ranker = roles["ranker"]
    assert ranker["left"]["digest"] == digests["ranker/1"]
    assert ranker["right"] == {"model": "ranker", "version": 2, "digest": digests["ranker/2"]}
    # The changed member is compared as `mlprov diff ranker/1 ranker/2` compares it.
    alone = env.reg.cli("diff", "ranker/1", "ranker/2", "--json", check=True)
    assert ranker["diff"] == json.loads(alone.stdout)
    assert ranker["diff"]["metrics"]["verified"] == {"left": True, "right": True}
    assert _entries(ranker["diff"]["metrics"]) == {"auc": (0.91, 0.94, "changed")}
    assert _entries(shown["metadata"]) == {
        "owner": (None, "search", "added"),
        "ticket": ("OPS-1", "OPS-2", "changed"),
    }


def test_deployment_diff_text_and_aliases(env: GateEnv, tmp_path: Path) -> None:
    _stacks(env, tmp_path)
    result = env.reg.cli("diff", "search-stack@production", "search-stack/2", check=True)
    out = result.stdout
    assert out.startswith("diff search-stack/1 -> search-stack/2 (deployments)\n"), out
    assert out.count("statement verifies with the registry's trust") == 2
    assert "roles: 1 changed, 1 added, 1 removed, 1 same" in out
    for text in ("encoder", "llm", "chat/1", "rerank/1", "ranker/2", "OPS-2", "owner"):
        assert text in out, text
    assert "metadata: 2 differ, 0 the same" in out
    # The changed role's own version diff follows, and no other.
    assert "role ranker:\ndiff ranker/1 -> ranker/2\n" in out
    assert "role encoder:" not in out
    assert "role llm:" not in out
    assert result.stderr == ""
    same = env.reg.cli("diff", "search-stack/2", "search-stack@latest", "--json", check=True)
    shown = json.loads(same.stdout)
    assert shown["right"]["ref"] == "search-stack/3"
    assert {r["change"] for r in shown["roles"]} == {"same"}
    assert {m["change"] for m in shown["metadata"]["entries"]} == {"same"}


def test_deployment_diff_shows_an_untrusted_statement_signer(env: GateEnv, tmp_path: Path) -> None:
    _stacks(env, tmp_path)
    registry = env.reg.registry()
    try:
        third = registry.deployment_version("search-stack/3")
        result = registry.diff("search-stack/2", "search-stack/3")
    finally:
        registry.close()
    assert result.left.statement_verified is True
    assert result.right.statement_verified is False
    assert result.right.signer == third.signer
    [check] = result.right.checks
    assert check.id == "deployment.statement"
    assert check.status.value == "failed"
    assert result.identical
    text = env.reg.cli("diff", "search-stack/2", "search-stack/3", check=True).stdout
    assert "statement does NOT verify with the registry's trust" in text
    assert text.count("statement verifies with the registry's trust") == 1


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("search-stack/1", "credit/1"), 2, "search-stack/1 is a deployment and credit/1"),
        (("credit@latest", "search-stack@production"), 2, "a model version"),
        (("search-stack/1", "search-stack/9"), 4, "search-stack/9 not found"),
        (("search-stack/1", "search-stack@staging"), 4, "search-stack@staging not found"),
    ],
)
def test_deployment_diff_bad_input_is_one_line_and_changes_nothing(
    env: GateEnv, tmp_path: Path, args: tuple[str, ...], code: int, says: str
) -> None:
    _stacks(env, tmp_path)
    before = env.reg.snapshot()
    result = env.reg.cli("diff", *args)
    assert result.returncode == code, result.stderr
    assert says in one_line_error(result.stderr)
    assert result.stdout == ""
    assert env.reg.snapshot() == before
