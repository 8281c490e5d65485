"""``mlprov gc``: remove artefact blobs no version references, after a grace period."""

from __future__ import annotations

from typing import Annotated

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import human_size, print_json, say
from mlprov.cli._state import state


def gc(
    ctx: typer.Context,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="Keep blobs written within this long: 24h, 7d, 1h30m, 90s, or 0.",
        ),
    ] = "24h",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be removed.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove blobs that no version references, written more than --grace ago, that no
    registration in progress holds (safe while others register), and uploads a killed
    process left unfinished (older than --grace, at least 1 h); audited as gc.run."""
    from mlprov.registry.gc import parse_grace  # noqa: PLC0415

    window = parse_grace(grace)
    registry = state(ctx).local_registry(
        "gc", "it runs where the registry's database and artefact store are (docs/storage.md)"
    )
    report = registry.collect_garbage(window, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
        return
    verb = "would remove" if report.dry_run else "removed"
    say(
        f"{verb} {len(report.removed)} of {report.blobs} blob(s), "
        f"{human_size(report.bytes_freed)}; kept {report.referenced} referenced, "
        f"{report.young} younger than {grace}, {report.held} held by a registration"
    )
    if report.staging_removed:
        say(f"removed {report.staging_removed} stale staging upload(s)")


def install(app: typer.Typer) -> None:
    app.command("gc")(gc)
