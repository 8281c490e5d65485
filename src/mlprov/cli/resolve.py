"""``mlprov resolve REF [--signed --key KEY]``: which version a reference names, and its
digest; with ``--signed``, the registry's signed resolution statement of an alias."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, PassphraseEnvOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError
from mlprov.refs import ModelRef


def resolve(
    ctx: typer.Context,
    ref: str,
    as_json: JsonOption = False,
    signed: Annotated[
        bool,
        typer.Option(
            "--signed",
            help="Print the registry's signed resolution of NAME@ALIAS (needs --key).",
        ),
    ] = False,
    key: Annotated[
        Path | None,
        typer.Option("--key", metavar="KEY", help="The registry's private key (PEM)."),
    ] = None,
    ttl: Annotated[
        str,
        typer.Option("--ttl", metavar="DURATION", help="How long it stays valid: 5m, 1h, 1d."),
    ] = "5m",
    passphrase_env: PassphraseEnvOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write the statement here (default: stdout)."),
    ] = None,
) -> None:
    """Resolve NAME/VERSION, NAME@ALIAS or a models:/ URI to a version and its digest.

    With --signed, print the registry's signed answer for NAME@ALIAS instead (version,
    manifest digest, alias generation, issued and expiry times, signed with --key): what
    `mlprov pull NAME@ALIAS --resolution FILE --registry-key PUB` checks.
    """
    if not signed:
        if key is not None or out is not None or passphrase_env is not None or ttl != "5m":
            raise InvalidInputError("--key, --ttl, --out and --passphrase-env go with --signed")
        record = state(ctx).registry().resolve(ref)
        if as_json:
            print_json(
                {
                    "ref": ref,
                    "name": record.name,
                    "version": record.version,
                    "digest": record.digest,
                }
            )
        else:
            say(f"{record.ref} {record.digest}")
        return
    _print_signed(ctx, ref, key, ttl, passphrase_env, out, as_json)


def _print_signed(
    ctx: typer.Context,
    ref: str,
    key: Path | None,
    ttl: str,
    passphrase_env: str | None,
    out: Path | None,
    as_json: bool,
) -> None:
    from mlprov.cli._direct import signer_from_options  # noqa: PLC0415
    from mlprov.durations import parse_duration  # noqa: PLC0415
    from mlprov.serving import MAX_RESOLUTION_TTL  # noqa: PLC0415

    cli = state(ctx)
    if as_json:
        raise InvalidInputError("--signed prints the statement itself (JSON already); drop --json")
    if cli.client_mode and (key is not None or passphrase_env is not None):
        raise InvalidInputError(
            "against a server, --signed prints the statement the server signs with its own "
            "key (mlprov serve --signing-key): drop --key and --passphrase-env"
        )
    if not cli.client_mode and key is None:
        raise InvalidInputError("--signed needs the registry's key: --key KEY")
    parsed = ModelRef.parse(ref)
    if parsed.alias is None:
        raise InvalidInputError(f"{ref}: a signed resolution is of NAME@ALIAS, not a number")
    duration = parse_duration(ttl)
    if duration > MAX_RESOLUTION_TTL:
        raise InvalidInputError(
            f"a signed resolution lasts at most {MAX_RESOLUTION_TTL}, not {ttl[:40]}"
        )
    if cli.client_mode:
        # The server's statement as it sent it: `pull --resolution FILE --registry-key PUB`
        # (or `mlprov.serving.verify_resolution`) checks it; nothing here trusts it.
        bundle = cli.server("resolve --signed").signed_resolution(
            parsed.name, parsed.alias, ttl=duration
        )
        _write(bundle, out, parsed)
        return
    registry = cli.local_registry("resolve --signed")
    signer = signer_from_options(
        key=key,
        certificate=None,
        certificate_chain=None,
        sigstore=False,
        identity_token=None,
        passphrase_env=passphrase_env,
    )
    bundle = registry.signed_resolution(parsed.name, parsed.alias, signer, ttl=duration)
    _write(bundle, out, parsed)


def _write(bundle: bytes, out: Path | None, parsed: ModelRef) -> None:
    from mlprov.fs import write_file_atomically  # noqa: PLC0415

    if out is None:
        sys.stdout.write(bundle.decode("utf-8", "replace") + "\n")
    else:
        write_file_atomically(out, bundle, what="resolution")
        say(f"signed resolution of {parsed.name}@{parsed.alias} written to {out}")


def install(app: typer.Typer) -> None:
    app.command("resolve")(resolve)
