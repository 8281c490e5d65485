"""Helpers shared by the signing tests: paths, key/PKI records, model builder, CLI runners."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"

RELEASE_IDENTITY = "stefanb@us.ibm.com"
RELEASE_ISSUER = "https://sigstore.verify.ibm.com/oauth2"


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path


@dataclass(frozen=True)
class Keys:
    p256: KeyFiles
    p256_other: KeyFiles
    p384: KeyFiles
    rsa: KeyFiles
    ed25519: KeyFiles


@dataclass(frozen=True)
class Pki:
    """PEM files of a test PKI."""

    root: Path
    intermediate: Path
    leaf: Path
    leaf_key: Path
    expired_leaf: Path
    expired_key: Path
    expired_signing_time: datetime
    foreign_root: Path
    foreign_leaf: Path
    foreign_key: Path
    impostor_intermediate: Path
    impostor_leaf: Path
    impostor_key: Path


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def make_model(folder: Path, files: dict[str, bytes] | None = None) -> Path:
    """A small model folder; default three files in two folders."""
    files = files or {
        "config.json": b'{"layers": 2}\n',
        "weights/part-0.bin": bytes(range(256)) * 64,
        "weights/part-1.bin": b"\x07" * 5000,
    }
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder


def subprocess_env() -> dict[str, str]:
    """The environment for child processes: this checkout's src first, no MLPROV_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPROV_")}
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def one_error_line(err: str) -> str:
    """The single ``mlprov: error: ...`` line the CLI printed (and no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("mlprov: error: "), err
    return lines[0]
