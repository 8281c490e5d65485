"""``mlprov sign`` and ``mlprov verify``: for model files and folders, and registered versions.

Thin: options become a :class:`~mlprov.signing.Signer` or :class:`~mlprov.signing.Trust`
and the library or the registry service does the rest. ``sign --name NAME`` signs and
registers in one step (:func:`sign_and_register`); ``verify REF`` (a target that is not
a path on disk) verifies a registered version (:func:`verify_registered`). What needs no
Typer (the options made a signer or a trust, signing and verifying a path) lives in
:mod:`mlprov.cli._direct`, which also runs the common command lines without Typer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli import register as register_options
from mlprov.cli._direct import (
    _model_bytes,
    _present,
    _wants_bar,
    check_shard_size,
    sign_path,
    signer_from_options,
    trust_from_options,
    verify_path,
)
from mlprov.cli._output import print_json, say
from mlprov.cli._progress import byte_progress
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from mlprov.registry import VersionInput
    from mlprov.signing import Signer, Trust

__all__ = [
    "install",
    "sign",
    "sign_path",
    "signer_from_options",
    "trust_from_options",
    "verify",
    "verify_path",
]

IgnorePathsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore-paths",
        metavar="PATH",
        help="Path (relative to the model root) left out of the signature (repeatable).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ShardSizeOption = Annotated[
    int | None,
    typer.Option(
        "--shard-size",
        metavar="BYTES",
        help="Sign byte ranges of this size (OMS shard serialization; one large file is "
        "hashed on every core). Not with --name.",
    ),
]
IgnoreUnsignedFlag = Annotated[
    bool,
    typer.Option(
        "--ignore-unsigned-files",
        help="Tolerate (and report) files on disk that the signature does not cover. "
        "Not for registered versions.",
    ),
]


def sign(
    ctx: typer.Context,
    model_path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH|REF",
            help="Model file or folder to sign, or a registered version (NAME/3, NAME@ALIAS) "
            "that has no signature yet.",
            show_default=False,
        ),
    ],
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", metavar="FILE", help="Private key (PEM), alone or with --certificate."
        ),
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", metavar="FILE", help="Signing certificate (PEM) for --key."),
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-chain",
            metavar="FILE",
            help="Chain to embed after the leaf (repeatable).",
        ),
    ] = None,
    sigstore: Annotated[
        bool, typer.Option("--sigstore", help="Sign keylessly with Sigstore (needs a network).")
    ] = False,
    identity_token: Annotated[
        str | None,
        typer.Option(
            "--identity-token",
            metavar="TOKEN",
            help="OIDC token for --sigstore (else from the environment).",
        ),
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature",
            metavar="FILE",
            help="Where to write the signature (default MODEL/model.sig).",
        ),
    ] = None,
    hash_algorithm: Annotated[
        str,
        typer.Option("--hash", metavar="ALGORITHM", help="File digest: sha256, blake2b or blake3."),
    ] = "sha256",
    ignore_paths: IgnorePathsOption = None,
    allow_symlinks: Annotated[
        bool, typer.Option("--allow-symlinks", help="Follow symlinks that stay inside the model.")
    ] = False,
    passphrase_env: Annotated[
        str | None,
        typer.Option("--passphrase-env", metavar="VAR", help="Variable holding the passphrase."),
    ] = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
    shard_size: ShardSizeOption = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            metavar="NAME",
            help="Also register the signed model as this model's next version, with signed "
            "provenance, ML-BOM and model card.",
        ),
    ] = None,
    param: register_options.ParamOption = None,
    params: register_options.ParamsFile = None,
    metric: register_options.MetricOption = None,
    metrics: register_options.MetricsFile = None,
    tag: register_options.TagOption = None,
    dataset: register_options.DatasetOption = None,
    parent: register_options.ParentOption = None,
    lineage: register_options.LineageOption = None,
    source: register_options.SourceOption = None,
    run_id: register_options.RunIdOption = None,
    commit: register_options.CommitOption = None,
    code_repo: register_options.RepoOption = None,
    description: register_options.DescriptionOption = "",
    builder_id: register_options.BuilderOption = None,
    started: register_options.StartedOption = None,
    finished: register_options.FinishedOption = None,
    card: register_options.CardOption = None,
    no_git: register_options.NoGitOption = False,
    capture_environment: register_options.EnvironmentOption = False,
) -> None:
    """Sign a model file or folder in the OpenSSF Model Signing format (and with --name,
    register it with its signature and signed provenance in one step)."""
    info = None
    check_shard_size(shard_size, registering=name is not None)
    if name is not None:
        # Parse every registration input before signing: bad input changes nothing.
        info = register_options.version_input(
            param=param,
            params=params,
            metric=metric,
            metrics=metrics,
            tag=tag,
            dataset=dataset,
            parent=parent,
            lineage=lineage,
            source=source,
            run_id=run_id,
            commit=commit,
            code_repo=code_repo,
            description=description,
            builder_id=builder_id,
            started=started,
            finished=finished,
            card=card,
            detect_git=not no_git,
            capture_environment=capture_environment,
        )
    signer = signer_from_options(
        key=key,
        certificate=certificate,
        certificate_chain=certificate_chain,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    if name is None and not model_path.exists() and not model_path.is_symlink():
        sign_registered(
            ctx,
            str(model_path),
            signer,
            signature=signature,
            disk_options=bool(ignore_paths or shard_size or allow_symlinks)
            or hash_algorithm.lower() != "sha256",
            as_json=as_json,
            quiet=quiet,
        )
        return
    if name is not None and info is not None:
        sign_and_register(
            ctx,
            model_path,
            name,
            signer,
            info,
            signature=signature,
            hash_algorithm=hash_algorithm.lower(),
            ignore_paths=list(ignore_paths or []),
            allow_symlinks=allow_symlinks,
            quiet=quiet,
            as_json=as_json,
        )
        return
    sign_path(
        model_path,
        signer,
        signature=signature,
        hash_algorithm=hash_algorithm.lower(),
        ignore_paths=list(ignore_paths or []),
        allow_symlinks=allow_symlinks,
        quiet=quiet,
        as_json=as_json,
        shard_size=shard_size,
    )


def sign_registered(
    ctx: typer.Context,
    target: str,
    signer: Signer,
    *,
    signature: Path | None,
    disk_options: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """``mlprov sign REF``: sign a version registered without a signature, over the
    manifest the registry recorded (and write the signature to --signature if given)."""
    from mlprov.fs import write_file_atomically  # noqa: PLC0415
    from mlprov.refs import ModelRef  # noqa: PLC0415

    try:
        ref = ModelRef.parse(target)
    except InvalidInputError as e:
        raise NotFoundError(
            f"{target}: neither a file or folder nor a registered version reference"
        ) from e
    if disk_options:
        raise InvalidInputError(
            "--hash, --ignore-paths, --shard-size and --allow-symlinks are for files on disk; "
            "a registered version is signed over its recorded manifest"
        )
    registry = state(ctx).registry()
    stored = registry.sign_version(ref, signer)
    version = registry.get_version(ref)
    if signature is not None:
        write_file_atomically(signature, registry.evidence_content(version.ref, stored.digest))
    if as_json:
        print_json({"ref": version.ref, "digest": version.digest, "signature": stored.to_json()})
    elif not quiet:
        where = f"; signature written to {signature}" if signature is not None else ""
        say(f"signed {version.ref} {version.digest} as {stored.signer}{where}")


def sign_and_register(
    ctx: typer.Context,
    model_path: Path,
    name: str,
    signer: Signer,
    info: VersionInput,
    *,
    signature: Path | None,
    hash_algorithm: str,
    ignore_paths: list[str],
    allow_symlinks: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Sign, store and register in one step that completes or leaves nothing behind."""
    if not model_path.exists() and not model_path.is_symlink():  # a looping link is not absent
        raise NotFoundError(f"{model_path}: no such file or directory")
    registry = state(ctx).registry()
    total = _model_bytes(model_path) if _wants_bar(quiet) else 0
    with byte_progress(f"signing {model_path.name}", total, quiet=quiet) as progress:
        signed = registry.sign_and_register(
            model_path,
            name,
            signer,
            info,
            hash_algorithm=hash_algorithm,
            ignore_paths=ignore_paths,
            allow_symlinks=allow_symlinks,
            signature_path=signature,
            progress=progress,
        )
    version = signed.version
    if as_json:
        print_json(
            {
                "ref": version.ref,
                "digest": version.digest,
                "signature": str(signed.signature_path),
                "signer": signed.signer.to_json_value(),
                "evidence": [e.to_json() for e in version.evidence],
            }
        )
    elif not quiet:
        say(
            f"signed and registered {version.ref} {version.digest} as {signed.signer}; "
            f"signature written to {signed.signature_path}; "
            f"evidence: {', '.join(e.kind for e in version.evidence)}"
        )


