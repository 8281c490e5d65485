"""``mlprov stage set|history``: None, Staging, Production, Archived."""

from __future__ import annotations

from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, ReasonOption, WideOption
from mlprov.cli._output import print_json, print_table, say, short_time
from mlprov.cli._state import state
from mlprov.records import Stage

stage_app = typer.Typer(help="Stages of versions.", no_args_is_help=True)


@stage_app.command("set")
def set_stage(
    ctx: typer.Context,
    name: str,
    version: int,
    stage: str,
    reason: ReasonOption = "",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show the gate's decision; move nothing (exit 1 if denied)."
        ),
    ] = False,
) -> None:
    """Move VERSION to STAGE (None, Staging, Production, Archived) through the gate."""
    if dry_run:
        from mlprov.cli.policy import present_judgement, present_remote_judgement  # noqa: PLC0415

        cli = state(ctx)
        target = f"stage:{stage}"
        if cli.client_mode:
            judged = cli.server("stage --dry-run").check_policy_remote(f"{name}/{version}", target)
            present_remote_judgement(judged, "text")
            return
        judgement = cli.local_registry("stage").check_policy(f"{name}/{version}", target)
        present_judgement(judgement, "text")
        return
    events = state(ctx).registry().set_stage(name, version, stage, reason=reason)
    if not events:
        say(f"{name}/{version} is already in {stage}; nothing changed")
    for event in events:
        say(f"{event.name}/{event.version}: {event.from_stage.value} -> {event.to_stage.value}")


def _shown(stage: Stage) -> str:
    return "-" if stage is Stage.NONE else stage.value


@stage_app.command("history")
def stage_history(
    ctx: typer.Context, name: str, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """Every stage transition of a model's versions."""
    events = state(ctx).registry().stage_history(name)
    if as_json:
        print_json([e.to_json() for e in events])
        return
    print_table(
        f"Stage history of {name}",
        ["version", "from", "to", "who", "when", "reason"],
        (
            (
                e.version,
                _shown(e.from_stage),
                _shown(e.to_stage),
                e.actor,
                short_time(e.at, wide=wide),
                e.reason,
            )
            for e in events
        ),
        wide=wide,
    )


def install(app: typer.Typer) -> None:
    app.add_typer(stage_app, name="stage")
