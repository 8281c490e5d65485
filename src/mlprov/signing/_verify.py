"""The verification engine: one :class:`Check` per step, a report, and raising twins.

Order of the checks (each needs the ones before it):

1. ``bundle`` - the signature parses within limits (size, depth) as an OMS bundle;
2. ``trust`` - its signing method is the one the user's trust is for;
3. ``key`` / ``certificate-*`` / ``sigstore`` - its material matches what is trusted;
4. ``signature`` - the DSSE signature over the exact payload bytes verifies;
5. ``statement`` - the signed statement is an OMS v1.0 statement whose paths are safe
   and whose subject digest binds its resources;
6. ``files`` (models only) - the model's files are exactly the signed ones, with the
   signed digests.

A bundle that cannot be parsed, or a signed statement that is malformed, is a
verification failure (:class:`~mlprov.errors.MalformedSignatureError`, exit 1): the
bundle is untrusted evidence, so "cannot read it" means "not verified".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import (
    DigestMismatchError,
    MalformedDocumentError,
    MalformedSignatureError,
    MlprovError,
    VerificationError,
)
from mlprov.hashing import ProgressCallback, hash_files, list_model_files
from mlprov.manifest import (
    HASH_ALGORITHMS,
    SINGLE_FILE_NAME,
    Digest,
    FileEntry,
    Manifest,
    check_relative_path,
)
from mlprov.signing._bundle import parse_bundle
from mlprov.signing._identity import SignerIdentity
from mlprov.signing._oms import Serialization, parse_statement
from mlprov.signing._trust import Trust

__all__ = [
    "Check",
    "VerificationReport",
    "VerifiedSignature",
    "match_manifest",
    "run_bundle_checks",
    "run_model_checks",
]


@dataclass(frozen=True)
class Check:
    """One verification step: its name, whether it passed, and why."""

    name: str
    passed: bool
    detail: str

    def to_json_value(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class VerifiedSignature:
    """What a signature proves once verified: who signed which manifest, and how."""

    signer: SignerIdentity
    model_name: str
    manifest: Manifest
    serialization: Serialization
    #: The statement's subject digest (the OMS root digest over the resources).
    subject_digest: str
    #: The exact signed statement bytes (DSSE payload).
    payload: bytes = field(repr=False)

    @property
    def method(self) -> str:
        return self.signer.method


@dataclass(frozen=True)
class VerificationReport:
    """Every check that ran, in order; ``passed`` only if all of them did."""

    checks: tuple[Check, ...]
    signature: VerifiedSignature | None = None
    #: The first failure, as the error ``raise_for_failure`` raises.
    error: MlprovError | None = field(default=None, compare=False)

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    def raise_for_failure(self) -> None:
        if self.error is not None:
            raise self.error
        if not self.passed:  # pragma: no cover - every failure records an error
            raise VerificationError("verification failed")

    def to_json_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "verified": self.passed,
            "checks": [c.to_json_value() for c in self.checks],
        }
        if self.error is not None:
            value["error"] = self.error.message
            value["exit_code"] = self.error.exit_code
        if self.signature is not None:
            value["signer"] = self.signature.signer.to_json_value()
            value["model_name"] = self.signature.model_name
            value["digest"] = f"sha256:{self.signature.subject_digest}"
            value["hash_algorithm"] = self.signature.serialization.hash_type
            value["files"] = len(self.signature.manifest)
        return value


class _Log:
    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.step = "bundle"

    def begin(self, name: str) -> None:
        self.step = name

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))
        self.step = name

    def failed(self, error: MlprovError) -> None:
        self.checks.append(Check(self.step, False, error.message))


def _untrusted(error: MalformedDocumentError) -> MalformedSignatureError:
    if isinstance(error, MalformedSignatureError):
        return error
    return MalformedSignatureError(error.message)


def _authenticate(
    signature: bytes, trust: Trust, log: _Log, *, limits: Limits, now: datetime
) -> VerifiedSignature:
    log.begin("bundle")
    try:
        bundle = parse_bundle(signature, limits)
    except MalformedDocumentError as e:
        raise _untrusted(e) from e
    log.passed("bundle", f"OMS bundle, {bundle.method} method, {len(signature)} bytes")
    log.begin("trust")
    try:
        signer = trust.authenticate(bundle, now=now, limits=limits, record=log.passed)
    except MalformedDocumentError as e:
        raise _untrusted(e) from e
    log.begin("statement")
    try:
        statement = parse_statement(bundle.envelope.payload, limits)
    except MalformedDocumentError as e:
        raise _untrusted(e) from e
    log.passed(
        "statement",
        f"OMS v1.0 statement for {statement.model_name!r}: {len(statement.manifest)} files, "
        f"{statement.serialization.hash_type}, root sha256:{statement.subject_digest.hex}",
    )
    return VerifiedSignature(
        signer,
        statement.model_name,
        statement.manifest,
        statement.serialization,
        statement.subject_digest.hex,
        statement.payload,
    )


def run_bundle_checks(
    signature: bytes,
    trust: Trust,
    *,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> VerificationReport:
    """Verify a signature bundle against ``trust`` without any model files."""
    log = _Log()
    try:
        verified = _authenticate(
            signature, trust, log, limits=limits, now=now or datetime.now(timezone.utc)
        )
    except MlprovError as e:
        log.failed(e)
        return VerificationReport(tuple(log.checks), None, e)
    return VerificationReport(tuple(log.checks), verified, None)


def _describe_problems(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{problems[0]} (and {len(problems) - 1} more: {'; '.join(problems[1:4])})"


def match_manifest(signed: Manifest, actual: Manifest) -> None:
    """Raise unless ``actual`` names exactly the signed files with the signed digests.

    DigestMismatchError names the first file whose bytes differ with both digests;
    VerificationError names a file that is missing, unsigned, or renamed.
    """
    if signed.algorithm != actual.algorithm:
        raise VerificationError(
            f"the signature uses {signed.algorithm}, the files were hashed with {actual.algorithm}"
        )
    expected = signed.by_path()
    found = actual.by_path()
    missing = [path for path in expected if path not in found]
    extra = [path for path in found if path not in expected]
    structure: list[str] = []
    if missing and extra and len(missing) == len(extra):
        structure.extend(
            f"file {m!r} is signed but missing, and {x!r} is present but not signed (renamed?)"
            for m, x in zip(missing, extra, strict=True)
        )
    else:
        structure.extend(f"file {m!r} is signed but missing from the model" for m in missing)
        structure.extend(f"file {x!r} is in the model but not signed" for x in extra)
    mismatched = [
        f"file {path!r} does not match its signed digest: expected {entry.digest.algorithm} "
        f"{entry.digest.hex}, got {found[path].digest.hex}"
        for path, entry in expected.items()
        if path in found and found[path].digest != entry.digest
    ]
    if mismatched:
        raise DigestMismatchError(_describe_problems(mismatched + structure))
    if structure:
        raise VerificationError(_describe_problems(structure))


def _signed_ignores(serialization: Serialization) -> list[str]:
    # Signed ignore paths widen what is skipped, so only safe relative ones are used;
    # dropping an unusable one can only make verification stricter.
    usable = []
    for path in serialization.ignore_paths:
        try:
            usable.append(check_relative_path(path.rstrip("/")))
        except MalformedDocumentError:
            continue
    return usable


def _ignore_list(
    model_path: Path,
    ignore_paths: Iterable[str | Path],
    signature_path: Path | None,
    serialization: Serialization,
) -> list[str | Path]:
    ignores: list[str | Path] = [*ignore_paths, *_signed_ignores(serialization)]
    if signature_path is not None:
        ignores.append(Path(signature_path).absolute())
    return ignores


def _single_file_view(signed: Manifest, actual: Manifest, model_path: Path) -> Manifest:
    """Name the one actual file as the signature does: ``"."`` or the file's name."""
    if not actual.is_single_file or len(signed) != 1:
        return actual
    name = signed.files[0].path
    if name in (SINGLE_FILE_NAME, model_path.name):
        entry = actual.files[0]
        return Manifest.of(actual.algorithm, [FileEntry(name, entry.digest, entry.size)])
    return actual


