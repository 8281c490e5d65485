"""``mlprov download REF --to DIR [TRUST]``: digest-checked, atomic, with the stored
signature; with a trust option, installed only if that signature verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._direct import trust_from_options
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
    key: Annotated[
        Path | None,
        typer.Option("--key", metavar="FILE", help="Install only if signed by this key (PEM)."),
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-chain",
            metavar="FILE",
            help="Install only if signed under this root or CA certificate (PEM, repeatable).",
        ),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(
            "--identity",
            metavar="IDENTITY",
            help="Install only if signed by this Sigstore identity.",
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option("--issuer", metavar="URL", help="OIDC issuer of the Sigstore identity."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a version's files and its signature to DIR, checking every digest; nothing is
    left on failure.

    With a trust option (--key, --certificate-chain, or --identity with --issuer) the
    stored signature must verify against that trust first.
    """
    verifying = any((key, certificate_chain, identity, issuer))
    trust = (
        trust_from_options(
            key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
        )
        if verifying
        else None
    )
    registry = state(ctx).registry()
    # Resolved once: the alias may move meanwhile, the number shown is what is installed.
    record = registry.get_version(ref)
    signer: str | None = None
    with byte_progress(f"downloading {record.ref}", record.size, quiet=quiet) as progress:
        if trust is not None:
            installed = registry.install_verified(record.ref, to, trust, progress=progress)
            signer = str(installed.signature.signer)
        else:
            registry.download(record.ref, to, progress=progress)
    if as_json:
        print_json(
            {"ref": record.ref, "digest": record.digest, "to": str(to), "verified_signer": signer}
        )
    elif signer is not None:
        say(
            f"downloaded {record.ref} to {to} (signature by {signer} verified, "
            f"{record.file_count} files checked)"
        )
    else:
        say(f"downloaded {record.ref} to {to} ({record.file_count} files verified)")


def install(app: typer.Typer) -> None:
    app.command("download")(download)
