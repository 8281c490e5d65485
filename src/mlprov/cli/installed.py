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
from mlprov.cli._output import print_json, say


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
    from mlprov.serving import check_installed as check  # noqa: PLC0415

    copy = check(folder, full=full)
    if as_json:
        print_json(copy.to_json())
    else:
        mode = "re-hashed" if copy.full else "sizes and times"
        say(f"ready: {copy.path} ({copy.files} files, {copy.bytes} bytes; {mode} match)")


def install(app: typer.Typer) -> None:
    app.command("check-installed")(check_installed)
