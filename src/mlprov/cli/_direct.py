"""``mlprov sign PATH`` and ``mlprov verify PATH``: the part that needs no Typer.

The options of :mod:`mlprov.cli.signing` become a signer or a trust here, and a model on
disk is signed or verified. :func:`run_simple_form` runs the command lines a serving
container or a CI job runs, ``verify PATH --key PUB ...``, ``sign PATH --key KEY ...`` and
the readiness probe ``check-installed DIR``,
straight from ``argv`` with these same functions, so that they never import Typer: Typer
0.29 builds every command and a pydantic TypeAdapter for each parameter of the one it runs,
about 0.35 s of start-up. Any other command line returns False and goes through Typer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlprov.cli._output import print_json, say
from mlprov.cli._progress import byte_progress
from mlprov.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from mlprov.signing import Signer, Trust, VerificationReport

__all__ = [
    "check_shard_size",
    "read_passphrase",
    "read_private_key_file",
    "report_installed",
    "run_simple_form",
    "sign_path",
    "signer_from_options",
    "trust_from_options",
    "verify_path",
]


def read_passphrase(variable: str | None) -> bytes | None:
    """The passphrase from the environment variable named ``variable`` (never argv)."""
    if variable is None:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise InvalidInputError(f"environment variable {variable} (--passphrase-env) is not set")
    if not value:
        raise InvalidInputError(f"environment variable {variable} (--passphrase-env) is empty")
    return value.encode("utf-8")


def read_private_key_file(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"key {path}: no such file") from e
    except IsADirectoryError as e:
        raise InvalidInputError(f"key {path} is a folder, not a key file") from e
    except PermissionError as e:
        raise InvalidInputError(f"key {path}: permission denied") from e


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


def check_shard_size(shard_size: int | None, *, registering: bool) -> None:
    """``--shard-size``: a positive byte count, and only for a detached signature."""
    if shard_size is None:
        return
    if registering:
        raise InvalidInputError(
            "--shard-size cannot be used with --name: sharded manifests cannot be registered "
            "yet (the registry stores file-level manifests); sign without --name"
        )
    if shard_size < 1:
        raise InvalidInputError(
            f"--shard-size must be a positive number of bytes, not {shard_size}"
        )


def _parse_shard_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise InvalidInputError(f"--shard-size {text!r} is not a number of bytes") from e
    check_shard_size(value, registering=False)
    return value


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
    shard_size: int | None = None,
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
            shard_size=shard_size,
        )
    manifest = result.manifest
    if as_json:
        value: dict[str, object] = {
            "signature": str(result.signature_path),
            "signer": result.signer.to_json_value(),
            "digest": str(manifest.digest),
            "hash_algorithm": manifest.algorithm,
            "files": len(manifest.file_paths),
            "bytes": manifest.total_size,
        }
        if manifest.shard_size is not None:
            value["shard_size"] = manifest.shard_size
            value["shards"] = len(manifest)
        print_json(value)
    elif not quiet:
        shards = "" if manifest.shard_size is None else f" in {len(manifest)} shards"
        say(
            f"signed {model_path} ({len(manifest.file_paths)} files{shards}, {manifest.digest}) "
            f"as {result.signer}; signature written to {result.signature_path}"
        )


def _present(report: VerificationReport, target: str, as_json: bool) -> None:
    if as_json:
        value = report.to_json_value()
        value["target"] = target
        print_json(value)
    report.raise_for_failure()
    if not as_json and report.signature is not None:
        signed = report.signature
        tolerated = ""
        if report.unsigned_files:
            shown = ", ".join(repr(name) for name in report.unsigned_files[:10])
            more = " ..." if len(report.unsigned_files) > 10 else ""
            tolerated = f"; {len(report.unsigned_files)} unsigned file(s) tolerated: {shown}{more}"
        say(
            f"verified {target}: {len(signed.manifest.file_paths)} files match the signature "
            f"by {signed.signer} (sha256:{signed.subject_digest}){tolerated}"
        )


def verify_path(
    model_path: Path,
    trust: Trust,
    *,
    signature: Path | None,
    ignore_paths: list[str],
    quiet: bool,
    as_json: bool,
    ignore_unsigned_files: bool = False,
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
            ignore_unsigned_files=ignore_unsigned_files,
            progress=progress,
        )
    _present(report, str(model_path), as_json)


# --- the common forms, run without Typer ----------------------------------------------------
#
# ``verify PATH --key PUB`` and ``sign PATH --key KEY`` with --signature, --hash,
# --ignore-paths (repeatable), --allow-symlinks, --shard-size (sign),
# --ignore-unsigned-files (verify), --quiet/-q, --json are run here as
# signing.verify() and signing.sign() run them, in the same order. Anything else (other
# options, ``--opt=value``, a repeated option, a value starting with "-", help, a target
# that is not on disk) returns False and goes through Typer, so what each command accepts
# and does is unchanged.

_REPEATABLE = frozenset({"--ignore-paths"})
_VERIFY_VALUES = frozenset({"--signature", "--key", "--ignore-paths"})
_COMMON_FLAGS = {"--quiet": "--quiet", "-q": "--quiet", "--json": "--json"}
_VERIFY_FLAGS = {**_COMMON_FLAGS, "--ignore-unsigned-files": "--ignore-unsigned-files"}
_SIGN_VALUES = frozenset({"--key", "--signature", "--hash", "--ignore-paths", "--shard-size"})
_SIGN_FLAGS = {**_COMMON_FLAGS, "--allow-symlinks": "--allow-symlinks"}


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


def report_installed(folder: Path, *, full: bool, as_json: bool) -> None:
    """Check ``folder`` and print the result: the one implementation behind the Typer
    command and the probe's fast path."""
    from mlprov.serving import check_installed as check  # noqa: PLC0415

    copy = check(folder, full=full)
    if as_json:
        print_json(copy.to_json())
    else:
        mode = "re-hashed" if copy.full else "sizes and times"
        say(f"ready: {copy.path} ({copy.files} files, {copy.bytes} bytes; {mode} match)")


