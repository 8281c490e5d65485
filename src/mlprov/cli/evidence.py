"""``mlprov provenance|bom|card|evidence REF``, ``mlprov attest`` and ``mlprov attach``.

The read commands show evidence only after the registry checked it
(:func:`mlprov.registry.evidence.verified_document`): its statement names the version,
the recorded signer is the bundle's, and its signature verifies, against the trust given
(``--key``, ``--certificate-chain``, ``--identity`` + ``--issuer``, as ``mlprov verify``
takes them) or else with the material its bundle carries. They say who signed and how it
was checked (on stderr beside a document, so stdout stays the document alone).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli._options import (
    IdentityOption,
    IssuerOption,
    JsonOption,
    TrustChainOption,
    TrustKeyOption,
    WideOption,
)
from mlprov.cli._output import (
    Cell,
    echo_document,
    note,
    print_json,
    print_table,
    say,
    short_digest,
    short_signer,
)
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError, MalformedDocumentError

if TYPE_CHECKING:
    from mlprov.registry import EvidenceCheck, VerifiedDocument
    from mlprov.signing import Trust

RawOption = Annotated[
    bool, typer.Option("--raw", help="Print the stored signed bundle (DSSE envelope) as is.")
]
KeyOption = Annotated[Path | None, typer.Option("--key", metavar="FILE", help="Key file (PEM).")]
ChainOption = Annotated[
    list[Path] | None,
    typer.Option("--certificate-chain", metavar="FILE", help="Trusted root / chain (PEM)."),
]


def _optional_trust(
    key: Path | None, chain: list[Path] | None, identity: str | None, issuer: str | None
) -> tuple[Trust | None, str]:
    """The trust named by the options (as ``mlprov verify`` takes them), or None, and
    what it is in words."""
    if key is None and not chain and identity is None and issuer is None:
        return None, ""
    from mlprov.cli._direct import trust_from_options  # noqa: PLC0415

    trust = trust_from_options(key=key, certificate_chain=chain, identity=identity, issuer=issuer)
    if key is not None:
        return trust, "the given key"
    if chain:
        return trust, "the given certificate chain"
    return trust, "the given Sigstore identity"


_UNTRUSTED_HINT = "give --key, --certificate-chain or --identity/--issuer to check it"

#: EvidenceCheck.signature in the table.
_SIGNATURE_WORDS = {
    "trusted": "trusted",
    "integrity-only": "integrity only",
    "unchecked": "not checked",
}


def _how_checked(check: EvidenceCheck, trusted_by: str) -> str:
    if check.signature == "trusted":
        return f"signature verified against {trusted_by}"
    if check.signature == "integrity-only":
        return (
            "signature verifies with the certificate or key its bundle carries, but was not "
            f"checked against a trusted one ({_UNTRUSTED_HINT})"
        )
    return (
        f"signature NOT checked: its bundle names its key but does not carry it ({_UNTRUSTED_HINT})"
    )


def _document_json(document: VerifiedDocument) -> dict[str, object]:
    return {
        "version": document.check.ref,
        "kind": document.evidence.kind,
        "evidence": document.evidence.to_json(),
        "verification": document.check.to_json(),
        "statement": document.statement,
    }


def _show(
    ctx: typer.Context,
    ref: str,
    kind: str,
    *,
    raw: bool,
    as_json: bool,
    trust_options: tuple[Path | None, list[Path] | None, str | None, str | None],
) -> None:
    if raw and as_json:
        raise InvalidInputError("give --raw or --json, not both")
    trust, trusted_by = _optional_trust(*trust_options)
    # Checked before anything is printed: a failure is one line on stderr, exit 1.
    document = state(ctx).registry().verified_document(ref, kind, trust)
    check = document.check
    if raw:
        _write_raw(document.bundle)
    elif as_json:
        print_json(_document_json(document))
    elif kind == "bom":
        print_json(document.statement.get("predicate", {}))
    elif kind == "model-card":
        predicate = document.statement.get("predicate")
        markdown = predicate.get("markdown") if isinstance(predicate, dict) else None
        if not isinstance(markdown, str):
            raise MalformedDocumentError(f"{check.ref}: the stored model card has no Markdown")
        echo_document(markdown)
    else:
        print_json(document.statement)
    if not as_json:
        # Here, not at the top: the use-case module loads the store (ADR 0049).
        from mlprov.registry.evidence import DOCUMENT_KINDS  # noqa: PLC0415

        # On stderr, so that stdout stays the document alone (``> provenance.json``).
        note(
            f"{DOCUMENT_KINDS[kind]} of {check.ref} ({short_digest(document.evidence.digest)}) "
            f"signed by {check.signer}: {_how_checked(check, trusted_by)}"
        )


def _write_raw(bundle: bytes) -> None:
    """The stored bundle's exact bytes; at a terminal, with control characters escaped."""
    if sys.stdout.isatty():
        echo_document(bundle.decode("utf-8", "replace"))
        return
    data = bundle if bundle.endswith(b"\n") else bundle + b"\n"
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text stream only (stdout captured in-process)
        sys.stdout.write(data.decode("utf-8", "surrogateescape"))
        return
    sys.stdout.flush()
    binary.write(data)
    binary.flush()


