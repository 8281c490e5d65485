"""mlprov sign --name and mlprov verify REF: signing inside the registry, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlprov.refs import ModelRef
from support.registry_env import RegistryEnv, make_model, one_line_error


@pytest.fixture
def keypair(reg: RegistryEnv, tmp_path: Path) -> tuple[Path, Path]:
    key, public = tmp_path / "k.pem", tmp_path / "k.pub"
    reg.cli("keys", "generate", "--out", str(key), check=True)
    reg.cli("keys", "public", str(key), "--out", str(public), check=True)
    return key, public


@pytest.fixture
def signed_model(reg: RegistryEnv, tmp_path: Path, keypair: tuple[Path, Path]) -> Path:
    model = make_model(tmp_path / "model")
    result = reg.cli(
        "sign",
        str(model),
        "--key",
        str(keypair[0]),
        "--name",
        "clf",
        "--no-git",
        "--param",
        "lr=0.1",
        "--metric",
        "auc=0.9",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ref"] == "clf/1"
    assert [e["kind"] for e in document["evidence"]] == [
        "signature",
        "provenance",
        "bom",
        "model-card",
    ]
    return model


def test_signature_file_is_the_stored_bytes_and_the_reference_tool_accepts_it(
    reg: RegistryEnv, signed_model: Path, keypair: tuple[Path, Path]
) -> None:
    registry = reg.registry()
    try:
        stored = registry.signature_of("clf/1")
        manifest = registry.manifest("clf/1")
    finally:
        registry.close()
    assert (signed_model / "model.sig").read_bytes() == stored
    assert "model.sig" not in {entry.path for entry in manifest}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_signing",
            "verify",
            "key",
            str(signed_model),
            "--signature",
            str(signed_model / "model.sig"),
            "--public_key",
            str(keypair[1]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_verify_registered_version_stored_and_local(
    reg: RegistryEnv, signed_model: Path, keypair: tuple[Path, Path]
) -> None:
    ok = reg.cli("verify", "clf/1", "--key", str(keypair[1]), "--json")
    assert ok.returncode == 0, ok.stderr
    checks = {c["name"]: c["passed"] for c in json.loads(ok.stdout)["checks"]}
    assert checks == {
        "bundle": True,
        "trust": True,
        "key": True,
        "signature": True,
        "statement": True,
        "registry": True,
        "files": True,
        "evidence": True,
    }
    local = reg.cli("verify", "clf@latest", "--key", str(keypair[1]), "--path", str(signed_model))
    assert local.returncode == 0, local.stderr


def test_verify_registered_failures_exit_1_and_change_nothing(
    reg: RegistryEnv, signed_model: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    other_key, other_pub = tmp_path / "o.pem", tmp_path / "o.pub"
    reg.cli("keys", "generate", "--out", str(other_key), check=True)
    reg.cli("keys", "public", str(other_key), "--out", str(other_pub), check=True)
    before = reg.snapshot()

    wrong = reg.cli("verify", "clf/1", "--key", str(other_pub))
    assert wrong.returncode == 1
    assert "wrong key" in one_line_error(wrong.stderr)

    weights = signed_model / "weights" / "part-0.bin"
    weights.write_bytes(b"\xff" + weights.read_bytes()[1:])
    tampered = reg.cli("verify", "clf/1", "--key", str(keypair[1]), "--path", str(signed_model))
    assert tampered.returncode == 1
    line = one_line_error(tampered.stderr)
    assert "weights/part-0.bin" in line
    assert "expected sha256" in line

    # A blob corrupted inside the artefact store is caught when verifying stored bytes.
    registry = reg.registry()
    try:
        blob = registry.version_files(ModelRef("clf", version=1))[0].blob
    finally:
        registry.close()
    path = reg.home / "blobs" / "sha256" / blob[:2] / blob
    os.chmod(path, 0o644)
    path.write_bytes(b"corrupted")
    corrupt = reg.cli("verify", "clf/1", "--key", str(keypair[1]))
    assert corrupt.returncode == 1
    assert "corrupt" in one_line_error(corrupt.stderr)
    after = reg.snapshot()
    assert after == before


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--name", "Bad Name"], 2, "invalid model name"),
        (["--name", "ok", "--parent", "missing/1"], 4, "model 'missing' not found"),
        (["--name", "ok", "--commit", "abc"], 2, "invalid commit"),
        (["--name", "ok", "--metric", "auc=nan"], 2, "metric"),
        (["--name", "ok", "--key", "/nonexistent.pem"], 4, "nonexistent.pem"),
    ],
)
def test_sign_and_register_bad_input_changes_nothing(
    reg: RegistryEnv,
    tmp_path: Path,
    keypair: tuple[Path, Path],
    args: list[str],
    code: int,
    needle: str,
) -> None:
    model = make_model(tmp_path / "fresh")
    before = reg.snapshot()
    key_args = [] if "--key" in args else ["--key", str(keypair[0])]
    result = reg.cli("sign", str(model), *key_args, "--no-git", *args)
    assert result.returncode == code, result.stderr
    assert needle in one_line_error(result.stderr)
    assert reg.snapshot() == before
    assert not (model / "model.sig").exists()
    assert not any(p.name.startswith(".model.sig") for p in model.iterdir())
