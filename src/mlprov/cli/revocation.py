"""``mlprov revoke`` and ``mlprov revocations``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import (
    IdentityTokenOption,
    JsonOption,
    PassphraseEnvOption,
    SigstoreFlag,
)
from mlprov.cli._output import print_json, print_table, say
from mlprov.cli._state import state


def revoke(
    ctx: typer.Context,
    ref: Annotated[
        str | None,
        typer.Argument(metavar="REF", help="The version revoked (or give --key / --identity)."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", metavar="PUB", help="Revoke this public key (PEM) instead."),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option("--identity", metavar="ID", help="Revoke this signer identity instead."),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why; recorded and signed.")
    ] = "",
    signing_key: Annotated[
        Path | None,
        typer.Option("--signing-key", metavar="FILE", help="Your key (PEM) to sign it with."),
    ] = None,
    sigstore: SigstoreFlag = False,
    identity_token: IdentityTokenOption = None,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a version, a signing key or a signer identity (signed, audited): a revoked
    version fails verification and no alias can move to it."""
    from mlprov.cli._direct import signer_from_options  # noqa: PLC0415
    from mlprov.errors import NotFoundError  # noqa: PLC0415
    from mlprov.refs import ModelRef  # noqa: PLC0415

    registry = state(ctx).registry()
    signer = signer_from_options(
        key=signing_key,
        certificate=None,
        certificate_chain=None,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    key_pem = None
    if key is not None:
        try:
            key_pem = key.read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"{key}: no such key file") from e
    revoked = registry.revoke(
        reason=reason,
        signer=signer,
        version=ModelRef.parse(ref) if ref is not None else None,
        key_pem=key_pem,
        identity=identity,
    )
    if as_json:
        print_json(revoked.to_json())
    else:
        say(f"revoked {revoked.kind} {revoked.value}: {revoked.reason}")


def revocations(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every revocation, oldest first."""
    found = state(ctx).registry().revocations()
    if as_json:
        print_json([r.to_json() for r in found])
        return
    print_table(
        "Revocations",
        ["kind", "revoked", "reason", "when", "by"],
        ((r.kind, r.value, r.reason, r.at, r.actor) for r in found),
    )


def install(app: typer.Typer) -> None:
    app.command("revoke")(revoke)
    app.command("revocations")(revocations)
