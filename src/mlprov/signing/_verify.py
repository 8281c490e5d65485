"""The verification engine: one :class:`Check` per step, a report, and raising twins.

Order of the checks (each needs the ones before it):

1. ``bundle`` - the signature parses within limits (size, depth) as an OMS bundle;
2. ``trust`` - its signing method is the one the user's trust is for;
3. ``key`` / ``certificate-*`` / ``sigstore`` - its material matches what is trusted;
4. ``signature`` - the DSSE signature over the exact payload bytes verifies;
5. ``statement`` - the signed statement is an OMS v1.0 statement whose paths are safe
   and whose subject digest binds its resources;
6. ``files`` (models only) - the model's files are exactly the signed ones, with the
   signed digests (or byte ranges, for shard signatures). With ``ignore_unsigned_files``
   (OMS v1.0 section 8.5) files present but not signed are listed in the report and
   tolerated; every signed file must still be present and match.

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
from mlprov.hashing import (
    ModelFile,
    ProgressCallback,
    hash_files,
    hash_shards,
    list_model_files,
    shard_names,
)
from mlprov.manifest import (
    HASH_ALGORITHMS,
    SINGLE_FILE_NAME,
    Digest,
    FileEntry,
    Manifest,
    parse_shard_name,
    shard_count,
)
from mlprov.signing._bundle import parse_bundle
from mlprov.signing._identity import SignerIdentity
from mlprov.signing._oms import Serialization, normalise_ignore_path, parse_statement
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
    #: Files present in the model but not signed, tolerated by ``ignore_unsigned_files``.
    unsigned_files: tuple[str, ...] = ()

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
            value["files"] = len(self.signature.manifest.file_paths)
            if self.signature.manifest.shard_size is not None:
                value["shard_size"] = self.signature.manifest.shard_size
                value["shards"] = len(self.signature.manifest)
        if self.unsigned_files:
            value["unsigned_files"] = list(self.unsigned_files)
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
    # They are read as OMS v1.0 section 6.2.1 defines them (relative to the model root,
    # "./x" and "x/" meaning "x"); entries it forbids (absolute, "..", globs) are dropped.
    usable = []
    for path in serialization.ignore_paths:
        try:
            usable.append(normalise_ignore_path(path))
        except MlprovError:
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
        # The install record `mlprov pull` writes beside model.sig is not part of the
        # model (mlprov.serving, check-installed): a pulled folder verifies as it is.
        from mlprov.serving import INSTALL_RECORD_NAME  # noqa: PLC0415

        record = Path(signature_path).absolute().parent / INSTALL_RECORD_NAME
        if record.is_file() and not record.is_symlink():
            ignores.append(record)
    return ignores


def _single_file_name(signed: Manifest, model_path: Path) -> str | None:
    """How the signature names a single-file model: ``"."`` or the file's name."""
    paths = signed.file_paths
    if len(paths) == 1 and paths[0] in (SINGLE_FILE_NAME, model_path.name):
        return paths[0]
    return None


def _rename_single(files: list[ModelFile], signed: Manifest, model_path: Path) -> list[ModelFile]:
    """Name the one file of a single-file model as the signature does (OMS v1.0 6.1.2
    step 5 says its name, model_signing 1.1 writes ``"."``; docs/adr/0011)."""
    if len(files) != 1 or files[0].name != SINGLE_FILE_NAME:
        return files
    name = _single_file_name(signed, model_path)
    if name is None:
        return files
    return [ModelFile(name, files[0].path, files[0].size)]


def _tolerate_unsigned(
    files: list[ModelFile], signed: Manifest
) -> tuple[list[ModelFile], list[str]]:
    """Split the listed files into the signed ones and the unsigned ones.

    An empty file has no shard to sign (OMS v1.0 section 6.3.2 step 1), so under shard
    serialization it is neither signed nor unsigned: it stays, and gives no name.
    """
    signed_paths = set(signed.file_paths)
    shards = signed.shard_size is not None

    def covered(item: ModelFile) -> bool:
        return item.name in signed_paths or (shards and item.size == 0)

    return [f for f in files if covered(f)], [f.name for f in files if not covered(f)]


