"""Interop both ways with the reference tool ``model_signing`` (run as its real CLI)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from support.signing import CliResult, Keys, Pki, make_model, one_error_line

Cli = Callable[..., CliResult]
Runner = Callable[..., object]


def _ok(result: object) -> None:
    assert getattr(result, "returncode", None) == 0, (
        f"model_signing failed: {getattr(result, 'stdout', '')} {getattr(result, 'stderr', '')}"
    )


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


# --- model_signing verifies what mlprov signs ------------------------------------------------


@pytest.mark.parametrize("curve", ["p256", "p384"])
def test_model_signing_verifies_mlprov_key_signatures(
    model: Path, keys: Keys, cli: Cli, model_signing_cli: Runner, curve: str
) -> None:
    key = getattr(keys, curve)
    assert cli("sign", model, "--key", key.private, "--quiet").code == 0
    signature = model / "model.sig"
    _ok(model_signing_cli("verify", "key", model, "--signature", signature,
                          "--public_key", key.public))  # fmt: skip
    # ... and it really checks: a changed byte fails there too.
    _flip(model / "config.json")
    result = model_signing_cli("verify", "key", model, "--signature", signature,
                               "--public_key", key.public)  # fmt: skip
    assert getattr(result, "returncode", 0) != 0


def test_model_signing_verifies_mlprov_certificate_signatures(
    model: Path, pki: Pki, cli: Cli, model_signing_cli: Runner
) -> None:
    signed = cli("sign", model, "--key", pki.leaf_key, "--certificate", pki.leaf,
                 "--certificate-chain", pki.intermediate)  # fmt: skip
    assert signed.code == 0, signed.err
    _ok(model_signing_cli("verify", "certificate", model, "--signature", model / "model.sig",
                          "--certificate_chain", pki.root))  # fmt: skip
    signature = model / "model.sig"
    result = model_signing_cli("verify", "certificate", model, "--signature", signature,
                               "--certificate_chain", pki.foreign_root)  # fmt: skip
    assert getattr(result, "returncode", 0) != 0


def test_model_signing_verifies_a_single_file_and_ignored_paths(
    tmp_path: Path, keys: Keys, cli: Cli, model_signing_cli: Runner
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x01" * 4096)
    assert cli("sign", weights, "--key", keys.p256.private).code == 0
    assert (tmp_path / "weights.bin.sig").is_file()
    _ok(model_signing_cli("verify", "key", weights, "--signature", tmp_path / "weights.bin.sig",
                          "--public_key", keys.p256.public))  # fmt: skip

    model = make_model(tmp_path / "m", {"a.bin": b"a", "logs/run.txt": b"l"})
    assert cli("sign", model, "--key", keys.p256.private, "--ignore-paths", "logs").code == 0
    (model / "logs" / "run.txt").write_bytes(b"changed after signing")
    _ok(model_signing_cli("verify", "key", model, "--signature", model / "model.sig",
                          "--public_key", keys.p256.public))  # fmt: skip


# --- mlprov verifies what model_signing signs ------------------------------------------------


def test_mlprov_verifies_model_signing_key_signatures(
    model: Path, keys: Keys, cli: Cli, model_signing_cli: Runner
) -> None:
    signature = model.parent / "ms.sig"
    _ok(model_signing_cli("sign", "key", model, "--signature", signature,
                          "--private_key", keys.p384.private))  # fmt: skip
    result = cli("verify", model, "--signature", signature, "--key", keys.p384.public)
    assert result.code == 0, result.err
    assert "key:" in result.out
    wrong = cli("verify", model, "--signature", signature, "--key", keys.p256.public)
    assert wrong.code == 1
    assert "wrong key" in one_error_line(wrong.err)


def test_mlprov_verifies_model_signing_certificate_signatures(
    model: Path, pki: Pki, cli: Cli, model_signing_cli: Runner
) -> None:
    signature = model.parent / "ms-cert.sig"
    _ok(model_signing_cli("sign", "certificate", model, "--signature", signature,
                          "--private_key", pki.leaf_key, "--signing_certificate", pki.leaf,
                          "--certificate_chain", pki.intermediate))  # fmt: skip
    result = cli("verify", model, "--signature", signature, "--certificate-chain", pki.root)
    assert result.code == 0, result.err
    _flip(model / "weights" / "part-1.bin")
    tampered = cli("verify", model, "--signature", signature, "--certificate-chain", pki.root)
    assert tampered.code == 1
    assert "'weights/part-1.bin' does not match its signed digest" in one_error_line(tampered.err)


def test_mlprov_honours_model_signing_ignore_paths_and_signature_inside(
    tmp_path: Path, keys: Keys, cli: Cli, model_signing_cli: Runner
) -> None:
    model = make_model(tmp_path / "m", {"a.bin": b"a", "scratch/x": b"x"})
    _ok(model_signing_cli("sign", "key", model, "--signature", model / "model.sig",
                          "--ignore-paths", model / "scratch",
                          "--private_key", keys.p256.private))  # fmt: skip
    (model / "scratch" / "y").write_bytes(b"y")
    result = cli("verify", model, "--key", keys.p256.public)
    assert result.code == 0, result.err
    (model / "b.bin").write_bytes(b"b")
    result = cli("verify", model, "--key", keys.p256.public)
    assert result.code == 1
    assert "'b.bin' is in the model but not signed" in one_error_line(result.err)


def test_mlprov_verifies_a_model_signing_single_file(
    tmp_path: Path, keys: Keys, cli: Cli, model_signing_cli: Runner
) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w" * 100)
    signature = tmp_path / "w.sig"
    _ok(model_signing_cli("sign", "key", weights, "--signature", signature,
                          "--private_key", keys.p256.private))  # fmt: skip
    result = cli("verify", weights, "--signature", signature, "--key", keys.p256.public)
    assert result.code == 0, result.err
