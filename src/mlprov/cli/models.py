"""``mlprov models list|show|create|tag``."""

from __future__ import annotations

from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, ReasonOption, WideOption, parse_pairs
from mlprov.cli._output import print_json, print_table, say, short_time
from mlprov.cli._state import state

models_app = typer.Typer(help="Registered models.", no_args_is_help=True)


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    prefix: Annotated[
        str | None, typer.Option("--prefix", metavar="TEXT", help="Only names starting so.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="KEY=VALUE", help="Only with tag K=V.")
    ] = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List registered models (search by name prefix and tags)."""
    records = (
        state(ctx).registry().list_models(prefix=prefix, tags=parse_pairs(tag, "tag", typed=False))
    )
    if as_json:
        print_json([r.to_json() for r in records])
        return
    print_table(
        "Models",
        ["name", "latest", "aliases", "tags", "created"],
        (
            (
                r.name,
                r.latest_version or "-",
                [f"{a} -> {v}" for a, v in sorted(r.aliases.items())],
                [f"{k}={v}" for k, v in sorted(r.tags.items())],
                short_time(r.created_at, wide=wide),
            )
            for r in records
        ),
        wide=wide,
    )


@models_app.command("show")
def show_model(
    ctx: typer.Context, name: str, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """Show one model."""
    record = state(ctx).registry().get_model(name)
    if as_json:
        print_json(record.to_json())
        return
    print_table(
        f"Model {record.name}",
        ["field", "value"],
        [
            ("description", record.description),
            ("latest version", record.latest_version or "-"),
            ("aliases", [f"{a} -> {v}" for a, v in sorted(record.aliases.items())]),
            ("tags", [f"{k}={v}" for k, v in sorted(record.tags.items())]),
            ("created", f"{short_time(record.created_at, wide=wide)} by {record.created_by}"),
        ],
        wide=wide,
    )


@models_app.command("create")
def create_model(
    ctx: typer.Context,
    name: str,
    description: Annotated[
        str, typer.Option("--description", metavar="TEXT", help="Model description.")
    ] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="KEY=VALUE", help="Tag K=V (repeatable).")
    ] = None,
) -> None:
    """Create an empty registered model."""
    record = (
        state(ctx)
        .registry()
        .create_model(name, description=description, tags=parse_pairs(tag, "tag", typed=False))
    )
    say(f"created model {record.name}")


@models_app.command("tag")
def tag_model(
    ctx: typer.Context,
    name: str,
    tags: Annotated[
        list[str] | None, typer.Argument(metavar="KEY=VALUE", help="Tags to set.")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", metavar="KEY", help="Tag key to remove.")
    ] = None,
    reason: ReasonOption = "",
) -> None:
    """Set or remove model tags (audited)."""
    changes: dict[str, str | None] = dict(parse_pairs(tags, "tag", typed=False))
    changes.update(dict.fromkeys(remove or []))
    state(ctx).registry().tag_model(name, changes, reason=reason)
    say(f"tagged model {name}")


def install(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
