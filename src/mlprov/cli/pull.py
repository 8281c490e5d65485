"""``mlprov pull NAME@ALIAS --to DIR``: what a serving container runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError


def pull(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(metavar="NAME@ALIAS", help="The alias to serve (models:/ or short).")
    ],
    to: Annotated[Path, typer.Option("--to", metavar="DIR", help="Where to install it.")],
    resolution: Annotated[
        Path | None,
        typer.Option(
            "--resolution",
            metavar="FILE",
            help="The registry's signed resolution (`resolve --signed`): install only what it "
            "names, refusing an older or expired one.",
        ),
    ] = None,
    registry_key: Annotated[
        Path | None,
        typer.Option(
            "--registry-key", metavar="PUB", help="The registry's public key (PEM) it is signed by."
        ),
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state",
            metavar="FILE",
            help="Where the highest generation seen is kept "
            "(default $MLPROV_HOME/resolutions.json).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Resolve the alias once, verify the version with the registry's trust and the
    alias's policy, and only then install it (with model.sig) atomically at DIR.

    With --resolution and --registry-key the alias is resolved by the signed statement:
    it must verify with the registry's key, name what the registry resolves now, and be
    no older than the newest one seen (--state); otherwise nothing is installed.
    """
    signed = None
    if resolution is None:
        if registry_key is not None or state_file is not None:
            raise InvalidInputError("--registry-key and --state go with --resolution FILE")
        pulled = state(ctx).registry().pull(ref, to)
    else:
        from mlprov.cli._direct import trust_from_options  # noqa: PLC0415
        from mlprov.serving import ResolutionState  # noqa: PLC0415
        from mlprov.signing import read_signature_file  # noqa: PLC0415

        if registry_key is None:
            raise InvalidInputError("--resolution needs the registry's public key: --registry-key")
        trust = trust_from_options(
            key=registry_key, certificate_chain=None, identity=None, issuer=None
        )
        registry = state(ctx).registry()
        statement = read_signature_file(resolution, registry.limits)
        if state_file is None:
            # Beside the registry the command opened (--home or MLPROV_HOME).
            from mlprov.config import default_home  # noqa: PLC0415
            from mlprov.serving import DEFAULT_STATE_NAME  # noqa: PLC0415

            state_file = (state(ctx).home or default_home()) / DEFAULT_STATE_NAME
        pulled, signed = registry.pull_resolved(
            ref, to, statement, trust, ResolutionState(state_file)
        )
    if as_json:
        decision = pulled.judgement.decision
        print_json(
            {
                "ref": pulled.version.ref,
                "digest": pulled.version.digest,
                "path": str(pulled.path),
                "policy_digest": pulled.judgement.policy_digest,
                "decision": decision.to_json() if decision is not None else None,
                "resolution": signed.to_json() if signed is not None else None,
            }
        )
    else:
        how = f"; resolution generation {signed.generation}" if signed is not None else ""
        say(
            f"pulled {ref} -> {pulled.version.ref} {pulled.version.digest} to {pulled.path} "
            f"(verified; policy {pulled.judgement.policy_digest}{how})"
        )


def install(app: typer.Typer) -> None:
    app.command("pull")(pull)