def provenance(
    ctx: typer.Context,
    ref: str,
    raw: RawOption = False,
    key: TrustKeyOption = None,
    certificate_chain: TrustChainOption = None,
    identity: IdentityOption = None,
    issuer: IssuerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a version's SLSA provenance statement (--raw: the signed bundle), after
    checking its subject, its signer and its signature."""
    _show(
        ctx,
        ref,
        "provenance",
        raw=raw,
        as_json=as_json,
        trust_options=(key, certificate_chain, identity, issuer),
    )


def bom(
    ctx: typer.Context,
    ref: str,
    raw: RawOption = False,
    key: TrustKeyOption = None,
    certificate_chain: TrustChainOption = None,
    identity: IdentityOption = None,
    issuer: IssuerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a version's CycloneDX 1.6 ML-BOM (--raw: the signed bundle), after checking
    its subject, its signer and its signature."""
    _show(
        ctx,
        ref,
        "bom",
        raw=raw,
        as_json=as_json,
        trust_options=(key, certificate_chain, identity, issuer),
    )


def card(
    ctx: typer.Context,
    ref: str,
    raw: RawOption = False,
    key: TrustKeyOption = None,
    certificate_chain: TrustChainOption = None,
    identity: IdentityOption = None,
    issuer: IssuerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a version's model card as Markdown (--raw: the signed bundle), after
    checking its subject, its signer and its signature."""
    _show(
        ctx,
        ref,
        "model-card",
        raw=raw,
        as_json=as_json,
        trust_options=(key, certificate_chain, identity, issuer),
    )


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

    registry = state(ctx).registry()
    document = load_document(predicate, what="predicate", syntax="json")
    signer = signer_from_options(
        key=key,
        certificate=certificate,
        certificate_chain=certificate_chain,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    evidence = registry.attest(ref, predicate_type, document, signer)
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
    from mlprov.config import Limits  # noqa: PLC0415
    from mlprov.signing import read_signature_file  # noqa: PLC0415

    registry = state(ctx).registry()
    trust = trust_from_options(
        key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
    )
    # A server applies its own limits again; here the local registry's, or the defaults.
    limits = getattr(registry, "limits", None)
    data = read_signature_file(bundle, limits if isinstance(limits, Limits) else Limits())
    evidence = registry.attach(ref, data, trust)
    if as_json:
        print_json(evidence.to_json())
    else:
        say(
            f"attached to {ref}: {evidence.predicate_type} ({evidence.digest}) "
            f"signed by {evidence.signer}"
        )


def evidence_list(
    ctx: typer.Context,
    ref: str,
    key: TrustKeyOption = None,
    certificate_chain: TrustChainOption = None,
    identity: IdentityOption = None,
    issuer: IssuerOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List the signatures and attestations stored with a version, each checked (subject,
    signer, signature) before it is listed."""
    trust, _trusted_by = _optional_trust(key, certificate_chain, identity, issuer)
    checks = state(ctx).registry().verified_evidence(ref, trust)
    if as_json:
        print_json([{**c.evidence.to_json(), "verification": c.to_json()} for c in checks])
        return
    title = f"Evidence of {checks[0].ref}" if checks else f"Evidence of {ref}"
    if wide:
        columns = ["kind", "predicate type", "signer", "signature", "digest", "added"]
    else:
        columns = ["kind", "signer", "signature", "digest"]
    rows: list[list[Cell]] = []
    for c in checks:
        e = c.evidence
        signer = short_signer(str(c.signer), wide=wide)
        digest = short_digest(e.digest, wide=wide)
        checked = _SIGNATURE_WORDS[c.signature]
        if wide:
            rows.append([e.kind, e.predicate_type, signer, checked, digest, e.created_at])
        else:
            kind: Cell = [e.kind, e.predicate_type] if e.kind == "attestation" else e.kind
            rows.append([kind, signer, checked, digest])
    print_table(title, columns, rows, wide=wide)
    if not checks:
        say(f"{ref} has no stored signatures or attestations")
    elif trust is None:
        note(f"signatures not checked against a trusted key: {_UNTRUSTED_HINT}")


def install(app: typer.Typer) -> None:
    app.command("provenance")(provenance)
    app.command("bom")(bom)
    app.command("card")(card)
    app.command("attest")(attest)
    app.command("attach")(attach)
    app.command("evidence")(evidence_list)
