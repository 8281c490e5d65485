"""Approvals are signed statements stored as evidence; refusals change nothing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from mlprov.signing import KeyTrust, verify_attestation
from support.registry_env import RegistryEnv, make_model, one_line_error


@pytest.fixture
def approver(reg: RegistryEnv, tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "alice.pem", tmp_path / "alice.pub"
    reg.cli("keys", "generate", "--out", str(private), check=True)
    reg.cli("keys", "public", str(private), "--out", str(public), check=True)
    reg.cli("register", str(make_model(tmp_path / "m")), "--name", "m", "--no-git", check=True)
    return private, public


def test_an_approval_is_signed_stored_and_listed(
    reg: RegistryEnv, approver: tuple[Path, Path]
) -> None:
    result = reg.cli(
        "approve", "m/1", "--for", "production", "--comment", "eval reviewed",
        "--key", str(approver[0]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stage = reg.cli("approve", "m/1", "--for", "stage:production", "--key", str(approver[0]))
    assert stage.returncode == 0, stage.stderr
    listed = reg.cli("approvals", "m/1", "--for", "production", "--json")
    assert listed.returncode == 0, listed.stderr
    [approval] = json.loads(listed.stdout)
    assert (approval["target"], approval["comment"]) == ("production", "eval reviewed")
    registry = reg.registry()
    try:
        version = registry.get_version("m/1")
        assert [e.kind for e in version.evidence] == ["approval", "approval"]
        bundle = registry.evidence_content("m/1", approval["digest"])
        verified = verify_attestation(bundle, KeyTrust(approver[1].read_bytes()))
        assert verified.predicate_type == "https://mlprov.dev/approval/v1"
        assert verified.statement["predicate"]["for"] == "production"
        assert verified.subjects[0][1]["sha256"] == version.digest.partition(":")[2]
        assert [a.target for a in registry.approvals("m/1")] == ["production", "stage:Production"]
        assert registry.audit_log()[-1].action == "evidence.add"
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
    payload = json.loads(bundle)["dsseEnvelope"]["payload"]
    assert json.loads(base64.b64decode(payload))["predicate"]["version"] == "m/1"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["m/9", "--for", "production"], 4, "m/9 not found"),
        (["m/1", "--for", "Prod uction"], 2, "alias"),
        (["m/1", "--for", "stage:Nowhere"], 2, "unknown stage"),
        (["m/1", "--for", "production", "--comment", "x" * 5000], 2, "comment"),
    ],
    ids=["unknown version", "bad alias", "bad stage", "long comment"],
)
def test_a_refused_approval_changes_nothing(
    reg: RegistryEnv, approver: tuple[Path, Path], args: list[str], code: int, words: str
) -> None:
    before = reg.snapshot()
    result = reg.cli("approve", *args, "--key", str(approver[0]))
    assert result.returncode == code, result.stderr
    assert words in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_a_waiver_is_signed_scoped_time_limited_and_loudly_audited(
    reg: RegistryEnv, approver: tuple[Path, Path]
) -> None:
    result = reg.cli(
        "waive", "m/1", "--for", "production", "--reason", "hotfix for incident 42",
        "--expires", "24h", "--requirement", "metrics.auc", "--key", str(approver[0]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [waiver] = json.loads(reg.cli("waivers", "m/1", "--json", check=True).stdout)
    assert (waiver["target"], waiver["requirements"]) == ("production", ["metrics.auc"])
    assert waiver["reason"] == "hotfix for incident 42"
    registry = reg.registry()
    try:
        entry = registry.audit_log()[-1]
        assert (entry.action, entry.subject, entry.reason) == (
            "waiver.grant",
            "m/1",
            "hotfix for incident 42",
        )
        assert json.loads(entry.details)["expires"] == waiver["expires"]
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--expires", "31d"], "at most 30 days"),
        (["--expires", "forever"], "is not a duration"),
        (["--expires", "0h"], "is not a duration longer than zero"),
    ],
)
def test_a_refused_waiver_changes_nothing(
    reg: RegistryEnv, approver: tuple[Path, Path], args: list[str], words: str
) -> None:
    before = reg.snapshot()
    result = reg.cli(
        "waive", "m/1", "--for", "production", "--reason", "r", *args, "--key", str(approver[0])
    )
    assert result.returncode == 2, result.stderr
    assert words in one_line_error(result.stderr)
    assert reg.snapshot() == before
