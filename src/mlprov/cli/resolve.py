"""``mlprov resolve REF``: which version a reference names, and its digest."""

from __future__ import annotations

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state


def resolve(ctx: typer.Context, ref: str, as_json: JsonOption = False) -> None:
    """Resolve NAME/VERSION, NAME@ALIAS or a models:/ URI to a version and its digest."""
    record = state(ctx).registry().resolve(ref)
    if as_json:
        print_json(
            {"ref": ref, "name": record.name, "version": record.version, "digest": record.digest}
        )
    else:
        say(f"{record.ref} {record.digest}")


def install(app: typer.Typer) -> None:
    app.command("resolve")(resolve)
