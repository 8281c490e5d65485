"""``mlprov provenance|bom|card REF``, ``mlprov attest`` and ``mlprov attach``: signed evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state
from mlprov.errors import MalformedDocumentError

RawOption = Annotated[
    bool, typer.Option("--raw", help="Print the stored signed bundle (DSSE envelope) as is.")
]
KeyOption = Annotated[Path | None, typer.Option("--key", metavar="FILE", help="Key file (PEM).")]
ChainOption = Annotated[
    list[Path] | None,
    typer.Option("--certificate-chain", metavar="FILE", help="Trusted root / chain (PEM)."),
]
IdentityOption = Annotated[
    str | None, typer.Option("--identity", metavar="IDENTITY", help="Sigstore identity.")
]
IssuerOption = Annotated[
    str | None, typer.Option("--issuer", metavar="URL", help="Sigstore OIDC issuer.")
]


def _show(ctx: typer.Context, ref: str, kind: str, raw: bool) -> None:
    stored = state(ctx).registry().document(ref, kind)
    if raw:
        typer.echo(stored.bundle.decode("utf-8"))
        return
    predicate = stored.statement.get("predicate", {})
    if kind == "bom":
        print_json(predicate)
    elif kind == "model-card":
        markdown = predicate.get("markdown") if isinstance(predicate, dict) else None
        if not isinstance(markdown, str):
            raise MalformedDocumentError(f"{ref}: the stored model card has no Markdown")
        typer.echo(markdown, nl=not markdown.endswith("\n"))
    else:
        print_json(stored.statement)


def provenance(ctx: typer.Context, ref: str, raw: RawOption = False) -> None:
    """Print a version's SLSA provenance statement (--raw: the signed bundle)."""
    _show(ctx, ref, "provenance", raw)


def bom(ctx: typer.Context, ref: str, raw: RawOption = False) -> None:
    """Print a version's CycloneDX 1.6 ML-BOM (--raw: the signed bundle)."""
    _show(ctx, ref, "bom", raw)


def card(ctx: typer.Context, ref: str, raw: RawOption = False) -> None:
    """Print a version's model card as Markdown (--raw: the signed bundle)."""
    _show(ctx, ref, "model-card", raw)


def attest(
    ctx: typer.Context,
    ref: str,
    predicate_type: Annotated[
        str,
        typer.Option("--predicate-type", metavar="URI", help="URI naming the predicate's schema."),
    ],
    predicate: Annotated[
        Path, typer.Option("--predicate", metavar="FILE", help="JSON file: the predicate.")
    ],
    key: KeyOption = None,
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", metavar="FILE", help="Signing certificate (PEM)."),
    ] = None,
    certificate_chain: ChainOption = None,
    sigstore: Annotated[bool, typer.Option("--sigstore", help="Sign keylessly.")] = False,
    identity_token: Annotated[
        str | None,
        typer.Option(
            "--identity-token",
            metavar="TOKEN",
            help="OIDC token for --sigstore (else from the environment).",
        ),
    ] = None,
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env", metavar="VAR", help="Variable holding the key's passphrase."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Sign new evidence about a version (e.g. evaluation results) and store it."""
    from mlprov.cli.signing import signer_from_options  # noqa: PLC0415
    from mlprov.provenance import load_document  # noqa: PLC0415

    document = load_document(predicate, what="predicate", syntax="json")
    signer = signer_from_options(
        key=key,
        certificate=certificate,
        certificate_chain=certificate_chain,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    evidence = state(ctx).registry().attest(ref, predicate_type, document, signer)
    if as_json:
        print_json(evidence.to_json())
    else:
        say(f"attested {ref}: {predicate_type} ({evidence.digest}) signed by {evidence.signer}")


def attach(
    ctx: typer.Context,
    ref: str,
    bundle: Annotated[
        Path, typer.Argument(metavar="FILE", help="Sigstore bundle holding a DSSE attestation.")
    ],
    key: KeyOption = None,
    certificate_chain: ChainOption = None,
    identity: IdentityOption = None,
    issuer: IssuerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Attach an attestation signed elsewhere (e.g. CI's SLSA provenance), after checking
    its signature against the identity given and that its subject is this version."""
    from mlprov.cli.signing import trust_from_options  # noqa: PLC0415
    from mlprov.signing import read_signature_file  # noqa: PLC0415

    registry = state(ctx).registry()
    trust = trust_from_options(
        key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
    )
    data = read_signature_file(bundle, registry.limits)
    evidence = registry.attach(ref, data, trust)
    if as_json:
        print_json(evidence.to_json())
    else:
        say(
            f"attached to {ref}: {evidence.predicate_type} ({evidence.digest}) "
            f"signed by {evidence.signer}"
        )


def evidence_list(ctx: typer.Context, ref: str, as_json: JsonOption = False) -> None:
    """List the signatures and attestations stored with a version."""
    from mlprov.cli._output import print_table  # noqa: PLC0415

    items = state(ctx).registry().evidence(ref)
    if as_json:
        print_json([e.to_json() for e in items])
        return
    print_table(
        f"Evidence of {ref}",
        ["kind", "predicate type", "signer", "digest", "added"],
        ((e.kind, e.predicate_type, e.signer, e.digest, e.created_at) for e in items),
    )
    if not items:
        say(f"{ref} has no stored signatures or attestations")


def install(app: typer.Typer) -> None:
    app.command("provenance")(provenance)
    app.command("bom")(bom)
    app.command("card")(card)
    app.command("attest")(attest)
    app.command("attach")(attach)
    app.command("evidence")(evidence_list)
