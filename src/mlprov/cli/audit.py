"""``mlprov audit log|verify|checkpoint``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, WideOption
from mlprov.cli._output import Cell, print_json, print_table, say, short_time
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError

audit_app = typer.Typer(help="The hash-chained audit log of every mutation.", no_args_is_help=True)


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    subject: Annotated[
        str | None, typer.Option("--subject", metavar="NAME", help="Only entries about this model.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", help="Only the newest N.")
    ] = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Show audit entries, oldest first (--wide adds each entry's hash)."""
    entries = state(ctx).registry().audit_log(subject=subject, limit=limit)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    columns = ["seq", "when", "who", "action", "subject", "reason"]
    rows: list[list[Cell]] = [
        [e.seq, short_time(e.at, wide=wide), e.actor, e.action, e.subject, e.reason]
        for e in entries
    ]
    if wide:
        columns.append("hash")
        for row, entry in zip(rows, entries, strict=True):
            row.append(entry.hash)
    print_table("Audit log", columns, rows, wide=wide)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            metavar="FILE",
            help="A checkpoint from `audit checkpoint`: also refuse a log truncated or "
            "rewritten since (give the trust it was signed with).",
        ),
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", metavar="FILE", help="Public key (PEM) of the signer.")
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option("--certificate-chain", metavar="FILE", help="Trusted root certificate (PEM)."),
    ] = None,
    identity: Annotated[
        str | None, typer.Option("--identity", metavar="ID", help="Sigstore signer identity.")
    ] = None,
    issuer: Annotated[
        str | None, typer.Option("--issuer", metavar="URL", help="Sigstore OIDC issuer.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute the hash chain and the state it vouches for; exit 1 naming the first
    broken entry or the first difference.

    Against a server, with --checkpoint the chain the server sends is recomputed here and
    must extend the checkpoint (verified here); the state check is the server's."""
    from mlprov.cli._direct import trust_from_options  # noqa: PLC0415
    from mlprov.signing import read_signature_file  # noqa: PLC0415

    registry = state(ctx).registry()
    if checkpoint is None:
        if key or certificate_chain or identity or issuer:
            raise InvalidInputError("trust options go with --checkpoint")
        count = registry.verify_audit()
    else:
        trust = trust_from_options(
            key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
        )
        count = registry.verify_audit(checkpoint=read_signature_file(checkpoint), trust=trust)
    if as_json:
        print_json({"ok": True, "entries": count})
    else:
        suffix = f", and it extends the checkpoint {checkpoint}" if checkpoint is not None else ""
        say(f"audit log intact: {count} entries{suffix}")


@audit_app.command("checkpoint")
def audit_checkpoint(
    ctx: typer.Context,
    key: Annotated[
        Path | None, typer.Option("--key", metavar="FILE", help="Private key (PEM) to sign with.")
    ] = None,
    sigstore: Annotated[
        bool, typer.Option("--sigstore", help="Sign keylessly with Sigstore.")
    ] = False,
    passphrase_env: Annotated[
        str | None,
        typer.Option("--passphrase-env", metavar="VAR", help="Variable holding the passphrase."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Where to write it (default: stdout)."),
    ] = None,
) -> None:
    """Sign the audit chain head (sequence, hash, time) after verifying the chain: keep
    the checkpoint elsewhere and give it to `audit verify --checkpoint` later.

    Against a server the chain it sends is recomputed here and the checkpoint signed
    here (the key never leaves this machine), then the server records it as its
    `audit.checkpoint` entry: that needs a token with the audit action (admin)."""
    from mlprov.cli._direct import signer_from_options  # noqa: PLC0415
    from mlprov.fs import write_file_atomically  # noqa: PLC0415

    registry = state(ctx).registry()
    signer = signer_from_options(
        key=key,
        certificate=None,
        certificate_chain=None,
        sigstore=sigstore,
        identity_token=None,
        passphrase_env=passphrase_env,
    )
    bundle = registry.checkpoint_audit(signer)
    if out is None:
        sys.stdout.write(bundle.decode("utf-8") + "\n")
    else:
        write_file_atomically(out, bundle, what="checkpoint")
        say(f"audit checkpoint written to {out}")


def install(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
