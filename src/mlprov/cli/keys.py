"""``mlprov keys generate|public``: ECDSA signing keys for OMS signatures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._direct import read_passphrase, read_private_key_file
from mlprov.cli._output import print_json, say
from mlprov.errors import ConflictError, NotFoundError, StorageError

__all__ = ["install", "keys_app", "read_passphrase", "read_private_key_file"]

keys_app = typer.Typer(
    name="keys",
    help="Generate ECDSA signing keys and export their public keys.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

PassphraseEnvOption = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        metavar="VAR",
        help="Name of the environment variable holding the key's passphrase.",
    ),
]


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode``; never overwrite an existing key."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as e:
        raise ConflictError(f"{path} already exists; refusing to overwrite a key") from e
    except FileNotFoundError as e:
        raise NotFoundError(f"{path.parent}: folder does not exist") from e
    except OSError as e:
        raise StorageError(f"cannot create {path}: {e.strerror}") from e
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


@keys_app.command("generate")
def generate(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="FILE", help="Where to write the new private key (PEM)."
        ),
    ],
    curve: Annotated[
        str,
        typer.Option(
            "--curve", metavar="CURVE", help="Elliptic curve: p256 or p384.", show_default=True
        ),
    ] = "p256",
    passphrase_env: PassphraseEnvOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Generate an ECDSA private key (mode 0600; encrypted with --passphrase-env)."""
    from mlprov.signing import generate_private_key_pem, key_hint, load_private_key  # noqa: PLC0415

    passphrase = read_passphrase(passphrase_env)
    pem = generate_private_key_pem(curve.lower(), passphrase)
    hint = key_hint(load_private_key(pem, passphrase).public_key())
    _write_new_file(out, pem, 0o600)
    if as_json:
        print_json(
            {
                "private_key": str(out),
                "curve": curve.lower(),
                "hint": hint,
                "encrypted": bool(passphrase),
            }
        )
    else:
        say(f"wrote {curve.lower()} private key {out} (key hint {hint})")
        say(f"export its public key with: mlprov keys public {out} --out {out.with_suffix('.pub')}")


@keys_app.command("public")
def public(
    key: Annotated[
        Path, typer.Argument(metavar="FILE", help="Private key (PEM).", show_default=False)
    ],
    passphrase_env: PassphraseEnvOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="FILE", help="Write the public key here, not stdout."),
    ] = None,
) -> None:
    """Print (or write) the public key of a private key, as PEM."""
    from mlprov.signing import load_private_key, public_key_pem  # noqa: PLC0415

    private = load_private_key(read_private_key_file(key), read_passphrase(passphrase_env))
    pem = public_key_pem(private.public_key())
    if out is None:
        typer.echo(pem.decode("ascii"), nl=False)
        return
    _write_new_file(out, pem, 0o644)


def install(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
