"""``mlprov lineage REF``: ancestors (or descendants) through every relation."""

from __future__ import annotations

from typing import Annotated

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state


def lineage(
    ctx: typer.Context,
    ref: str,
    descendants: Annotated[
        bool, typer.Option("--descendants", help="Walk to the versions made from REF.")
    ] = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print a Mermaid flowchart.")] = False,
    depth: Annotated[
        int | None, typer.Option("--depth", min=1, metavar="N", help="Walk at most N hops.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show where a version came from (parents, base, teacher, ...) with datasets and commits."""
    graph = state(ctx).registry().lineage(ref, descendants=descendants, max_depth=depth)
    if as_json:
        print_json(graph.to_json())
    elif mermaid:
        say(graph.to_mermaid())
    else:
        say(graph.to_tree())


def install(app: typer.Typer) -> None:
    app.command("lineage")(lineage)
