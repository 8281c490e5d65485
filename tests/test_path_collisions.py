"""Paths that are one file on macOS or Windows (NFC/NFD, case) are refused: found by the
pure check, and refused by ``mlprov verify`` (exit 1) in a signature made by the
reference tool or by mlprov's own signing code. (Sign and register: test_bad_input.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlprov.manifest import Digest, FileEntry, Manifest, PathCollision, find_path_collision
from mlprov.signing import (
    KeySigner,
    build_statement,
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
)
from support.registry_env import make_model, one_line_error

NFC, NFD = "caf\u00e9.bin", "cafe\u0301.bin"


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        pytest.param([NFC, NFD], PathCollision(NFD, NFC, "unicode-normalisation"), id="nfc-nfd"),
        pytest.param(
            ["Model.bin", "model.bin"], PathCollision("Model.bin", "model.bin", "case"), id="case"
        ),
        pytest.param(
            ["Data/a", "data/b"], PathCollision("Data", "data", "case"), id="folders differ"
        ),
        pytest.param(
            [f"x/{NFC}", f"x/{NFD.upper()}"],
            PathCollision(f"x/{NFD.upper()}", f"x/{NFC}", "case"),
            id="nfd-and-case",
        ),
        pytest.param(
            ["STRASSE", "stra\u00dfe"],
            PathCollision("STRASSE", "stra\u00dfe", "case"),
            id="sharp s",
        ),
        pytest.param(["a/b", "a/c", "ab", "\u00e9"], None, id="distinct"),
        pytest.param(["data", "data.bin"], None, id="prefix of a name is not a folder"),
    ],
)
def test_find_path_collision(paths: list[str], expected: PathCollision | None) -> None:
    assert find_path_collision(paths) == expected
    assert find_path_collision(reversed(paths)) == expected


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "k.pem"
    private.write_bytes(generate_private_key_pem())
    public = tmp_path / "k.pub"
    public.write_bytes(public_key_pem(load_private_key(private.read_bytes()).public_key()))
    return private, public


def _mlprov(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlprov", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


COLLIDING = {
    "nfc-nfd": ({NFC: b"NFC", NFD: b"NFD"}, "only in Unicode normalisation"),
    "case": ({"Model.bin": b"upper", "model.bin": b"lower"}, "only in upper/lower case"),
}


@pytest.mark.parametrize(("files", "word"), COLLIDING.values(), ids=COLLIDING.keys())
def test_verify_refuses_a_reference_signature_over_colliding_paths(
    tmp_path: Path, files: dict[str, bytes | str], word: str
) -> None:
    pytest.importorskip("model_signing", reason="the reference tool model_signing is needed")
    private, public = _keys(tmp_path)
    model = make_model(tmp_path / "model", files)
    signature = tmp_path / "model.sig"
    signed = subprocess.run(
        [
            *(sys.executable, "-m", "model_signing", "sign", "key", str(model)),
            *("--private_key", str(private), "--signature", str(signature)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    result = _mlprov("verify", model, "--signature", signature, "--key", public)
    assert result.returncode == 1, result.stderr
    assert word in one_line_error(result.stderr)


@pytest.mark.parametrize(("files", "word"), COLLIDING.values(), ids=COLLIDING.keys())
def test_verify_refuses_an_mlprov_signature_over_colliding_paths(
    tmp_path: Path, files: dict[str, bytes], word: str
) -> None:
    # Built with the signing code directly: the listing that refuses such folders is skipped.
    private, public = _keys(tmp_path)
    model = make_model(tmp_path / "model", dict(files))
    manifest = Manifest.of(
        "sha256",
        [FileEntry(name, Digest.of_bytes(data), len(data)) for name, data in files.items()],
    )
    signer = KeySigner.from_pem(private.read_bytes())
    signature = tmp_path / "model.sig"
    signature.write_bytes(signer.sign(build_statement(manifest, "model")).bundle)
    result = _mlprov("verify", model, "--signature", signature, "--key", public)
    assert result.returncode == 1, result.stderr
    assert word in one_line_error(result.stderr)
