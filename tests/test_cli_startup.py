"""Running one command builds only its module's parsers (ADR 0049, start-up): the table
naming each top-level command's module matches the full build, and every help screen
and usage error read through the narrowed build is the full build's, byte for byte."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import typer

from mlprov import cli
from mlprov.cli import COMMAND_MODULES, invoked_module, main


def _top_level_names(app: typer.Typer) -> list[str]:
    commands = [
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    ]
    return commands + [str(g.name) for g in app.registered_groups]


def test_the_table_names_the_module_of_every_top_level_command() -> None:
    found: dict[str, str] = {}
    for module in cli._MODULES:
        app = typer.Typer()
        importlib.import_module(f"mlprov.cli.{module}").install(app)
        for name in _top_level_names(app):
            assert name not in found, f"{name} installed twice"
            found[name] = module
    assert found == COMMAND_MODULES
    assert sorted(_top_level_names(cli.app)) == sorted(COMMAND_MODULES)


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (["pull", "m@production", "--to", "d"], "pull"),
        (["--home", "/tmp/h", "--debug", "verify", "x"], "signing"),
        (["--home=/tmp/h", "deployment", "show", "d"], "deployments"),
        (["--help"], None),
        (["--version"], None),
        (["--home", "pull"], None),  # "pull" is the folder here; no command is named
        (["no-such-command"], None),
        ([], None),
    ],
)
def test_the_invoked_module_is_read_after_the_root_options(
    args: list[str], module: str | None
) -> None:
    assert invoked_module(args) == module


def _through(capsys: pytest.CaptureFixture[str], run: Any) -> tuple[int, str, str]:
    code = run()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_help_and_usage_errors_are_the_full_builds(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    full = cli.app
    for args in ([name, "--help"], [name, "--no-such-option"]):
        narrowed = _through(capsys, lambda: main(args))  # noqa: B023 - called at once
        whole = _through(capsys, lambda: cli._run_typer(args, full))  # noqa: B023
        assert narrowed == whole
        assert narrowed[0] in (0, 2)
