"""Help screens that read like the README: ``PATH``, ``KEY=VALUE``, ``NAME@ALIAS``.

Typer 0.29 labels each argument with its Python type (usage ``{model_path}``, then
``model_path <path>`` in the argument list) and, like click, cuts each command's
description beside its name to about 45 characters with "...". Every command and group
of the CLI is built with the classes here (:func:`mlprov.cli._build_app` sets them):

* an argument is shown by its metavar only, in the usage line (``[NAME]`` when optional,
  ``NAME...`` when repeatable) and in the argument list;
* a command's description in its group's list is its whole first paragraph, wrapped by the
  help formatter instead of cut.

Options show their ``metavar=`` (every option that takes a value sets one);
``tests/test_cli_help.py`` checks every help screen for type labels and cut descriptions.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["HelpCommand", "HelpGroup", "use_help_classes"]


def _argument_label(param: Any) -> str:
    label = str(param.metavar or (param.name or "").upper())
    if param.nargs != 1 and not label.endswith("..."):
        label += "..."
    return label


def _usage_pieces(command: Any, ctx: Any) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            label = _argument_label(param)
            pieces.append(label if param.required else f"[{label}]")
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


def _format_parameters(command: Any, ctx: Any, formatter: Any) -> None:
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":
            # Typer's record is "NAME <type>"; the help text and [required] are kept.
            arguments.append((_argument_label(param), record[1]))
        else:
            options.append(record)
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    if options:
        with formatter.section("Options"):
            formatter.write_dl(options)


def _short_help(command: Any) -> str:
    """The explicit short help, else the first paragraph of the help, never cut."""
    if command.short_help:
        return " ".join(inspect.cleandoc(command.short_help).split())
    if not command.help:
        return ""
    first = inspect.cleandoc(command.help).split("\n\n", 1)[0]
    return " ".join(first.split())


class HelpCommand(TyperCommand):
    """A Typer command whose help shows metavars, not Python types."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_parameters(self, ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return _short_help(self)


class HelpGroup(TyperGroup):
    """A Typer group whose help shows metavars and its commands' whole descriptions."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_parameters(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return _short_help(self)


def use_help_classes(app: typer.Typer) -> None:
    """Build every command and group of ``app`` (recursively) with the classes above."""
    for command in app.registered_commands:
        # Typer's decorator fills in its own class; a command's own subclass is kept.
        if command.cls is None or command.cls is TyperCommand:
            command.cls = HelpCommand
    for group in app.registered_groups:
        group.cls = HelpGroup
        if group.typer_instance is not None:
            use_help_classes(group.typer_instance)
