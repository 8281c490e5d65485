"""Sign and verify models in the OpenSSF Model Signing (OMS) v1.0 format.

An OMS signature is a Sigstore bundle v0.3 (JSON) holding a DSSE envelope whose payload
is an in-toto Statement v1 with predicate type ``https://model_signing/signature/v1.0``
listing every file of the model with its digest. Signatures made here verify with the
reference tool ``model_signing`` and the reference tool's verify here.

Stable API (this module's ``__all__``)::

    sign_model(model_path, signer, ...) -> SignResult        # hash, sign, write model.sig
    sign_manifest(manifest, model_name, signer, ...) -> bytes  # sign a known manifest
    verify_model(model_path, signature, trust, ...) -> VerificationReport
    verify_model_or_raise(model_path, signature, trust, ...) -> VerifiedSignature
    verify_bundle(signature, trust) -> VerifiedSignature     # no files: manifest only
    match_manifest(signed, actual)                           # raise on any difference

Signers: :class:`KeySigner`, :class:`CertificateSigner`, :class:`SigstoreSigner`.
Trust: :class:`KeyTrust`, :class:`CertificateTrust`, :class:`SigstoreTrust`. A key or
certificate inside a bundle is never trusted unless it is (or chains to) what the user
gave. Everything else in this package (modules starting with ``_``) is internal.

Exit codes of the errors raised: a signature that does not verify, a bundle that cannot
be parsed or exceeds limits, a file that differs, is missing or is not signed are all
verification failures (exit 1). A trust the user gave that cannot be read (bad PEM) is
bad input (exit 2).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import (
    InvalidInputError,
    MalformedSignatureError,
    NotFoundError,
    StorageError,
)
from mlprov.hashing import ProgressCallback, hash_model
from mlprov.manifest import Manifest
from mlprov.signing._attestation import (
    InspectedAttestation,
    VerifiedAttestation,
    inspect_attestation,
    verify_attestation,
)
from mlprov.signing._bundle import BUNDLE_MEDIA_TYPE, SignatureBundle, parse_bundle
from mlprov.signing._dsse import pae
from mlprov.signing._identity import SignerIdentity
from mlprov.signing._keys import (
    generate_private_key_pem,
    key_hint,
    load_private_key,
    load_public_key,
    public_key_pem,
)
from mlprov.signing._oms import (
    PREDICATE_TYPE,
    ModelStatement,
    Serialization,
    build_statement,
    normalise_ignore_path,
    parse_statement,
)
from mlprov.signing._signers import (
    CertificateSigner,
    KeySigner,
    SignedBundle,
    Signer,
    SigstoreSigner,
)
from mlprov.signing._trust import (
    CarriedSignature,
    CertificateTrust,
    KeyTrust,
    SigstoreTrust,
    Trust,
)
from mlprov.signing._verify import (
    Check,
    VerificationReport,
    VerifiedSignature,
    match_manifest,
    run_bundle_checks,
    run_model_checks,
)

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "DEFAULT_SIGNATURE_NAME",
    "PREDICATE_TYPE",
    "CarriedSignature",
    "CertificateSigner",
    "CertificateTrust",
    "Check",
    "InspectedAttestation",
    "InspectedSignature",
    "KeySigner",
    "KeyTrust",
    "ModelStatement",
    "Serialization",
    "SignResult",
    "SignedBundle",
    "Signer",
    "SignerIdentity",
    "SigstoreSigner",
    "SigstoreTrust",
    "Trust",
    "VerificationReport",
    "VerifiedAttestation",
    "VerifiedSignature",
    "build_statement",
    "default_signature_path",
    "generate_private_key_pem",
    "inspect_attestation",
    "inspect_signature",
    "key_hint",
    "load_private_key",
    "load_public_key",
    "match_manifest",
    "pae",
    "parse_bundle",
    "parse_statement",
    "public_key_pem",
    "read_signature_file",
    "relative_ignore_paths",
    "sign_manifest",
    "sign_model",
    "verify_attestation",
    "verify_bundle",
    "verify_bundle_report",
    "verify_model",
    "verify_model_or_raise",
    "write_signature_file",
]

#: The signature file written inside a model folder (excluded from its own manifest).
DEFAULT_SIGNATURE_NAME = "model.sig"


@dataclass(frozen=True)
class SignResult:
    """The outcome of :func:`sign_model`."""

    manifest: Manifest
    #: The bundle exactly as written to ``signature_path``.
    bundle: bytes = field(repr=False)
    signer: SignerIdentity
    signature_path: Path | None
    #: The signed statement (the DSSE payload), deterministic for the same inputs.
    statement: bytes = field(repr=False)


@dataclass(frozen=True)
class InspectedSignature:
    """What a bundle claims, read without verifying anything. Never trust it."""

    method: str
    statement: ModelStatement


def default_signature_path(model_path: Path) -> Path:
    """``MODEL/model.sig`` for a folder; ``FILE.sig`` beside a single-file model."""
    model_path = Path(model_path)
    if model_path.is_dir():
        return model_path / DEFAULT_SIGNATURE_NAME
    return model_path.with_name(model_path.name + ".sig")


def relative_ignore_paths(
    model_path: Path, ignore_paths: Iterable[str | Path], signature_path: Path | None
) -> list[str]:
    """Ignore paths as canonical paths relative to the model root.

    Relative paths are relative to the model root (OMS v1.0 section 6.2.1); absolute
    ones are kept when they lie inside the model and dropped otherwise. The signature
    file is ignored when it lies inside the model.
    """
    if not model_path.is_dir():
        return []
    root = model_path.resolve()
    result: list[str] = []
    candidates: list[str | Path] = list(ignore_paths)
    if signature_path is not None:
        candidates.append(Path(signature_path).absolute())
    for item in candidates:
        path = Path(item)
        if path.is_absolute():
            try:
                relative = path.resolve().relative_to(root)
            except ValueError:
                continue
            if relative.parts:
                result.append(normalise_ignore_path(relative.as_posix()))
        else:
            result.append(normalise_ignore_path(str(item)))
    return sorted(set(result))


def sign_manifest(
    manifest: Manifest,
    model_name: str,
    signer: Signer,
    *,
    ignore_paths: Iterable[str] = (),
    allow_symlinks: bool = False,
) -> bytes:
    """Sign a manifest already computed; return the bundle bytes (nothing is written).

    ``ignore_paths`` are recorded in the statement (relative to the model root) so a
    verifier skips them too; the defaults (``.git`` ...) are always recorded.
    """
    statement = build_statement(
        manifest, model_name, ignore_paths=ignore_paths, allow_symlinks=allow_symlinks
    )
    return signer.sign(statement).bundle


def sign_model(
    model_path: Path,
    signer: Signer,
    *,
    hash_algorithm: str = "sha256",
    ignore_paths: Iterable[str | Path] = (),
    allow_symlinks: bool = False,
    signature_path: Path | None = None,
    model_name: str | None = None,
    progress: ProgressCallback | None = None,
    write: bool = True,
    shard_size: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> SignResult:
    """Hash the model, sign its manifest, and write the detached signature.

    The signature goes to ``signature_path`` (default :func:`default_signature_path`)
    and, when it lies inside the model folder, is left out of the manifest. The model
    name in the statement defaults to the folder's or file's base name. With
    ``shard_size`` (bytes) the manifest lists byte ranges of the files (OMS v1.0 shard
    serialization), hashed in parallel even within one file.
    """
    model_path = Path(model_path)
    if not model_path.exists() and not model_path.is_symlink():
        raise NotFoundError(f"{model_path}: no such file or directory")
    target = (
        Path(signature_path) if signature_path is not None else default_signature_path(model_path)
    )
    ignores = relative_ignore_paths(model_path, ignore_paths, target)
    manifest = hash_model(
        model_path,
        hash_algorithm,
        ignore_paths=ignores,
        allow_symlinks=allow_symlinks,
        progress=progress,
        shard_size=shard_size,
        max_entries=limits.max_manifest_files,
    )
    name = model_name or model_path.absolute().name or "model"
    statement = build_statement(manifest, name, ignore_paths=ignores, allow_symlinks=allow_symlinks)
    signed = signer.sign(statement)
    if write:
        write_signature_file(target, signed.bundle)
    return SignResult(manifest, signed.bundle, signed.signer, target if write else None, statement)


def write_signature_file(path: Path, bundle: bytes) -> None:
    """Write ``bundle`` to ``path`` atomically (temporary file, fsync, rename)."""
    from mlprov.fs import write_file_atomically  # noqa: PLC0415

    write_file_atomically(Path(path), bundle, what="signature")


def read_signature_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a signature file, refusing one larger than the limit without reading it all.

    Opened without blocking and checked to be a regular file first, so a FIFO or device
    named as the signature cannot hang the verifier.
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise NotFoundError(f"signature {path}: no such file") from e
    except IsADirectoryError as e:
        raise InvalidInputError(f"signature {path} is a folder, not a file") from e
    except PermissionError as e:
        raise InvalidInputError(f"signature {path}: permission denied") from e
    except OSError as e:
        raise StorageError(f"signature {path}: cannot open: {e.strerror}") from e
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(stream.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInputError(f"signature {path} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(f"signature {path} is not a regular file")
        if info.st_size > limits.max_document_bytes:
            raise MalformedSignatureError(
                f"signature {path} is {info.st_size} bytes, more than the limit of "
                f"{limits.max_document_bytes} bytes; refused without reading it"
            )
        try:
            data = stream.read(limits.max_document_bytes + 1)
        except OSError as e:
            raise StorageError(f"signature {path}: read failed: {e.strerror}") from e
    if len(data) > limits.max_document_bytes:
        raise MalformedSignatureError(
            f"signature {path} is more than the limit of {limits.max_document_bytes} bytes"
        )
    return data


def inspect_signature(signature: bytes, limits: Limits = DEFAULT_LIMITS) -> InspectedSignature:
    """Parse a bundle and its statement WITHOUT verifying it: what it claims, for display.

    Raises MalformedDocumentError (exit 2) for anything that does not parse.
    """
    bundle: SignatureBundle = parse_bundle(signature, limits)
    return InspectedSignature(bundle.method, parse_statement(bundle.envelope.payload, limits))


def verify_bundle_report(
    signature: bytes,
    trust: Trust,
    *,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> VerificationReport:
    """Verify a signature against ``trust`` without model files; a report, never raising
    for a verification failure (the raising twin is :func:`verify_bundle`)."""
    return run_bundle_checks(signature, trust, limits=limits, now=now)


def verify_bundle(
    signature: bytes,
    trust: Trust,
    *,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> VerifiedSignature:
    """Verify a signature against ``trust`` without model files; raise on any failure.

    Use :func:`match_manifest` to compare the verified manifest with a stored one.
    """
    report = run_bundle_checks(signature, trust, limits=limits, now=now)
    report.raise_for_failure()
    assert report.signature is not None
    return report.signature


def verify_model(
    model_path: Path,
    signature: bytes,
    trust: Trust,
    *,
    ignore_paths: Iterable[str | Path] = (),
    signature_path: Path | None = None,
    ignore_unsigned_files: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerificationReport:
    """Verify the signature and the model's files; a report with one check per step.

    ``signature_path``, when it lies inside the model folder, is left out of the files
    compared (as are the signed ``ignore_paths`` and the ``.git`` defaults). With
    ``ignore_unsigned_files`` files that are present but not signed do not fail the
    verification; they are listed in ``report.unsigned_files`` (OMS v1.0 section 8.5).
    """
    return run_model_checks(
        Path(model_path),
        signature,
        trust,
        ignore_paths=ignore_paths,
        signature_path=signature_path,
        ignore_unsigned_files=ignore_unsigned_files,
        limits=limits,
        now=now,
        progress=progress,
    )


def verify_model_or_raise(
    model_path: Path,
    signature: bytes,
    trust: Trust,
    *,
    ignore_paths: Iterable[str | Path] = (),
    signature_path: Path | None = None,
    ignore_unsigned_files: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerifiedSignature:
    """Like :func:`verify_model`, but raise the first failure; return what was verified."""
    report = verify_model(
        model_path,
        signature,
        trust,
        ignore_paths=ignore_paths,
        signature_path=signature_path,
        ignore_unsigned_files=ignore_unsigned_files,
        limits=limits,
        now=now,
        progress=progress,
    )
    report.raise_for_failure()
    assert report.signature is not None
    return report.signature