def run_model_checks(
    model_path: Path,
    signature: bytes,
    trust: Trust,
    *,
    ignore_paths: Iterable[str | Path] = (),
    signature_path: Path | None = None,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerificationReport:
    """Verify the signature, then the model's files against the signed manifest."""
    log = _Log()
    verified: VerifiedSignature | None = None
    try:
        verified = _authenticate(
            signature, trust, log, limits=limits, now=now or datetime.now(timezone.utc)
        )
        log.begin("files")
        model_path = Path(model_path)
        serialization = verified.serialization
        files = list_model_files(
            model_path,
            ignore_paths=_ignore_list(model_path, ignore_paths, signature_path, serialization),
            allow_symlinks=serialization.allow_symlinks,
        )
        signed = verified.manifest
        # Compare names before hashing: a missing or extra file fails without reading bytes.
        listed = Manifest.of(
            signed.algorithm,
            [FileEntry(f.name, _placeholder(signed.algorithm), f.size) for f in files],
        )
        listed = _single_file_view(signed, listed, model_path)
        names_only = {e.path for e in signed.files} ^ {e.path for e in listed.files}
        if names_only:
            match_manifest(signed, _with_signed_digests(listed, signed))
        actual = _single_file_view(
            signed, hash_files(files, signed.algorithm, progress=progress), model_path
        )
        match_manifest(signed, actual)
        log.passed(
            "files",
            f"{len(actual)} files, {actual.total_size} bytes match their signed "
            f"{signed.algorithm} digests",
        )
    except MlprovError as e:
        log.failed(e)
        return VerificationReport(tuple(log.checks), verified, e)
    return VerificationReport(tuple(log.checks), verified, None)


def _placeholder(algorithm: str) -> Digest:
    return Digest(algorithm, "0" * HASH_ALGORITHMS[algorithm])


def _with_signed_digests(listed: Manifest, signed: Manifest) -> Manifest:
    """The listed names, carrying signed digests where known (only names then differ)."""
    expected = signed.by_path()
    return Manifest.of(
        listed.algorithm,
        [
            FileEntry(e.path, expected[e.path].digest if e.path in expected else e.digest, e.size)
            for e in listed.files
        ],
    )
