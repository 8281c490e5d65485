"""The ``mlprov keys``, ``mlprov sign`` and ``mlprov verify`` commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.signing import CliResult, Keys, Pki, one_error_line, subprocess_env

Cli = Callable[..., CliResult]
Runner = Callable[..., object]


@pytest.fixture
def passphrase() -> Iterator[str]:
    os.environ["MLPROV_TEST_PASSPHRASE"] = "correct horse"
    os.environ["MLPROV_TEST_WRONG"] = "wrong horse"
    yield "MLPROV_TEST_PASSPHRASE"
    del os.environ["MLPROV_TEST_PASSPHRASE"]
    del os.environ["MLPROV_TEST_WRONG"]


# --- mlprov keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(("curve", "marker"), [("p256", "MFkw"), ("p384", "MHYw")])
def test_keys_generate_and_public(tmp_path: Path, cli: Cli, curve: str, marker: str) -> None:
    key = tmp_path / "k.pem"
    result = cli("keys", "generate", "--out", key, "--curve", curve, "--json")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert info["curve"] == curve
    assert info["encrypted"] is False
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    printed = cli("keys", "public", key)
    assert printed.code == 0
    assert printed.out.startswith("-----BEGIN PUBLIC KEY-----\n" + marker)
    assert cli("keys", "public", key, "--out", tmp_path / "k.pub").code == 0
    assert (tmp_path / "k.pub").read_text() == printed.out


def test_keys_generate_never_overwrites(tmp_path: Path, cli: Cli) -> None:
    key = tmp_path / "k.pem"
    assert cli("keys", "generate", "--out", key).code == 0
    before = key.read_bytes()
    result = cli("keys", "generate", "--out", key)
    assert result.code == 3
    assert "already exists" in one_error_line(result.err)
    assert key.read_bytes() == before


def test_keys_generate_refuses_an_unknown_curve(tmp_path: Path, cli: Cli) -> None:
    result = cli("keys", "generate", "--out", tmp_path / "k.pem", "--curve", "p224")
    assert result.code == 2
    assert "unsupported curve 'p224'" in one_error_line(result.err)
    assert not (tmp_path / "k.pem").exists()


def test_encrypted_keys_need_their_passphrase(
    tmp_path: Path, cli: Cli, model: Path, passphrase: str
) -> None:
    key = tmp_path / "k.pem"
    assert cli("keys", "generate", "--out", key, "--passphrase-env", passphrase).code == 0
    assert b"ENCRYPTED" in key.read_bytes()
    missing = cli("keys", "public", key)
    assert missing.code == 2
    assert "is encrypted; give its passphrase with --passphrase-env" in one_error_line(missing.err)
    wrong = cli("keys", "public", key, "--passphrase-env", "MLPROV_TEST_WRONG")
    assert wrong.code == 2
    assert "wrong passphrase" in one_error_line(wrong.err)
    unset = cli("keys", "public", key, "--passphrase-env", "MLPROV_TEST_UNSET")
    assert unset.code == 2
    assert "MLPROV_TEST_UNSET (--passphrase-env) is not set" in one_error_line(unset.err)
    public = tmp_path / "k.pub"
    assert cli("keys", "public", key, "--passphrase-env", passphrase, "--out", public).code == 0
    signed = cli("sign", model, "--key", key, "--passphrase-env", passphrase)
    assert signed.code == 0, signed.err
    assert cli("verify", model, "--key", public).code == 0


# --- mlprov sign / verify --------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "blake2b", "blake3"])
def test_sign_and_verify_json(model: Path, keys: Keys, cli: Cli, algorithm: str) -> None:
    signed = cli("sign", model, "--key", keys.p256.private, "--hash", algorithm, "--json")
    assert signed.code == 0, signed.err
    info = json.loads(signed.out)
    assert info["signature"] == str(model / "model.sig")
    assert info["hash_algorithm"] == algorithm
    assert info["files"] == 3
    assert info["signer"]["method"] == "key"
    verified = cli("verify", model, "--key", keys.p256.public, "--json")
    assert verified.code == 0, verified.err
    report = json.loads(verified.out)
    assert report["verified"] is True
    assert report["digest"] == info["digest"]
    assert report["hash_algorithm"] == algorithm
    assert all(check["passed"] for check in report["checks"])


def test_verify_json_reports_the_failed_check(model: Path, keys: Keys, cli: Cli) -> None:
    assert cli("sign", model, "--key", keys.p256.private).code == 0
    (model / "config.json").write_text("{}")
    result = cli("verify", model, "--key", keys.p256.public, "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["verified"] is False
    assert report["exit_code"] == 1
    assert report["checks"][-1]["name"] == "files"
    assert report["checks"][-1]["passed"] is False
    assert "'config.json' does not match" in one_error_line(result.err)


def test_single_file_model_signature_goes_beside_it(tmp_path: Path, keys: Keys, cli: Cli) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x00" * 1000)
    assert cli("sign", weights, "--key", keys.p256.private).code == 0
    assert (tmp_path / "model.safetensors.sig").is_file()
    assert cli("verify", weights, "--key", keys.p256.public).code == 0
    weights.write_bytes(b"\x01" * 1000)
    result = cli("verify", weights, "--key", keys.p256.public)
    assert result.code == 1
    assert "does not match its signed digest" in one_error_line(result.err)


def test_certificate_signing_from_the_cli(model: Path, pki: Pki, cli: Cli) -> None:
    signed = cli("sign", model, "--key", pki.leaf_key, "--certificate", pki.leaf,
                 "--certificate-chain", pki.intermediate, "--json")  # fmt: skip
    assert signed.code == 0, signed.err
    assert json.loads(signed.out)["signer"]["subject"] == "CN=model signer"
    assert cli("verify", model, "--certificate-chain", pki.root).code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "say how to sign", id="no-signer"),
        pytest.param(["--certificate", "{leaf}"], "say how to sign", id="certificate-no-key"),
        pytest.param(["--key", "{key}", "--sigstore"], "--sigstore signs keylessly", id="both"),
        pytest.param(["--key", "{key}", "--identity-token", "t"], "only for --sigstore",
                     id="token-without-sigstore"),
        pytest.param(["--key", "{key}", "--certificate-chain", "{root}"], "needs --certificate",
                     id="chain-without-certificate"),
        pytest.param(["--key", "{key}", "--certificate", "{foreign}"], "does not match",
                     id="certificate-of-another-key"),
        pytest.param(["--key", "{pub}"], "not a PEM private key", id="public-key-to-sign"),
        pytest.param(["--key", "{rsa}"], "RSA 2048", id="rsa-key"),
        pytest.param(["--key", "{key}", "--hash", "md5"], "unsupported digest algorithm 'md5'",
                     id="md5"),
        pytest.param(["--key", "{key}", "--ignore-paths", "../x"], "inside the model folder",
                     id="escaping-ignore-path"),
        pytest.param(["--sigstore", "--identity-token", "not-a-jwt"], "identity token",
                     id="sigstore-bad-token"),
    ],
)  # fmt: skip
def test_sign_refuses_bad_options_with_exit_2(
    model: Path, keys: Keys, pki: Pki, cli: Cli, args: list[str], message: str
) -> None:
    filled = [
        a.format(
            key=keys.p256.private, pub=keys.p256.public, rsa=keys.rsa.private,
            leaf=pki.leaf, root=pki.root, foreign=pki.foreign_leaf,
        )
        for a in args
    ]  # fmt: skip
    result = cli("sign", model, *filled)
    assert result.code == 2, result.err
    assert message in one_error_line(result.err)
    assert not (model / "model.sig").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "say what to trust, once", id="no-trust"),
        pytest.param(["--key", "{pub}", "--certificate-chain", "{root}"], "say what to trust",
                     id="two-trusts"),
        pytest.param(["--identity", "a@b.c"], "needs both --identity and --issuer",
                     id="identity-without-issuer"),
        pytest.param(["--key", "{key}"], "this is a private key", id="private-key-as-trust"),
        pytest.param(["--certificate-chain", "{pub}"], "no PEM certificate", id="not-a-cert"),
    ],
)  # fmt: skip
def test_verify_refuses_bad_trust_options_with_exit_2(
    model: Path, keys: Keys, pki: Pki, cli: Cli, args: list[str], message: str
) -> None:
    assert cli("sign", model, "--key", keys.p256.private).code == 0
    filled = [a.format(key=keys.p256.private, pub=keys.p256.public, root=pki.root) for a in args]
    result = cli("verify", model, *filled)
    assert result.code == 2, result.err
    assert message in one_error_line(result.err)


def test_missing_things_are_not_found(tmp_path: Path, model: Path, keys: Keys, cli: Cli) -> None:
    result = cli("verify", tmp_path / "no-such-model", "--key", keys.p256.public)
    assert result.code == 4
    one_error_line(result.err)
    result = cli("verify", model, "--key", keys.p256.public)
    assert result.code == 4
    assert "model.sig: no such file" in one_error_line(result.err)
    result = cli("sign", tmp_path / "no-such-model", "--key", keys.p256.private)
    assert result.code == 4
    one_error_line(result.err)


# --- real processes ---------------------------------------------------------------------------


def test_a_real_process_exits_1_with_one_line(model: Path, keys: Keys, mlprov_cli: Runner) -> None:
    signed = mlprov_cli("sign", model, "--key", keys.p256.private, "--quiet")
    assert getattr(signed, "returncode", None) == 0, getattr(signed, "stderr", "")
    assert getattr(mlprov_cli("verify", model, "--key", keys.p256.public), "returncode", None) == 0
    (model / "weights" / "part-0.bin").write_bytes(b"swapped")
    result = mlprov_cli("verify", model, "--key", keys.p256.public)
    assert getattr(result, "returncode", None) == 1
    line = one_error_line(str(getattr(result, "stderr", "")))
    assert "'weights/part-0.bin' does not match its signed digest" in line


def test_verifying_with_a_key_imports_nothing_heavy(model: Path, keys: Keys, cli: Cli) -> None:
    assert cli("sign", model, "--key", keys.p256.private).code == 0
    child = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlprov.cli", "verify", str(model),
         "--key", str(keys.p256.public)],
        capture_output=True, text=True, env=subprocess_env(), check=False, timeout=60,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    imported = {line.split("|")[-1].strip() for line in child.stderr.splitlines() if "|" in line}
    for heavy in ("sigstore", "sqlalchemy", "alembic", "psycopg", "cryptography.x509"):
        assert heavy not in imported, f"verify --key imported {heavy}"
    assert "mlprov.signing" in imported
