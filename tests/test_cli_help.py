"""Every help screen of the CLI: exit 0, ``-h`` equals ``--help``, readable metavars
(``PATH``, ``KEY=VALUE``; never ``<list[str]>`` or ``{model_path}``), and each command's
description in its group's list whole, never cut with "..."; plus ``--version`` and
shell completion."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from mlprov._version import __version__
from mlprov.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]

# A Python type label (Typer's default) or a brace-wrapped argument name.
TYPE_LABEL = re.compile(r"<[^<>\s]+>|\{[^{}\s]*\}")
# What an argument or option value may be called: PATH, KEY=VALUE, NAME@ALIAS, PATH|REF...
METAVAR = re.compile(r"^\[?[A-Z][A-Z0-9_=@|]*(\.\.\.)?\]?(\.\.\.)?$")


def _click_root() -> Any:
    import typer

    from mlprov import cli

    return typer.main.get_command(cli.app)


def _command(path: tuple[str, ...]) -> Any:
    command = _click_root()
    for name in path:
        command = command.commands[name]
    return command


def _command_paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(_click_root(), ())
    return paths


COMMANDS = _command_paths()
GROUPS = [path for path in COMMANDS if getattr(_command(path), "commands", None)]


def _help(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    return captured.out


def _section(text: str, title: str) -> list[str]:
    """The lines of one section (``Arguments:``, ``Options:``, ``Commands:``)."""
    lines = text.splitlines()
    if f"{title}:" not in lines:
        return []
    start = lines.index(f"{title}:") + 1
    section = []
    for line in lines[start:]:
        if not line.startswith(" "):
            break
        section.append(line)
    return section


def _rows(section: list[str]) -> dict[str, str]:
    """``name -> description`` of a definition list, continuation lines joined."""
    rows: dict[str, str] = {}
    name = ""
    for line in section:
        match = re.match(r"^  (\S.*?)(?:\s{2,}(\S.*))?$", line)
        if match and not line.startswith("    "):
            name = match.group(1)
            rows[name] = match.group(2) or ""
        elif name:
            rows[name] = f"{rows[name]} {line.strip()}".strip()
    return rows


def test_every_command_is_covered() -> None:
    # The walk must reach the sub-commands, or the tests below would check little.
    assert ("sign",) in COMMANDS
    assert ("alias", "set") in COMMANDS
    assert len(COMMANDS) > 30
    assert {(), ("models",), ("alias",), ("audit",)} <= set(GROUPS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "mlprov")
def test_help_is_readable(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    text = _help([*path, "--help"], capsys)
    assert text.startswith(f"Usage: {' '.join(('mlprov', *path))} ")
    assert _help([*path, "-h"], capsys) == text
    assert not TYPE_LABEL.findall(text), text
    usage = text.splitlines()[0].split(maxsplit=2 + len(path))[-1]
    for piece in usage.split():
        if piece not in ("[OPTIONS]", "COMMAND", "[ARGS]..."):
            assert METAVAR.match(piece), f"usage piece {piece!r} in {usage!r}"
    for name in _rows(_section(text, "Arguments")):
        assert METAVAR.match(name), f"argument {name!r}"
    for name in _rows(_section(text, "Options")):
        # "-n, --name NAME" -> "NAME"; flags have no value.
        value = name.split(", ")[-1].split(" ", 1)[1:]
        for metavar in value:
            assert METAVAR.match(metavar), f"option {name!r}"


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: " ".join(p) or "mlprov")
def test_command_descriptions_are_whole(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    command = _command(path)
    rows = _rows(_section(_help([*path, "--help"], capsys), "Commands"))
    assert set(rows) == set(command.commands)
    for name, sub in command.commands.items():
        first = inspect.cleandoc(sub.help or "").split("\n\n", 1)[0]
        assert rows[name] == " ".join(first.split()), name
        assert not rows[name].endswith("..."), name


def test_version_comes_from_one_place(capsys: pytest.CaptureFixture[str]) -> None:
    assert _help(["--version"], capsys) == f"mlprov {__version__}\n"
    assert __version__ == "0.1.0"
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "mlprov._version.__version__"}


def test_show_completion_prints_a_bash_script(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Typer's switch to take the shell from the command line instead of detecting it.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    script = _help(["--show-completion", "bash"], capsys)
    assert "_mlprov_completion()" in script
    assert "_MLPROV_COMPLETE=complete_bash" in script
    assert "complete -o default -F _mlprov_completion mlprov" in script


@pytest.mark.parametrize(
    ("words", "expected"),
    [("mlprov al", "alias"), ("mlprov alias ", "history"), ("mlprov verify --ide", "--identity")],
)
def test_shell_completion_completes(
    words: str,
    expected: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the installed bash function runs on <TAB>.
    monkeypatch.setenv("_MLPROV_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split(" ")) - 1))
    assert expected in _help([], capsys).split()
