"""``mlprov status``: one screen of every model's aliases and whether each verifies."""

from __future__ import annotations

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, print_table
from mlprov.cli._state import state


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every alias, its version, and whether that version verifies and passes the
    alias's policy now (revoked versions and signers included); exit 1 if any does not."""
    from mlprov.errors import VerificationError  # noqa: PLC0415

    found = state(ctx).registry().status()
    if as_json:
        print_json([s.to_json() for s in found])
    else:
        print_table(
            "Aliases",
            ["alias", "version", "verifies", "why not"],
            (
                (
                    f"{s.model}@{s.alias}",
                    s.version,
                    "yes" if s.ok else ("REVOKED" if s.revoked else "NO"),
                    s.problem or "",
                )
                for s in found
            ),
        )
    failing = [s for s in found if not s.ok]
    if failing:
        raise VerificationError(
            f"{len(failing)} of {len(found)} alias(es) do not verify now, first "
            f"{failing[0].model}@{failing[0].alias}: {failing[0].problem}"
        )


def install(app: typer.Typer) -> None:
    app.command("status")(status)
