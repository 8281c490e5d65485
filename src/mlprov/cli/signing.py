"""``mlprov sign`` and ``mlprov verify``: for model files and folders, and registered versions.

Thin: options become a :class:`~mlprov.signing.Signer` or :class:`~mlprov.signing.Trust`
and the library or the registry service does the rest. ``sign --name NAME`` signs and
registers in one step (:func:`sign_and_register`); ``verify REF`` (a target that is not
a path on disk) verifies a registered version (:func:`verify_registered`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli import register as register_options
from mlprov.cli._output import print_json, say
from mlprov.cli._progress import byte_progress
from mlprov.cli._state import state
from mlprov.cli.keys import read_passphrase, read_private_key_file
from mlprov.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from mlprov.service import VersionInput
    from mlprov.signing import Signer, Trust, VerificationReport

__all__ = ["install", "run_simple_form", "sign", "verify"]

IgnorePathsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore-paths",
        help="Path (relative to the model root) left out of the signature (repeatable).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"{what} {path}: no such file") from e
    except IsADirectoryError as e:
        raise InvalidInputError(f"{what} {path} is a folder, not a file") from e
    except PermissionError as e:
        raise InvalidInputError(f"{what} {path}: permission denied") from e


def _model_bytes(path: Path) -> int:
    """Total size of the regular files below ``path`` (for the progress bar only)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _wants_bar(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def signer_from_options(
    *,
    key: Path | None,
    certificate: Path | None,
    certificate_chain: list[Path] | None,
    sigstore: bool,
    identity_token: str | None,
    passphrase_env: str | None,
) -> Signer:
    """The signer the options name: --key, --certificate + --key, or --sigstore."""
    from mlprov.signing import CertificateSigner, KeySigner, SigstoreSigner  # noqa: PLC0415

    if sigstore:
        if key is not None or certificate is not None or certificate_chain:
            raise InvalidInputError("--sigstore signs keylessly: drop --key and --certificate")
        return SigstoreSigner(identity_token)
    if identity_token is not None:
        raise InvalidInputError("--identity-token is only for --sigstore")
    if key is None:
        raise InvalidInputError(
            "say how to sign: --key KEY, --certificate CERT --key KEY, or --sigstore"
        )
    passphrase = read_passphrase(passphrase_env)
    key_pem = read_private_key_file(key)
    if certificate is None:
        if certificate_chain:
            raise InvalidInputError("--certificate-chain needs --certificate")
        return KeySigner.from_pem(key_pem, passphrase)
    return CertificateSigner.from_pem(
        key_pem,
        _read_pem(certificate, "certificate"),
        [_read_pem(path, "certificate chain") for path in certificate_chain or []],
        passphrase,
    )


def trust_from_options(
    *,
    key: Path | None,
    certificate_chain: list[Path] | None,
    identity: str | None,
    issuer: str | None,
) -> Trust:
    """The trust the options name: --key, --certificate-chain, or --identity + --issuer."""
    from mlprov.signing import CertificateTrust, KeyTrust, SigstoreTrust  # noqa: PLC0415

    given = [
        name
        for name, present in (
            ("--key", key is not None),
            ("--certificate-chain", bool(certificate_chain)),
            ("--identity/--issuer", identity is not None or issuer is not None),
        )
        if present
    ]
    if len(given) != 1:
        raise InvalidInputError(
            "say what to trust, once: --key PUBLIC_KEY, --certificate-chain ROOT, or "
            f"--identity ID --issuer URL (given: {', '.join(given) or 'none'})"
        )
    if key is not None:
        return KeyTrust(_read_pem(key, "public key"))
    if certificate_chain:
        return CertificateTrust([_read_pem(p, "certificate chain") for p in certificate_chain])
    if not identity or not issuer:
        raise InvalidInputError("Sigstore verification needs both --identity and --issuer")
    return SigstoreTrust(identity, issuer)


def sign_path(
    model_path: Path,
    signer: Signer,
    *,
    signature: Path | None,
    hash_algorithm: str,
    ignore_paths: list[str],
    allow_symlinks: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Sign a model on disk and write its detached signature."""
    from mlprov.signing import sign_model  # noqa: PLC0415

    if not model_path.exists():
        raise NotFoundError(f"{model_path}: no such file or directory")
    total = _model_bytes(model_path) if _wants_bar(quiet) else 0
    with byte_progress(f"hashing {model_path.name}", total, quiet=quiet) as progress:
        result = sign_model(
            model_path,
            signer,
            hash_algorithm=hash_algorithm,
            ignore_paths=ignore_paths,
            allow_symlinks=allow_symlinks,
            signature_path=signature,
            progress=progress,
        )
    if as_json:
        print_json(
            {
                "signature": str(result.signature_path),
                "signer": result.signer.to_json_value(),
                "digest": str(result.manifest.digest),
                "hash_algorithm": result.manifest.algorithm,
                "files": len(result.manifest),
                "bytes": result.manifest.total_size,
            }
        )
    elif not quiet:
        say(
            f"signed {model_path} ({len(result.manifest)} files, {result.manifest.digest}) "
            f"as {result.signer}; signature written to {result.signature_path}"
        )


def sign(
    ctx: typer.Context,
    model_path: Annotated[
        Path, typer.Argument(help="Model file or folder to sign.", show_default=False)
    ],
    key: Annotated[
        Path | None, typer.Option("--key", help="Private key (PEM), alone or with --certificate.")
    ] = None,
    certificate: Annotated[
        Path | None, typer.Option("--certificate", help="Signing certificate (PEM) for --key.")
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option("--certificate-chain", help="Chain to embed after the leaf (repeatable)."),
    ] = None,
    sigstore: Annotated[
        bool, typer.Option("--sigstore", help="Sign keylessly with Sigstore (needs a network).")
    ] = False,
    identity_token: Annotated[
        str | None,
        typer.Option(
            "--identity-token", help="OIDC token for --sigstore (else from the environment)."
        ),
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option("--signature", help="Where to write the signature (default MODEL/model.sig)."),
    ] = None,
    hash_algorithm: Annotated[
        str, typer.Option("--hash", help="File digest: sha256, blake2b or blake3.")
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
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
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
    )


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
    if not model_path.exists():
        raise NotFoundError(f"{model_path}: no such file or directory")
    registry = state(ctx).registry()
    total = 2 * _model_bytes(model_path) if _wants_bar(quiet) else 0
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


def _present(report: VerificationReport, target: str, as_json: bool) -> None:
    if as_json:
        value = report.to_json_value()
        value["target"] = target
        print_json(value)
    report.raise_for_failure()
    if not as_json and report.signature is not None:
        signed = report.signature
        say(
            f"verified {target}: {len(signed.manifest)} files match the signature by "
            f"{signed.signer} (sha256:{signed.subject_digest})"
        )


def verify_path(
    model_path: Path,
    trust: Trust,
    *,
    signature: Path | None,
    ignore_paths: list[str],
    quiet: bool,
    as_json: bool,
) -> None:
    """Verify a model on disk against its detached signature."""
    from mlprov.signing import (  # noqa: PLC0415
        default_signature_path,
        read_signature_file,
        verify_model,
    )

    signature_path = signature if signature is not None else default_signature_path(model_path)
    data = read_signature_file(signature_path)
    total = _model_bytes(model_path) if _wants_bar(quiet) else 0
    with byte_progress(f"verifying {model_path.name}", total, quiet=quiet) as progress:
        report = verify_model(
            model_path,
            data,
            trust,
            ignore_paths=ignore_paths,
            signature_path=signature_path,
            progress=progress,
        )
    _present(report, str(model_path), as_json)


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
    registry = state(ctx).registry()
    version = registry.get_version(ref)
    total = version.size if _wants_bar(quiet) else 0
    with byte_progress(f"verifying {version.ref}", total, quiet=quiet) as progress:
        report = registry.verify_version(version.ref, trust, path=local_copy, progress=progress)
    _present(report, version.ref, as_json)


def verify(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="Model file or folder, or a registered version (NAME/3, NAME@ALIAS).",
            show_default=False,
        ),
    ],
    signature: Annotated[
        Path | None,
        typer.Option("--signature", help="Signature file (default MODEL/model.sig)."),
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Trusted public key (PEM).")] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-chain", help="Trusted root or CA certificate (PEM, repeatable)."
        ),
    ] = None,
    identity: Annotated[
        str | None, typer.Option("--identity", help="Trusted Sigstore identity (e-mail, URI).")
    ] = None,
    issuer: Annotated[
        str | None, typer.Option("--issuer", help="OIDC issuer of the Sigstore identity.")
    ] = None,
    ignore_paths: IgnorePathsOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
    local_copy: Annotated[
        Path | None,
        typer.Option(
            "--path", help="With a registered version: verify this local copy of its files."
        ),
    ] = None,
) -> None:
    """Verify a model against its OMS signature; exit 0 only if every check passes."""
    path = Path(target)
    trust = trust_from_options(
        key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
    )
    if not path.exists() and not path.is_symlink():
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
    )


# --- the common forms, run without Typer's parser ------------------------------------------
#
# Typer turns every parameter of the command being run into a pydantic TypeAdapter (and
# imports pydantic for it), and builds all of mlprov's commands first: about 0.3 s before
# ``mlprov verify`` does any work. The two forms a serving container or a CI job runs,
# ``verify PATH --key PUB`` and ``sign PATH --key KEY``, are recognised here and run through
# the very same functions as the Typer commands. Anything else (other options, ``--opt=value``,
# a repeated option, a value starting with "-", help, a target that is not on disk) returns
# None and goes through Typer, so what each command accepts and does is unchanged.

_REPEATABLE = frozenset({"--ignore-paths"})
_VERIFY_VALUES = frozenset({"--signature", "--key", "--ignore-paths"})
_VERIFY_FLAGS = {"--quiet": "--quiet", "-q": "--quiet", "--json": "--json"}
_SIGN_VALUES = frozenset({"--key", "--signature", "--hash", "--ignore-paths"})
_SIGN_FLAGS = {**_VERIFY_FLAGS, "--allow-symlinks": "--allow-symlinks"}


def _simple_form(
    args: Sequence[str], values: frozenset[str], flags: dict[str, str]
) -> tuple[str, dict[str, list[str]], set[str]] | None:
    """One positional argument, options from ``values`` each followed by a plain value,
    flags from ``flags``; each at most once (``--ignore-paths`` repeatable). Else None."""
    target: str | None = None
    options: dict[str, list[str]] = {}
    seen: set[str] = set()
    index = 0
    while index < len(args):
        token = args[index]
        if token in values:
            if index + 1 >= len(args) or (token in options and token not in _REPEATABLE):
                return None
            value = args[index + 1]
            if not value or value.startswith("-"):
                return None
            options.setdefault(token, []).append(value)
            index += 2
            continue
        flag = flags.get(token)
        if flag is not None:
            if flag in seen:
                return None
            seen.add(flag)
        elif token.startswith("-") or not token or target is not None:
            return None
        else:
            target = token
        index += 1
    if target is None or "--key" not in options:
        return None
    return target, options, seen


def run_simple_form(args: Sequence[str]) -> bool:
    """Run ``verify PATH --key ...`` or ``sign PATH --key ...`` directly, as :func:`verify`
    and :func:`sign` would; False (nothing done) for any other command line."""
    if not args:
        return False
    command, rest = args[0], args[1:]
    if command == "verify":
        parsed = _simple_form(rest, _VERIFY_VALUES, _VERIFY_FLAGS)
        if parsed is None:
            return False
        target, options, flags = parsed
        signature = options.get("--signature")
        # As verify(): the trust first, then the target (not on disk: a registered version).
        trust = trust_from_options(
            key=Path(options["--key"][0]), certificate_chain=None, identity=None, issuer=None
        )
        path = Path(target)
        if not path.exists() and not path.is_symlink():
            return False
        verify_path(
            path,
            trust,
            signature=Path(signature[0]) if signature else None,
            ignore_paths=options.get("--ignore-paths", []),
            quiet="--quiet" in flags,
            as_json="--json" in flags,
        )
        return True
    if command == "sign":
        parsed = _simple_form(rest, _SIGN_VALUES, _SIGN_FLAGS)
        if parsed is None:
            return False
        target, options, flags = parsed
        signature = options.get("--signature")
        # As sign() without --name, --certificate, --sigstore or --passphrase-env.
        signer = signer_from_options(
            key=Path(options["--key"][0]),
            certificate=None,
            certificate_chain=None,
            sigstore=False,
            identity_token=None,
            passphrase_env=None,
        )
        sign_path(
            Path(target),
            signer,
            signature=Path(signature[0]) if signature else None,
            hash_algorithm=options.get("--hash", ["sha256"])[0].lower(),
            ignore_paths=options.get("--ignore-paths", []),
            allow_symlinks="--allow-symlinks" in flags,
            quiet="--quiet" in flags,
            as_json="--json" in flags,
        )
        return True
    return False


def install(app: typer.Typer) -> None:
    app.command("sign")(sign)
    app.command("verify")(verify)
