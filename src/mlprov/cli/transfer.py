"""``mlprov export``, ``mlprov import`` and ``mlprov promote`` (docs/transfer.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli._options import IdentityTokenOption, JsonOption, PassphraseEnvOption, SigstoreFlag
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError

if TYPE_CHECKING:
    from mlprov.registry import RegistryApi

KeyOption = Annotated[
    Path | None,
    typer.Option("--key", metavar="FILE", help="Key (PEM) the archive manifest is signed with."),
]
CertificateOption = Annotated[
    Path | None,
    typer.Option("--certificate", metavar="FILE", help="Signing certificate (PEM) for --key."),
]
AncestorsFlag = Annotated[
    bool,
    typer.Option(
        "--with-ancestors", help="Carry the lineage ancestors' bytes too, not only their records."
    ),
]


def export(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(metavar="REF", help="The version or deployment version to export."),
    ],
    to: Annotated[Path, typer.Option("--to", metavar="ARCHIVE", help="The archive to write.")],
    with_ancestors: AncestorsFlag = False,
    key: KeyOption = None,
    certificate: CertificateOption = None,
    sigstore: SigstoreFlag = False,
    identity_token: IdentityTokenOption = None,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a version (or a deployment version with all its members), all its evidence
    and its lineage closure to one signed archive. Against a server the archive is built
    here from what it sends, every byte checked against its digest."""
    from mlprov.cli._direct import signer_from_options  # noqa: PLC0415

    signer = signer_from_options(
        key=key,
        certificate=certificate,
        certificate_chain=None,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    registry = state(ctx).registry()
    written = registry.export(ref, to, signer, with_ancestors=with_ancestors)
    if as_json:
        print_json(written.to_json())
    else:
        say(
            f"exported {written.root} ({len(written.versions)} version(s), {written.size} bytes) "
            f"to {written.path}; archive {written.archive_digest}"
        )


def import_(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE", help="The archive to import.")],
    rename: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="NAME",
            help="Import the version under this model name (not for deployment archives).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Verify an archive with this registry's own trust, then import it (a no-op when
    it was imported before). Against a server the archive is uploaded and the server
    verifies it."""
    done = state(ctx).registry().import_archive(archive, rename=rename)
    if as_json:
        print_json(done.to_json())
    elif not done.written:
        say(f"{done.ref} is imported already (archive {done.archive_digest}): no change")
    else:
        say(
            f"imported {', '.join(done.written)} from {done.origin_version} "
            f"(archive {done.archive_digest})"
        )


def _target_registry(target: str, artifacts: str | None, token_env: str) -> RegistryApi:
    """The registry ``--to`` names: a server (its token from ``token_env``), a registry
    folder, or a metadata URI."""
    from mlprov.config import RegistryConfig  # noqa: PLC0415
    from mlprov.registry import open_registry  # noqa: PLC0415

    if target.startswith(("http://", "https://")):
        from mlprov.client import connect  # noqa: PLC0415

        secret = os.environ.get(token_env)
        if not secret:
            raise InvalidInputError(
                f"promote to a server needs its token in ${token_env} (--token-env VAR)"
            )
        return connect(target, token=secret)
    if target.startswith("sqlite:///"):
        home = Path(target[len("sqlite:///") :]).parent
        return open_registry(RegistryConfig(home=home, metadata_uri=target, artifact_uri=artifacts))
    if target.startswith(("postgresql://", "postgres://")):
        if artifacts is None:
            raise InvalidInputError("a PostgreSQL target needs --artifacts URI (file:// or s3://)")
        return open_registry(
            RegistryConfig(home=Path.cwd(), metadata_uri=target, artifact_uri=artifacts)
        )
    home = Path(target)
    if not home.is_dir():
        raise InvalidInputError(f"{target}: not a registry folder or a metadata URI")
    return open_registry(RegistryConfig(home=home, artifact_uri=artifacts))


def promote(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(metavar="REF", help="The version or deployment version to promote."),
    ],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="REGISTRY",
            help="The target registry: its folder, sqlite:///PATH or postgresql://...",
        ),
    ],
    alias: Annotated[
        str | None,
        typer.Option("--alias", metavar="ALIAS", help="Then move this alias there (its gate)."),
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option("--artifacts", metavar="URI", help="The target's artefact store URI."),
    ] = None,
    token_env: Annotated[
        str,
        typer.Option(
            "--token-env",
            metavar="VAR",
            help="For a server target: the variable holding its token.",
        ),
    ] = "MLPROV_TARGET_TOKEN",  # noqa: S107 - a variable name, not a secret
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why.")] = "",
    with_ancestors: AncestorsFlag = False,
    key: KeyOption = None,
    certificate: CertificateOption = None,
    sigstore: SigstoreFlag = False,
    identity_token: IdentityTokenOption = None,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export a version from this registry (or from the server MLPROV_REGISTRY names) and
    import it into another, through the other's trust (and, with --alias, its gate), as
    one command."""
    from mlprov.cli._direct import signer_from_options  # noqa: PLC0415

    signer = signer_from_options(
        key=key,
        certificate=certificate,
        certificate_chain=None,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    registry = state(ctx).registry()
    target = _target_registry(to, artifacts, token_env)
    try:
        done = registry.promote(
            ref, target, signer, alias=alias, with_ancestors=with_ancestors, reason=reason
        )
    finally:
        target.close()
    if as_json:
        print_json(done.to_json())
    else:
        name, _, number = done.ref.partition("/")
        moved = f"; {name}@{alias} -> {number}" if alias else ""
        say(f"promoted {ref} to {to} as {done.ref} (archive {done.archive_digest}){moved}")


def install(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
    app.command("promote")(promote)
