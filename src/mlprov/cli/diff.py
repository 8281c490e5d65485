"""``mlprov diff A B`` and ``mlprov rebuild-check REF PATH``.

``diff`` shows two versions side by side, each value taken from verified evidence where
the registry's trust verifies some and marked as the registry's record otherwise
(:mod:`mlprov.comparison`); it changes nothing and exits 0. Against a server the
evidence is verified here against the trust options given, which are required there
(:mod:`mlprov.client._diff`). ``rebuild-check`` hashes a
re-derived copy and exits 0 when its files and digests are the registered version's, 1
when they differ (the error line says how), 2 for bad input; ``--attest`` records the
result as a signed attestation first (docs/diff.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlprov.cli._options import (
    IdentityOption,
    IdentityTokenOption,
    IssuerOption,
    JsonOption,
    PassphraseEnvOption,
    SigstoreFlag,
    TrustChainOption,
    TrustKeyOption,
    WideOption,
)
from mlprov.cli._output import (
    Cell,
    human_size,
    print_json,
    print_table,
    say,
    short_digest,
    short_signer,
)
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError

if TYPE_CHECKING:
    from mlprov.comparison import DeploymentDiff, FileComparison, Section, VersionDiff
    from mlprov.comparison._deployments import DeploymentSummary
    from mlprov.registry import RebuildCheck
    from mlprov.store.deployments import DeploymentMember

FormatOption = Annotated[
    str,
    typer.Option("--format", metavar="FORMAT", help="text or json (shapes in docs/diff.md)."),
]

_FORMATS = ("text", "json")


def _format(fmt: str, as_json: bool) -> str:
    if fmt not in _FORMATS:
        raise InvalidInputError(f"unknown format {fmt[:40]!r}: use text or json")
    return "json" if as_json else fmt


def diff(
    ctx: typer.Context,
    left: Annotated[str, typer.Argument(metavar="A", help="A version: NAME/N or NAME@ALIAS.")],
    right: Annotated[str, typer.Argument(metavar="B", help="The version to compare it with.")],
    key: TrustKeyOption = None,
    certificate_chain: TrustChainOption = None,
    identity: IdentityOption = None,
    issuer: IssuerOption = None,
    fmt: FormatOption = "text",
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Compare two versions: params, metrics, datasets, code, lineage, evidence and files;
    or two deployment versions: members by role, metadata, bundle statements.

    Values come from evidence the registry's trust verifies; where a version has none, from
    the registry's records, marked unverified. Changes nothing. Against a server
    (MLPROV_REGISTRY=http(s)://...) the evidence is verified here against the trust given
    (--key, --certificate-chain, or --identity with --issuer), which is required there.
    """
    from mlprov.comparison import DeploymentDiff  # noqa: PLC0415

    chosen = _format(fmt, as_json)
    cli = state(ctx)
    given = key is not None or bool(certificate_chain) or identity is not None or issuer is not None
    result: VersionDiff | DeploymentDiff
    if cli.client_mode:
        from mlprov.cli._direct import trust_from_options  # noqa: PLC0415

        if not given:
            raise InvalidInputError(
                "diff against a server verifies the evidence here: give the signer's trust "
                "(--key, --certificate-chain, or --identity and --issuer); the server's "
                "policy is not trusted to say whom to trust"
            )
        trust = trust_from_options(
            key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
        )
        result = cli.server("diff").diff(left, right, trust)
        source = "the trust given"
    else:
        if given:
            raise InvalidInputError(
                "--key, --certificate-chain, --identity and --issuer are for a server; "
                "locally the evidence is checked with the registry's trust (its policy set)"
            )
        result = cli.local_registry("diff").diff(left, right)
        source = "the registry's trust"
    if chosen == "json":
        print_json(result.to_json())
    elif isinstance(result, DeploymentDiff):
        _show_deployment_diff(result, wide, source)
    else:
        _show_diff(result, wide, source)


def _statement(summary: DeploymentSummary, source: str) -> str:
    if summary.statement_verified:
        return f"statement verifies with {source}"
    failed = "; ".join(c.message for c in summary.checks if c.status.value != "passed")
    return f"statement does NOT verify with {source}: {failed}"


def _member(member: DeploymentMember | None, wide: bool) -> Cell:
    if member is None:
        return None
    return [member.ref, short_digest(member.digest, wide=wide)]