def verify_registered(
    ctx: typer.Context,
    target: str,
    trust: Trust,
    *,
    local_copy: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """``mlprov verify REF``: a registered version's stored signature against the trust
    given, its recorded manifest against the signed one, and its bytes: those stored in
    the registry, or a local copy at ``--path``."""
    from mlprov.refs import ModelRef  # noqa: PLC0415

    try:
        ref = ModelRef.parse(target)
    except InvalidInputError as e:
        raise NotFoundError(
            f"{target}: neither a file or folder nor a registered version reference"
        ) from e
    # Against a server the checks run here, on what it sends (mlprov.client._checks).
    registry = state(ctx).registry()
    try:
        version = registry.get_version(ref)
    except NotFoundError:
        if not state(ctx).client_mode or not registry.is_deployment(ref.name):
            raise
        from mlprov.cli.deployments import verify_on_server  # noqa: PLC0415

        verify_on_server(ctx, ref, trust, local_copy=local_copy, as_json=as_json)
        return
    total = version.size if _wants_bar(quiet) else 0
    with byte_progress(f"verifying {version.ref}", total, quiet=quiet) as progress:
        report = registry.verify_version(version.ref, trust, path=local_copy, progress=progress)
    _present(report, version.ref, as_json)


def verify_with_registry(
    ctx: typer.Context,
    target: str,
    *,
    deep: bool,
    fmt: str,
    output: Path | None,
    narrow: Trust | None = None,
) -> None:
    """``mlprov verify REF`` with the registry's trust and policy; trust options given as
    well (``narrow``) must verify the model signature too."""
    from mlprov.errors import PolicyDenied, VerificationError  # noqa: PLC0415
    from mlprov.fs import write_file_atomically  # noqa: PLC0415
    from mlprov.refs import ModelRef  # noqa: PLC0415
    from mlprov.verification.render import REPORT_FORMATS, render_checks  # noqa: PLC0415

    if fmt not in REPORT_FORMATS:
        raise InvalidInputError(
            f"unknown format {fmt[:40]!r}: use one of {', '.join(REPORT_FORMATS)}"
        )
    try:
        ref = ModelRef.parse(target)
    except InvalidInputError as e:
        raise NotFoundError(
            f"{target}: neither a file or folder nor a registered version reference"
        ) from e
    judgement = state(ctx).local_registry("verify REF").verify(ref, deep=deep, narrow=narrow)
    checks = list(judgement.report.checks)
    if judgement.decision is not None:
        checks.extend(judgement.decision.checks)
    text = render_checks(checks, fmt, subject=judgement.report.subject)
    if output is not None:
        write_file_atomically(output, text.encode("utf-8"), what="report")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if judgement.policy_digest is None:
        raise VerificationError(
            f"{target}: no policy set is applied, so nothing is trusted to verify it against "
            "(apply one with `mlprov policy apply DIR`, or give --key, --certificate-chain "
            "or --identity)"
        )
    failures = judgement.report.failures
    if failures:
        raise VerificationError(f"{target}: {failures[0].id}: {failures[0].message}")
    if judgement.decision is not None and not judgement.decision.allowed:
        raise PolicyDenied(f"{target}: {judgement.decision.message}")


def verify(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="PATH|REF",
            help="Model file or folder, or a registered version (NAME/3, NAME@ALIAS).",
            show_default=False,
        ),
    ],
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature", metavar="FILE", help="Signature file (default MODEL/model.sig)."
        ),
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", metavar="FILE", help="Trusted public key (PEM).")
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-chain",
            metavar="FILE",
            help="Trusted root or CA certificate (PEM, repeatable).",
        ),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(
            "--identity", metavar="IDENTITY", help="Trusted Sigstore identity (e-mail, URI)."
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option("--issuer", metavar="URL", help="OIDC issuer of the Sigstore identity."),
    ] = None,
    ignore_paths: IgnorePathsOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
    ignore_unsigned_files: IgnoreUnsignedFlag = False,
    local_copy: Annotated[
        Path | None,
        typer.Option(
            "--path",
            metavar="DIR",
            help="With a registered version: verify this local copy of its files.",
        ),
    ] = None,
    deep: Annotated[
        bool,
        typer.Option("--deep", help="Registry trust: also re-hash every stored blob."),
    ] = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="Registry trust: text, json, sarif or junit."
        ),
    ] = "text",
    output: Annotated[
        Path | None,
        typer.Option("--output", metavar="FILE", help="Registry trust: write the report there."),
    ] = None,
) -> None:
    """Verify a model against its OMS signature; exit 0 only if every check passes.

    A registered version is verified with the registry's trust (its active policy set)
    by the verification engine, and NAME@ALIAS also by the alias's policy; trust options
    given as well narrow that trust (the model signature must verify with them too).
    With no policy set applied, the trust options alone are the trust."""
    path = Path(target)
    on_disk = path.exists() or path.is_symlink()
    if not on_disk and not (key or certificate_chain or identity or issuer):
        if state(ctx).client_mode:
            raise InvalidInputError(
                "mlprov verify REF against a server needs --key, --certificate-chain or "
                "--identity + --issuer: the version is verified here, and the server's "
                "policy is not trusted to say whom to trust (its judgement: `mlprov policy "
                "check`)"
            )
        if ignore_unsigned_files or local_copy is not None or signature is not None:
            raise InvalidInputError(
                "--ignore-unsigned-files, --path and --signature need the trust options; "
                "without them a registered version is verified with the registry's trust"
            )
        verify_with_registry(ctx, target, deep=deep, fmt="json" if as_json else fmt, output=output)
        return
    trust = trust_from_options(
        key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
    )
    if (
        not on_disk
        and local_copy is None
        and signature is None
        and not ignore_unsigned_files
        and not state(ctx).client_mode  # over HTTP the options alone are the trust
    ):
        registry = state(ctx).registry()
        if registry.policy() is not None:
            # The registry holds the trust; options given as well narrow it, never widen it.
            verify_with_registry(
                ctx,
                target,
                deep=deep,
                fmt="json" if as_json else fmt,
                output=output,
                narrow=trust,
            )
            return
    if deep or fmt != "text" or output is not None:
        raise InvalidInputError(
            "--deep, --format and --output go with a registered version verified with the "
            "registry's trust (a policy set applied, or no --key, --certificate-chain or "
            "--identity)"
        )
    if not on_disk:
        if ignore_unsigned_files:
            raise InvalidInputError(
                "--ignore-unsigned-files is for a model on disk; a registered version is "
                "verified against exactly its signed files"
            )
        verify_registered(ctx, target, trust, local_copy=local_copy, quiet=quiet, as_json=as_json)
        return
    if local_copy is not None:
        raise InvalidInputError("--path goes with a registered version, not a model on disk")
    verify_path(
        path,
        trust,
        signature=signature,
        ignore_paths=list(ignore_paths or []),
        quiet=quiet,
        as_json=as_json,
        ignore_unsigned_files=ignore_unsigned_files,
    )


def install(app: typer.Typer) -> None:
    app.command("sign")(sign)
    app.command("verify")(verify)
