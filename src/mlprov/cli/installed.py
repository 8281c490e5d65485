"""``mlprov check-installed DIR [--full]``: is an installed copy still what was installed?

For readiness and liveness probes: exit 0 ready, 1 changed (the first changed file is
named), 2 not an installed copy. No registry is opened: the folder and its signature
file are all it reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption


def check_installed(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="The installed copy.")],
    full: Annotated[
        bool,
        typer.Option("--full", help="Re-hash every file against the signed manifest."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check a copy installed by `mlprov pull` against its model.sig: by default every
    file's size and modification time against the record the install wrote (fast); with
    --full every file re-hashed against the manifest model.sig signs."""
    from mlprov.cli._direct import report_installed  # noqa: PLC0415

    report_installed(folder, full=full, as_json=as_json)


def install(app: typer.Typer) -> None:
    app.command("check-installed")(check_installed)