def _expected_names(files: list[ModelFile], signed: Manifest, limits: Limits) -> list[str]:
    """The resource names the listed files give under the signed serialization."""
    if signed.shard_size is None:
        return [f.name for f in files]
    count = sum(shard_count(f.size, signed.shard_size) for f in files)
    if count > max(len(signed), limits.max_manifest_files):
        # A hostile shard_size (1 byte, say) must not make us list billions of names.
        raise VerificationError(
            f"the model's files give {count} shards of {signed.shard_size} bytes, the "
            f"signature lists {len(signed)}: the files are not the signed ones"
        )
    return shard_names(files, signed.shard_size)


def _compare_names(expected: list[str], signed: Manifest) -> None:
    """Fail on a missing, unsigned or renamed file before any byte is hashed."""
    signed_names = set(signed.names)
    if set(expected) == signed_names:
        return
    placeholder = _placeholder(signed.algorithm)
    by_name = signed.by_path()
    listed = Manifest.of(
        signed.algorithm,
        [FileEntry(n, by_name[n].digest if n in by_name else placeholder) for n in expected],
        shard_size=signed.shard_size,
    )
    if signed.shard_size is not None:
        _compare_shard_files(listed, signed)
    match_manifest(signed, listed)


def _compare_shard_files(listed: Manifest, signed: Manifest) -> None:
    """Name the file whose shards differ (missing, unsigned, or of another size)."""
    listed_paths, signed_paths = set(listed.file_paths), set(signed.file_paths)
    missing = [p for p in signed.file_paths if p not in listed_paths]
    extra = [p for p in listed.file_paths if p not in signed_paths]
    resized = [
        path
        for path in signed.file_paths
        if path in listed_paths
        and {n for n in signed.names if parse_shard_name(n)[0] == path}
        != {n for n in listed.names if parse_shard_name(n)[0] == path}
    ]
    problems = [f"file {m!r} is signed but missing from the model" for m in missing]
    problems += [f"file {x!r} is in the model but not signed" for x in extra]
    problems += [
        f"file {r!r} does not match its signed digest: its size is not the one signed "
        "(its byte ranges differ from the signed shards)"
        for r in resized
    ]
    if resized:
        raise DigestMismatchError(_describe_problems(problems))
    if problems:
        raise VerificationError(_describe_problems(problems))


def run_model_checks(
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
    """Verify the signature, then the model's files against the signed manifest."""
    log = _Log()
    verified: VerifiedSignature | None = None
    unsigned: list[str] = []
    try:
        verified = _authenticate(
            signature, trust, log, limits=limits, now=now or datetime.now(timezone.utc)
        )
        log.begin("files")
        model_path = Path(model_path)
        serialization = verified.serialization
        signed = verified.manifest
        files = list_model_files(
            model_path,
            ignore_paths=_ignore_list(model_path, ignore_paths, signature_path, serialization),
            allow_symlinks=serialization.allow_symlinks,
        )
        files = _rename_single(files, signed, model_path)
        if ignore_unsigned_files:
            files, unsigned = _tolerate_unsigned(files, signed)
        # Compare names before hashing: a missing or extra file fails without reading bytes.
        _compare_names(_expected_names(files, signed, limits), signed)
        if signed.shard_size is not None:
            actual = hash_shards(files, signed.algorithm, signed.shard_size, progress=progress)
        else:
            actual = hash_files(files, signed.algorithm, progress=progress)
        match_manifest(signed, actual)
        what = (
            f"{len(actual.file_paths)} files, {actual.total_size} bytes match their signed "
            f"{signed.algorithm} digests"
        )
        if signed.shard_size is not None:
            what += f" ({len(actual)} shards of at most {signed.shard_size} bytes)"
        if unsigned:
            what += (
                f"; {len(unsigned)} unsigned file(s) tolerated (--ignore-unsigned-files): "
                + ", ".join(repr(name) for name in unsigned[:10])
                + (" ..." if len(unsigned) > 10 else "")
            )
        log.passed("files", what)
    except MlprovError as e:
        log.failed(e)
        return VerificationReport(tuple(log.checks), verified, e, tuple(unsigned))
    return VerificationReport(tuple(log.checks), verified, None, tuple(unsigned))


def _placeholder(algorithm: str) -> Digest:
    return Digest(algorithm, "0" * HASH_ALGORITHMS[algorithm])