def _show_deployment_diff(result: DeploymentDiff, wide: bool, source: str) -> None:
    names = (result.left.ref, result.right.ref)
    say(f"diff {names[0]} -> {names[1]} (deployments)")
    for summary in (result.left, result.right):
        say(
            f"  {summary.ref}  bundle {short_digest(summary.bundle_digest, wide=wide)}  "
            f"signed by {short_signer(summary.signer, wide=wide)} (as recorded)  "
            f"{_statement(summary, source)}"
        )
    counts = {c: sum(1 for r in result.roles if r.change == c) for c in _ROLE_CHANGES}
    say("roles: " + ", ".join(f"{n} {c}" for c, n in counts.items()))
    rows: list[list[Cell]] = [
        [r.role, _member(r.left, wide), _member(r.right, wide), r.change] for r in result.roles
    ]
    print_table(None, ["role", names[0], names[1], "change"], rows, wide=wide)
    differences = [m for m in result.metadata if m.change != "same"]
    same = len(result.metadata) - len(differences)
    if differences:
        say(f"metadata: {len(differences)} differ, {same} the same")
        print_table(
            None,
            ["key", names[0], names[1], "change"],
            [[m.key, m.left, m.right, m.change] for m in differences],
            wide=wide,
        )
    else:
        say(f"metadata: no differences, {same} the same")
    for role in result.roles:
        if role.diff is not None:
            say(f"role {role.role}:")
            _show_diff(role.diff, wide, source)


_ROLE_CHANGES = ("changed", "added", "removed", "same")


def _value(section: str, value: Any, wide: bool) -> Cell:
    """A section's value, short: a dataset as its URI and digest, a commit cut to 12
    digits, anything else as canonical JSON."""
    if value is None:
        return None
    if section == "datasets" and isinstance(value, dict):
        return [str(value.get("uri")), short_digest(str(value.get("digest")), wide=wide)]
    if section == "lineage" and isinstance(value, str):
        return short_digest(value, wide=wide)
    if isinstance(value, str):
        if section == "code" and not wide and re.fullmatch(r"[0-9a-f]{40,64}", value):
            return value[:12] + "…"
        return value
    from mlprov.canonical import canonical_json  # noqa: PLC0415

    return canonical_json(value, "value").decode("utf-8")


def _sources(verified: tuple[bool, bool], names: tuple[str, str]) -> str:
    if all(verified):
        return "from verified evidence"
    unverified = [name for name, ok in zip(names, verified, strict=True) if not ok]
    return f"{' and '.join(unverified)}: registry record, unverified"


def _show_section(section: Section, names: tuple[str, str], wide: bool) -> None:
    differences = section.differences
    same = len(section.entries) - len(differences)
    heading = f"{section.name} ({_sources(section.verified, names)})"
    if not differences:
        say(f"{heading}: no differences, {same} the same")
        return
    say(f"{heading}: {len(differences)} differ, {same} the same")
    rows: list[list[Cell]] = [
        [
            entry.key,
            _value(section.name, entry.left, wide),
            _value(section.name, entry.right, wide),
            entry.change,
        ]
        for entry in differences
    ]
    print_table(None, ["key", names[0], names[1], "change"], rows, wide=wide)


def _show_files(files: FileComparison, names: tuple[str, str], wide: bool) -> None:
    if files.identical:
        say(f"files: {files.summary()}")
        return
    rows: list[list[Cell]] = []
    for change in files.changes:
        rows.append(
            [
                change.path,
                change.change,
                *(
                    [
                        human_size(entry.size or 0, wide=wide),
                        short_digest(str(entry.digest), wide=wide),
                    ]
                    if entry is not None
                    else None
                    for entry in (change.left, change.right)
                ),
            ]
        )
    print_table(f"files ({files.summary()})", ["path", "change", *names], rows, wide=wide)


def _show_diff(result: VersionDiff, wide: bool, source: str) -> None:
    names = (result.left.ref, result.right.ref)
    say(f"diff {names[0]} -> {names[1]}")
    for summary in (result.left, result.right):
        verdict = (
            "verifies"
            if summary.verified
            else f"does NOT verify (failed: {', '.join(summary.failed_checks)})"
        )
        say(
            f"  {summary.ref}  {short_digest(summary.digest, wide=wide)}  registered by "
            f"{summary.created_by}  {verdict}"
        )
    for section in result.sections:
        _show_section(section, names, wide)
    rows: list[list[Cell]] = [
        [
            summary.ref,
            # Attestations differ by what they state: their predicate type says it.
            [item.kind, item.predicate_type] if item.kind == "attestation" else item.kind,
            short_signer(item.signer, wide=wide),
            item.status,
        ]
        for summary in (result.left, result.right)
        for item in summary.evidence
    ]
    if rows:
        say(f"evidence (signer as recorded; status: checked with {source})")
        print_table(None, ["version", "kind", "signer", "status"], rows, wide=wide)
    else:
        say("evidence: none on either version")
    _show_files(result.files, names, wide)


