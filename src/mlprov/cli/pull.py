"""``mlprov pull NAME@ALIAS --to DIR``: what a serving container runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state


def pull(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(metavar="NAME@ALIAS", help="The alias to serve (models:/ or short).")
    ],
    to: Annotated[Path, typer.Option("--to", metavar="DIR", help="Where to install it.")],
    as_json: JsonOption = False,
) -> None:
    """Resolve the alias once, verify the version with the registry's trust and the
    alias's policy, and only then install it (with model.sig) atomically at DIR."""
    pulled = state(ctx).registry().pull(ref, to)
    if as_json:
        decision = pulled.judgement.decision
        print_json(
            {
                "ref": pulled.version.ref,
                "digest": pulled.version.digest,
                "path": str(pulled.path),
                "policy_digest": pulled.judgement.policy_digest,
                "decision": decision.to_json() if decision is not None else None,
            }
        )
    else:
        say(
            f"pulled {ref} -> {pulled.version.ref} {pulled.version.digest} to {pulled.path} "
            f"(verified; policy {pulled.judgement.policy_digest})"
        )


def install(app: typer.Typer) -> None:
    app.command("pull")(pull)
