"""``mlprov audit log|verify``."""

from __future__ import annotations

from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, WideOption
from mlprov.cli._output import Cell, print_json, print_table, say, short_time
from mlprov.cli._state import state

audit_app = typer.Typer(help="The hash-chained audit log of every mutation.", no_args_is_help=True)


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    subject: Annotated[
        str | None, typer.Option("--subject", metavar="NAME", help="Only entries about this model.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", help="Only the newest N.")
    ] = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Show audit entries, oldest first (--wide adds each entry's hash)."""
    entries = state(ctx).registry().audit_log(subject=subject, limit=limit)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    columns = ["seq", "when", "who", "action", "subject", "reason"]
    rows: list[list[Cell]] = [
        [e.seq, short_time(e.at, wide=wide), e.actor, e.action, e.subject, e.reason]
        for e in entries
    ]
    if wide:
        columns.append("hash")
        for row, entry in zip(rows, entries, strict=True):
            row.append(entry.hash)
    print_table("Audit log", columns, rows, wide=wide)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Recompute the hash chain; exit 1 naming the first broken entry."""
    count = state(ctx).registry().verify_audit()
    if as_json:
        print_json({"ok": True, "entries": count})
    else:
        say(f"audit log intact: {count} entries")


def install(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
