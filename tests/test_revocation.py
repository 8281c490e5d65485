"""Revocations of versions, keys and identities: signed, audited, refusals change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlprov.signing import KeyTrust, key_hint, load_public_key, verify_attestation
from support.registry_env import RegistryEnv, make_model, one_line_error


@pytest.fixture
def admin(reg: RegistryEnv, tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "admin.pem", tmp_path / "admin.pub"
    reg.cli("keys", "generate", "--out", str(private), check=True)
    reg.cli("keys", "public", str(private), "--out", str(public), check=True)
    reg.cli("register", str(make_model(tmp_path / "m")), "--name", "m", "--no-git", check=True)
    return private, public


def test_versions_keys_and_identities_are_revoked_signed_and_audited(
    reg: RegistryEnv, admin: tuple[Path, Path], tmp_path: Path
) -> None:
    other = tmp_path / "leaked.pem"
    reg.cli("keys", "generate", "--out", str(other), check=True)
    reg.cli("keys", "public", str(other), "--out", str(tmp_path / "leaked.pub"), check=True)
    sign = ["--signing-key", str(admin[0])]
    cases = [
        ["revoke", "m/1", "--reason", "trained on the wrong data", *sign],
        ["revoke", "--key", str(tmp_path / "leaked.pub"), "--reason", "leaked", *sign],
        ["revoke", "--identity", "mallory@example.com", "--reason", "left", *sign],
    ]
    for args in cases:
        result = reg.cli(*args)
        assert result.returncode == 0, result.stderr
    listed = json.loads(reg.cli("revocations", "--json", check=True).stdout)
    hint = key_hint(load_public_key((tmp_path / "leaked.pub").read_bytes()))
    assert [(r["kind"], r["value"]) for r in listed] == [
        ("version", "m/1"),
        ("key", hint),
        ("identity", "mallory@example.com"),
    ]
    registry = reg.registry()
    try:
        entries = registry.audit_log()[-3:]
        assert [(e.action, e.subject) for e in entries] == [
            ("revocation.add", "m/1"),
            ("revocation.add", f"key:{hint}"),
            ("revocation.add", "identity:mallory@example.com"),
        ]
        assert entries[0].reason == "trained on the wrong data"
        [first, *_] = registry.revocations()
        verified = verify_attestation(first.bundle, KeyTrust(admin[1].read_bytes()))
        assert verified.predicate_type == "https://mlprov.dev/revocation/v1"
        assert verified.statement["predicate"]["value"] == "m/1"
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["m/1", "--reason", "again"], 3, "already revoked"),
        (["m/9", "--reason", "x"], 4, "m/9 not found"),
        (["m/1"], 2, "reason"),
        (["--reason", "nothing named"], 2, "exactly one"),
        (["m/1", "--identity", "a@b", "--reason", "two"], 2, "exactly one"),
        (["--key", "missing.pub", "--reason", "x"], 4, "no such key file"),
    ],
    ids=["twice", "unknown version", "no reason", "nothing", "two things", "missing key"],
)
def test_a_refused_revocation_changes_nothing(
    reg: RegistryEnv, admin: tuple[Path, Path], args: list[str], code: int, words: str
) -> None:
    reg.cli("revoke", "m/1", "--reason", "first", "--signing-key", str(admin[0]), check=True)
    before = reg.snapshot()
    result = reg.cli("revoke", *args, "--signing-key", str(admin[0]))
    assert result.returncode == code, result.stderr
    assert words in one_line_error(result.stderr)
    assert reg.snapshot() == before