def _check_installed_form(rest: Sequence[str]) -> bool:
    """``check-installed DIR [--full] [--json]``: a readiness probe runs it every few
    seconds, so it skips Typer too (:mod:`mlprov.cli.installed` is the Typer face)."""
    flags = {token for token in rest if token in ("--full", "--json")}
    positional = [token for token in rest if token not in flags]
    if len(positional) != 1 or positional[0].startswith("-") or len(flags) + 1 != len(rest):
        return False
    report_installed(Path(positional[0]), full="--full" in flags, as_json="--json" in flags)
    return True


def run_simple_form(args: Sequence[str]) -> bool:
    """Run ``verify PATH --key ...``, ``sign PATH --key ...`` or ``check-installed DIR``
    directly, as the Typer commands would; False (nothing done) for any other command
    line."""
    if not args:
        return False
    command, rest = args[0], args[1:]
    if command == "check-installed":
        return _check_installed_form(rest)
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
            ignore_unsigned_files="--ignore-unsigned-files" in flags,
        )
        return True
    if command == "sign":
        parsed = _simple_form(rest, _SIGN_VALUES, _SIGN_FLAGS)
        if parsed is None:
            return False
        target, options, flags = parsed
        if not Path(target).exists() and not Path(target).is_symlink():
            return False  # a registered version: sign() in mlprov.cli.signing
        signature = options.get("--signature")
        shard_text = options.get("--shard-size")
        if shard_text and not (shard_text[0].isascii() and shard_text[0].isdigit()):
            return False  # Typer reports a value that is not an integer
        # As sign() without --name, --certificate, --sigstore or --passphrase-env: the
        # shard size is checked first, then the signer is made.
        shard_size = int(shard_text[0]) if shard_text else None
        check_shard_size(shard_size, registering=False)
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
            shard_size=shard_size,
        )
        return True
    return False