def rebuild_check(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="The registered version.")],
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="The re-derived model (folder or file).")
    ],
    attest: Annotated[
        bool, typer.Option("--attest", help="Record the result as a signed attestation.")
    ] = False,
    key: Annotated[
        Path | None, typer.Option("--key", metavar="FILE", help="Signing key (PEM) for --attest.")
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", metavar="FILE", help="Signing certificate (PEM)."),
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option("--certificate-chain", metavar="FILE", help="Certificate chain (PEM)."),
    ] = None,
    sigstore: SigstoreFlag = False,
    identity_token: IdentityTokenOption = None,
    passphrase_env: PassphraseEnvOption = None,
    ignore_paths: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-paths", metavar="PATH", help="Leave this path out (as at registration)."
        ),
    ] = None,
    allow_symlinks: Annotated[
        bool, typer.Option("--allow-symlinks", help="Follow symlinks that stay inside the model.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    trust_key: Annotated[
        Path | None,
        typer.Option(
            "--trust-key",
            metavar="PUB",
            help="Against a server: the public key (PEM) REF's signature must verify with.",
        ),
    ] = None,
    trust_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust-chain",
            metavar="FILE",
            help="Against a server: the root or CA certificate (PEM, repeatable) instead.",
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
    fmt: FormatOption = "text",
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Is PATH the registered version REF? Exit 0 if its files and digests are the same, 1
    if not (saying which differ); --attest records the result as signed evidence.

    Against a server (MLPROV_REGISTRY=http(s)://...) PATH is compared with the manifest
    REF's stored signature signs, verified here against the trust given (--trust-key,
    --trust-chain, or --identity with --issuer), which is required there."""
    from mlprov.errors import VerificationError  # noqa: PLC0415

    chosen = _format(fmt, as_json)
    signer = None
    if attest:
        from mlprov.cli.signing import signer_from_options  # noqa: PLC0415

        signer = signer_from_options(
            key=key,
            certificate=certificate,
            certificate_chain=certificate_chain,
            sigstore=sigstore,
            identity_token=identity_token,
            passphrase_env=passphrase_env,
        )
    elif key is not None or certificate is not None or certificate_chain or sigstore:
        raise InvalidInputError("signing options record an attestation: add --attest")
    from mlprov.cli._progress import byte_progress  # noqa: PLC0415

    cli = state(ctx)
    trust_options = (trust_key, trust_chain, identity, issuer)
    if cli.client_mode:
        from mlprov.cli._direct import trust_from_options  # noqa: PLC0415

        if not any(trust_options):
            raise InvalidInputError(
                "rebuild-check against a server verifies REF's signature here: give the "
                "signer's trust (--trust-key, --trust-chain, or --identity and --issuer)"
            )
        trust = trust_from_options(
            key=trust_key, certificate_chain=trust_chain, identity=identity, issuer=issuer
        )
        server = cli.server("rebuild-check")
        expected = server.get_version(ref).size
        with byte_progress(f"hashing {path.name or path}", expected, quiet=quiet) as progress:
            result = server.rebuild_check(
                ref,
                path,
                trust,
                signer=signer,
                ignore_paths=list(ignore_paths or []),
                allow_symlinks=allow_symlinks,
                progress=progress,
            )
    else:
        if any(trust_options):
            raise InvalidInputError(
                "--trust-key, --trust-chain, --identity and --issuer are for a server; "
                "locally REF is compared with the registry's recorded manifest"
            )
        registry = cli.local_registry("rebuild-check")
        # The registered size is what a faithful rebuild hashes: the bar's total.
        expected = registry.get_version(ref).size
        with byte_progress(f"hashing {path.name or path}", expected, quiet=quiet) as progress:
            result = registry.rebuild_check(
                ref,
                path,
                signer=signer,
                ignore_paths=list(ignore_paths or []),
                allow_symlinks=allow_symlinks,
                progress=progress,
            )
    if chosen == "json":
        print_json(result.to_json())
    else:
        _show_rebuild(result, path, wide)
    if not result.identical:
        raise VerificationError(
            f"{path} is not {result.ref}: {result.files.summary()} "
            f"(rebuilt {short_digest(result.rebuilt_digest)}, registered "
            f"{short_digest(result.registered_digest)})"
        )


def _show_rebuild(result: RebuildCheck, path: Path, wide: bool) -> None:
    names = ("registered", "rebuilt")
    if result.identical:
        say(
            f"{path} is {result.ref}: {result.files.summary()}, digest "
            f"{short_digest(result.registered_digest, wide=wide)}"
        )
    else:
        _show_files(result.files, names, wide)
    if result.attestation is not None:
        say(
            f"attested {result.ref}: {result.attestation.predicate_type} "
            f"({result.attestation.digest}) signed by {result.attestation.signer}"
        )


def install(app: typer.Typer) -> None:
    app.command("diff")(diff)
    app.command("rebuild-check")(rebuild_check)
