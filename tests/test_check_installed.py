"""`mlprov check-installed`: an installed copy is ready until any of its bytes, files or
times change; fast mode from the install record, full mode by re-hashing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlprov.cli import _run_typer, main
from mlprov.errors import InvalidInputError, MlprovError, VerificationError
from mlprov.serving import INSTALL_RECORD_NAME, check_installed, install_record
from support.registry_env import RegistryEnv, make_model, one_line_error
from support.serving_env import ServingEnv, serving_env


@pytest.fixture
def installed(reg: RegistryEnv, tmp_path: Path) -> Path:
    """``m@production`` pulled to ``tmp_path/installed`` (a three-file model)."""
    served: ServingEnv = serving_env(reg, tmp_path)
    registry = reg.registry()
    try:
        model = make_model(tmp_path / "three")
        number = registry.sign_and_register(
            model, "m", served.gate.signer("trainer"), write_signature=False
        ).version.version
        registry.set_alias("m", "production", number)
        registry.pull("m@production", tmp_path / "installed")
    finally:
        registry.close()
    return tmp_path / "installed"


def _flip_byte(folder: Path) -> None:
    path = folder / "weights" / "part-0.bin"
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_byte_keeping_mtime(folder: Path) -> None:
    path = folder / "weights" / "part-0.bin"
    info = path.stat()
    _flip_byte(folder)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def _touch(folder: Path) -> None:
    path = folder / "config.json"
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))


def _truncate(folder: Path) -> None:
    (folder / "config.json").write_bytes(b"{}")


def _remove(folder: Path) -> None:
    (folder / "weights" / "part-1.bin").unlink()


def _add(folder: Path) -> None:
    (folder / "weights" / "extra.bin").write_bytes(b"x")


def _add_symlink(folder: Path) -> None:
    (folder / "linked.bin").symlink_to(folder / "config.json")


def _resign(folder: Path) -> None:
    path = folder / "model.sig"
    path.write_bytes(path.read_bytes() + b" ")


def _drop_record(folder: Path) -> None:
    (folder / INSTALL_RECORD_NAME).unlink()


# (case, change, fast exit, full exit, file named by the fast / full check)
CASES: list[tuple[str, Callable[[Path], None], int, int, str]] = [
    ("changed byte", _flip_byte, 1, 1, "weights/part-0.bin"),
    ("changed byte, mtime restored", _flip_byte_keeping_mtime, 0, 1, "weights/part-0.bin"),
    ("touched mtime", _touch, 1, 0, "config.json"),
    ("truncated", _truncate, 1, 1, "config.json"),
    ("removed file", _remove, 1, 1, "weights/part-1.bin"),
    ("added file", _add, 1, 1, "weights/extra.bin"),
    ("added symlink", _add_symlink, 1, 1, "linked.bin"),
    ("signature changed", _resign, 1, 1, "model.sig"),
    ("record removed", _drop_record, 1, 0, INSTALL_RECORD_NAME),
]


def test_a_fresh_install_is_ready_in_both_modes(installed: Path) -> None:
    names = sorted(p.relative_to(installed).as_posix() for p in installed.rglob("*"))
    assert INSTALL_RECORD_NAME in names
    fast = check_installed(installed)
    full = check_installed(installed, full=True)
    assert (fast.files, full.files) == (3, 3)
    assert (fast.full, full.full) == (False, True)
    record = json.loads((installed / INSTALL_RECORD_NAME).read_text())
    assert sorted(f["path"] for f in record["files"]) == [
        "config.json",
        "model.sig",
        "weights/part-0.bin",
        "weights/part-1.bin",
    ]


@pytest.mark.parametrize(
    ("case", "change", "fast", "full", "named"), CASES, ids=[c[0] for c in CASES]
)
def test_each_change_is_caught_by_the_mode_that_can_see_it(
    installed: Path,
    tmp_path: Path,
    case: str,
    change: Callable[[Path], None],
    fast: int,
    full: int,
    named: str,
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(installed, copy, symlinks=True)  # copy2 keeps mtimes to the nanosecond
    check_installed(copy)  # the copy is an identical install
    change(copy)
    for is_full, expected in ((False, fast), (True, full)):
        if expected == 0:
            assert check_installed(copy, full=is_full).path == copy
            continue
        with pytest.raises(VerificationError) as caught:
            check_installed(copy, full=is_full)
        assert caught.value.exit_code == 1
        assert named in caught.value.message, (case, is_full, caught.value.message)


def test_cli_exit_codes_ready_changed_and_bad_input(
    installed: Path, reg: RegistryEnv, tmp_path: Path
) -> None:
    ready = reg.cli("check-installed", str(installed))
    assert ready.returncode == 0, ready.stderr
    assert ready.stdout.startswith("ready: ")
    as_json = json.loads(reg.cli("check-installed", str(installed), "--full", "--json").stdout)
    assert (as_json["ready"], as_json["mode"], as_json["files"]) == (True, "full", 3)

    _remove(installed)
    for extra in ([], ["--full"]):
        changed = reg.cli("check-installed", str(installed), *extra)
        assert changed.returncode == 1
        assert "weights/part-1.bin" in one_line_error(changed.stderr)

    empty = tmp_path / "empty"
    empty.mkdir()
    plain = make_model(tmp_path / "plain")
    for folder in (tmp_path / "missing", empty, plain):
        for extra in ([], ["--full"]):
            bad = reg.cli("check-installed", str(folder), *extra)
            assert bad.returncode == 2, (folder, extra, bad.stderr)
            one_line_error(bad.stderr)


def test_a_single_file_model_is_checked_too(reg: RegistryEnv, tmp_path: Path) -> None:
    served = serving_env(reg, tmp_path)
    registry = reg.registry()
    try:
        single = tmp_path / "one.bin"
        single.write_bytes(b"\x01" * 2048)
        number = registry.sign_and_register(
            single, "m", served.gate.signer("trainer"), write_signature=False
        ).version.version
        registry.set_alias("m", "production", number)
        registry.pull("m@production", tmp_path / "out")
    finally:
        registry.close()
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [INSTALL_RECORD_NAME, "one.bin", "one.bin.sig"]
    assert check_installed(out, full=True).files == 1
    (out / "one.bin").write_bytes(b"\x02" * 2048)
    with pytest.raises(VerificationError, match=r"one\.bin"):
        check_installed(out)
    with pytest.raises(VerificationError):
        check_installed(out, full=True)


def test_a_pulled_folder_still_verifies_with_mlprov_verify(
    installed: Path, reg: RegistryEnv, tmp_path: Path
) -> None:
    """The install record is not part of the model: `mlprov verify DIR` ignores it."""
    public = tmp_path / "policies" / "keys" / "trainer.pub"
    result = reg.cli(
        "verify", str(installed), "--signature", str(installed / "model.sig"), "--key", str(public)
    )
    assert result.returncode == 0, result.stderr


def test_the_reference_tool_accepts_a_pulled_folder_told_to_ignore_the_record(
    installed: Path, tmp_path: Path
) -> None:
    pytest.importorskip("model_signing", reason="the reference tool model_signing is needed")
    public = tmp_path / "policies" / "keys" / "trainer.pub"
    command = [
        sys.executable, "-m", "model_signing", "verify", "key", str(installed),
        "--signature", str(installed / "model.sig"), "--public_key", str(public),
    ]  # fmt: skip
    ignoring = [*command, "--ignore-paths", str(installed / INSTALL_RECORD_NAME)]
    accepted = subprocess.run(ignoring, capture_output=True, text=True, check=False, timeout=120)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    refused = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert refused.returncode != 0  # the record is an extra file to it


def test_not_a_folder_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InvalidInputError):
        check_installed(tmp_path / "file")


def _typer_only(args: list[str]) -> int:
    """What main() does, minus the fast path."""
    try:
        return _run_typer(args)
    except MlprovError as e:
        print(f"mlprov: error: {e.message}", file=sys.stderr)
        return e.exit_code


@pytest.mark.parametrize("case", ["ready", "json", "full", "changed", "not-a-folder", "help"])
def test_the_probe_fast_path_matches_typer(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A readiness probe runs `check-installed DIR` every few seconds: it skips Typer's
    start-up, and says and exits exactly what the Typer command does."""
    key = tmp_path / "k.pem"
    assert main(["keys", "generate", "--out", str(key)]) == 0
    model = make_model(tmp_path / "model")
    assert main(["sign", str(model), "--key", str(key), "--quiet"]) == 0
    signature = (model / "model.sig").read_bytes()
    (model / INSTALL_RECORD_NAME).write_bytes(install_record(model, "model.sig", signature))
    if case == "changed":
        _truncate(model)
    target = str(tmp_path / "nowhere") if case == "not-a-folder" else str(model)
    extra = {"json": ["--json"], "full": ["--full"], "help": ["--help"]}.get(case, [])
    args = ["check-installed", target, *extra]
    capsys.readouterr()
    fast = (main(args), *capsys.readouterr())
    slow = (_typer_only(args), *capsys.readouterr())
    assert fast == slow
    expected = {"changed": 1, "not-a-folder": 2}.get(case, 0)
    assert fast[0] == expected, fast
