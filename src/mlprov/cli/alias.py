"""``mlprov alias set|delete|show|history``."""

from __future__ import annotations

from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, ReasonOption, WideOption
from mlprov.cli._output import print_json, print_table, say, short_time
from mlprov.cli._state import state

alias_app = typer.Typer(
    help="Aliases: named, compare-and-set pointers to versions.", no_args_is_help=True
)

ExpectOption = Annotated[
    int | None,
    typer.Option(
        "--expect-generation",
        metavar="N",
        help="Move only if the alias is still at this generation (0: does not exist yet).",
    ),
]


@alias_app.command("set")
def set_alias(
    ctx: typer.Context,
    name: str,
    alias: str,
    version: int,
    reason: ReasonOption = "",
    expect_generation: ExpectOption = None,
    as_json: JsonOption = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show the gate's decision; move nothing (exit 1 if denied)."
        ),
    ] = False,
) -> None:
    """Point NAME@ALIAS at VERSION through the gate: the active policy set decides (exit 1,
    naming each failed requirement, if denied; exit 3 if --expect-generation no longer
    holds)."""
    if dry_run:
        from mlprov.cli.policy import present_judgement, present_remote_judgement  # noqa: PLC0415

        cli = state(ctx)
        fmt = "json" if as_json else "text"
        if cli.client_mode:
            judged = cli.server("alias set --dry-run").check_policy_remote(
                f"{name}/{version}", alias
            )
            present_remote_judgement(judged, fmt)
            return
        judgement = cli.local_registry("alias set").check_policy(f"{name}/{version}", alias)
        present_judgement(judgement, fmt)
        return
    event = (
        state(ctx)
        .registry()
        .set_alias(name, alias, version, reason=reason, expected_generation=expect_generation)
    )
    if as_json:
        print_json(event.to_json() if event else {"changed": False})
    elif event is None:
        say(f"{name}@{alias} already points at {version}; nothing changed")
    else:
        verb = "rolled back" if event.kind == "rollback" else "moved"
        say(
            f"{verb} {name}@{alias}: {event.from_version or '-'} -> {event.to_version} "
            f"(generation {event.generation})"
        )


@alias_app.command("delete")
def delete_alias(
    ctx: typer.Context,
    name: str,
    alias: str,
    reason: ReasonOption = "",
    expect_generation: ExpectOption = None,
) -> None:
    """Delete NAME@ALIAS (its history is kept)."""
    event = (
        state(ctx)
        .registry()
        .delete_alias(name, alias, reason=reason, expected_generation=expect_generation)
    )
    say(f"deleted {name}@{alias} (was {event.from_version}, generation {event.generation})")


@alias_app.command("show")
def show_alias(ctx: typer.Context, name: str, alias: str, as_json: JsonOption = False) -> None:
    """Show where an alias points and its generation."""
    current = state(ctx).registry().get_alias(name, alias)
    if as_json:
        print_json(current.to_json())
    else:
        say(f"{name}@{alias} -> {current.version or '(deleted)'} (generation {current.generation})")


@alias_app.command("history")
def alias_history(
    ctx: typer.Context,
    name: str,
    alias: Annotated[str | None, typer.Argument(help="Only this alias.")] = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Every move of a model's aliases: from, to, who, when, why."""
    events = state(ctx).registry().alias_history(name, alias)
    if as_json:
        print_json([e.to_json() for e in events])
        return
    print_table(
        f"Alias history of {name}",
        ["alias", "kind", "from", "to", "gen", "who", "when", "reason"],
        (
            (
                e.alias,
                e.kind,
                e.from_version or "-",
                e.to_version or "-",
                e.generation,
                e.actor,
                short_time(e.at, wide=wide),
                e.reason,
            )
            for e in events
        ),
        wide=wide,
    )


def install(app: typer.Typer) -> None:
    app.add_typer(alias_app, name="alias")
