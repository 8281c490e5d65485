"""The CLI's own contract: usage errors are one line with exit 2, and the fast path for
``verify PATH --key`` / ``sign PATH --key`` behaves exactly like the Typer commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlprov.cli import _run_typer, main
from mlprov.cli._direct import (
    _SIGN_FLAGS,
    _SIGN_VALUES,
    _VERIFY_FLAGS,
    _VERIFY_VALUES,
    _simple_form,
)
from mlprov.errors import MlprovError
from support.registry_env import make_model, one_line_error


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["verify", "--bogus"], "No such option: --bogus"),
        (["models", "list", "--bogus"], "No such option: --bogus"),
        (["alias", "set", "demo"], "Missing argument"),
        (["nosuchcommand"], "No such command"),
        (["register", "somewhere"], "Missing option '--name'"),
        (["stage", "set", "demo", "one", "Production"], "Invalid value for 'version'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    line = one_line_error(captured.err)
    assert needle in line
    assert "--help" in line


def test_bare_group_shows_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alias"]) == 2
    assert "Usage: mlprov alias" in capsys.readouterr().out


def _typer_only(args: list[str]) -> int:
    """What main() does, minus the fast path."""
    try:
        return _run_typer(args)
    except MlprovError as e:
        print(f"mlprov: error: {e.message}", file=sys.stderr)
        return e.exit_code


@pytest.fixture
def signed_model(tmp_path: Path) -> tuple[Path, Path, Path]:
    key, public = tmp_path / "k.pem", tmp_path / "k.pub"
    assert main(["keys", "generate", "--out", str(key)]) == 0
    assert main(["keys", "public", str(key), "--out", str(public)]) == 0
    model = make_model(tmp_path / "model")
    assert main(["sign", str(model), "--key", str(key), "--quiet"]) == 0
    return model, key, public


def _run(
    runner: Callable[[list[str]], int], args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = runner(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "case",
    [
        "verify-ok",
        "verify-json",
        "verify-wrong-key",
        "verify-tampered",
        "verify-missing-signature",
        "verify-bad-key-file",
        "sign-other-signature",
        "sign-blake3-json",
    ],
)
def test_fast_path_matches_typer(
    case: str,
    signed_model: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, key, public = signed_model
    other = tmp_path / "other.pem"
    other_pub = tmp_path / "other.pub"
    assert main(["keys", "generate", "--out", str(other)]) == 0
    assert main(["keys", "public", str(other), "--out", str(other_pub)]) == 0
    capsys.readouterr()
    commands = {
        "verify-ok": ["verify", str(model), "--key", str(public)],
        "verify-json": ["verify", str(model), "--key", str(public), "--json"],
        "verify-wrong-key": ["verify", str(model), "--key", str(other_pub)],
        "verify-tampered": ["verify", str(model), "--key", str(public)],
        "verify-missing-signature": [
            "verify",
            str(model),
            "--key",
            str(public),
            "--signature",
            str(tmp_path / "none.sig"),
        ],
        "verify-bad-key-file": ["verify", str(model), "--key", str(model / "config.json")],
        "sign-other-signature": [
            "sign",
            str(model),
            "--key",
            str(key),
            "--signature",
            str(tmp_path / "out.sig"),
            "-q",
        ],
        "sign-blake3-json": [
            "sign",
            str(model),
            "--key",
            str(key),
            "--hash",
            "blake3",
            "--signature",
            str(tmp_path / "b3.sig"),
            "--json",
        ],
    }
    args = commands[case]
    if case == "verify-tampered":
        (model / "config.json").write_text('{"layers": 3}\n')
    values, flags = (
        (_VERIFY_VALUES, _VERIFY_FLAGS) if args[0] == "verify" else (_SIGN_VALUES, _SIGN_FLAGS)
    )
    assert _simple_form(args[1:], values, flags) is not None, "the fast path must take this form"
    fast = _run(main, args, capsys)
    slow = _run(_typer_only, args, capsys)
    assert fast[0] == slow[0]
    if case == "sign-blake3-json":
        # Signatures are randomised (ECDSA): compare everything but the bundle bytes.
        assert json.loads(fast[1]).keys() == json.loads(slow[1]).keys()
        assert json.loads(fast[1])["digest"] == json.loads(slow[1])["digest"]
    else:
        assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    if fast[0] != 0:
        one_line_error(fast[2])


# --- an exception mlprov did not expect is still one line, exit 70 --------------------------


def _foreign_failure(message: str) -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(message)

    return fail


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("disk quota\nsecond line of detail", "RuntimeError: disk quota"),
        ("", "RuntimeError"),
    ],
)
def test_unexpected_exception_is_one_line_exit_70(
    message: str,
    shown: str,
    signed_model: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mlprov.signing

    model, _key, public = signed_model
    before = {p: p.read_bytes() for p in model.rglob("*") if p.is_file()}
    monkeypatch.setattr(mlprov.signing, "verify_model", _foreign_failure(message))
    capsys.readouterr()
    # The fast path (verify PATH --key K) and the Typer path (--key=K is not a fast form).
    for args in (
        ["verify", str(model), "--key", str(public)],
        ["verify", str(model), f"--key={public}"],
    ):
        assert main(args) == 70
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == (
            f"mlprov: internal error: {shown} (run with --debug for the traceback)\n"
        )
    assert {p: p.read_bytes() for p in model.rglob("*") if p.is_file()} == before


def test_unexpected_exception_with_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlprov.cli._state import CliState

    monkeypatch.setenv("MLPROV_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(CliState, "registry", _foreign_failure("no registry today"))
    assert main(["models", "list"]) == 70
    with pytest.raises(RuntimeError, match="no registry today"):
        main(["--debug", "models", "list"])


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("command", ["verify", "sign"])
def test_help_on_a_fast_path_form_is_typer_help(
    command: str,
    flag: str,
    signed_model: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, key, public = signed_model
    args = [command, str(model), "--key", str(public if command == "verify" else key), flag]
    values, flags = (
        (_VERIFY_VALUES, _VERIFY_FLAGS) if command == "verify" else (_SIGN_VALUES, _SIGN_FLAGS)
    )
    assert _simple_form(args[1:], values, flags) is None, "help is never run by the fast path"
    fast = _run(main, args, capsys)
    slow = _run(_typer_only, args, capsys)
    assert fast == slow
    assert fast[0] == 0
    assert fast[1].startswith(f"Usage: mlprov {command} [OPTIONS] ")
