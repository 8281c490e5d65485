"""``mlprov download REF --to DIR``: digest-checked, atomic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._progress import byte_progress
from mlprov.cli._state import state


def download(
    ctx: typer.Context,
    ref: str,
    to: Annotated[
        Path,
        typer.Option("--to", metavar="DIR", help="Target folder (must not exist or be empty)."),
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a version's files to DIR, checking every digest; nothing is left on failure."""
    registry = state(ctx).registry()
    record = registry.get_version(ref)
    with byte_progress(f"downloading {record.ref}", record.size, quiet=quiet) as progress:
        registry.download(record.ref, to, progress=progress)
    if as_json:
        print_json({"ref": record.ref, "digest": record.digest, "to": str(to)})
    else:
        say(f"downloaded {record.ref} to {to} ({record.file_count} files verified)")


def install(app: typer.Typer) -> None:
    app.command("download")(download)
