"""``mlprov pull NAME@ALIAS --to DIR``: what a serving container runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state


def pull(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(metavar="NAME@ALIAS", help="The alias to serve (models:/ or short).")
    ],
    to: Annotated[Path, typer.Option("--to", metavar="DIR", help="Where to install it.")],
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", metavar="FILE", help="Against a server: the signer's public key (PEM)."
        ),
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-chain",
            metavar="FILE",
            help="Against a server: the signer's root or CA certificate (PEM, repeatable).",
        ),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(
            "--identity", metavar="IDENTITY", help="Against a server: the Sigstore identity."
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option("--issuer", metavar="URL", help="OIDC issuer of the Sigstore identity."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Resolve the alias once, verify the version with the registry's trust and the
    alias's policy, and only then install it (with model.sig) atomically at DIR.

    Against a server (MLPROV_REGISTRY=http(s)://...) the server's gate judges the alias's
    policy and the signature is verified here, against the trust option given (--key,
    --certificate-chain, or --identity with --issuer), which is required there."""
    from mlprov.errors import InvalidInputError  # noqa: PLC0415

    cli = state(ctx)
    given = any((key, certificate_chain, identity, issuer))
    if cli.client_mode:
        from mlprov.cli._direct import trust_from_options  # noqa: PLC0415

        if not given:
            raise InvalidInputError(
                "pull against a server verifies the signature here: give the signer's trust "
                "(--key, --certificate-chain, or --identity with --issuer)"
            )
        trust = trust_from_options(
            key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
        )
        remote = cli.server("pull").pull(ref, to, trust)
        signer = str(remote.install.signature.signer)
        if as_json:
            print_json(
                {
                    "ref": remote.version.ref,
                    "digest": remote.version.digest,
                    "path": str(remote.path),
                    "policy_digest": remote.policy_digest,
                    "verified_signer": signer,
                }
            )
        else:
            say(
                f"pulled {ref} -> {remote.version.ref} {remote.version.digest} to "
                f"{remote.path} (signature by {signer} verified here; server's policy "
                f"{remote.policy_digest} allowed it)"
            )
        return
    if given:
        raise InvalidInputError(
            "--key, --certificate-chain, --identity and --issuer are for pulling from a "
            "server; locally the registry's active policy set is the trust"
        )
    pulled = cli.local_registry("pull").pull(ref, to)
    if as_json:
        decision = pulled.judgement.decision
        print_json(
            {
                "ref": pulled.version.ref,
                "digest": pulled.version.digest,
                "path": str(pulled.path),
                "policy_digest": pulled.judgement.policy_digest,
                "decision": decision.to_json() if decision is not None else None,
            }
        )
    else:
        say(
            f"pulled {ref} -> {pulled.version.ref} {pulled.version.digest} to {pulled.path} "
            f"(verified; policy {pulled.judgement.policy_digest})"
        )


def install(app: typer.Typer) -> None:
    app.command("pull")(pull)
