"""Signing and verifying registered versions: the registry service's signing half.

:class:`~mlprov.service.Registry` gains two operations here (it inherits this mixin, so
CLI and server still call one service):

* :meth:`SigningOperations.sign_and_register` hashes a model once, stores its bytes,
  signs the manifest (OMS), and records the version with its signature as the exact
  bytes written, in one step that either completes or leaves nothing behind;
* :meth:`SigningOperations.verify_version` verifies a registered version's stored
  signature against the trust the caller gives, checks that the registry's manifest is
  the signed one, and re-hashes the bytes (stored blobs, or a local copy).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.errors import MlprovError, NotFoundError, StorageError, VerificationError
from mlprov.manifest import Digest, FileEntry, Manifest, new_hasher
from mlprov.records import ModelVersion
from mlprov.refs import ModelRef

if TYPE_CHECKING:
    from mlprov.service import Registry, VersionInput
    from mlprov.signing import Check, Signer, SignerIdentity, Trust, VerificationReport
    from mlprov.store import StoreTransaction

__all__ = ["SignedVersion", "sign_and_register", "signature_of", "verify_version"]

SIGNATURE_KIND = "signature"
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class SignedVersion:
    """A version registered with its signature."""

    version: ModelVersion
    signature_path: Path | None
    signer: SignerIdentity
    bundle: bytes


def sign_and_register(
    registry: Registry,
    path: Path,
    name: str,
    signer: Signer,
    info: VersionInput | None = None,
    *,
    hash_algorithm: str = "sha256",
    ignore_paths: Sequence[str | Path] = (),
    allow_symlinks: bool = False,
    signature_path: Path | None = None,
    write_signature: bool = True,
    progress: ProgressCallback | None = None,
    on_commit: Callable[[StoreTransaction, int, int, Manifest, Any], None] | None = None,
) -> SignedVersion:
    """Hash, store, sign and register in one step; write the detached signature.

    The signature file is written to a temporary name first and renamed into place
    only after the version committed; if anything fails before, the blobs this call
    created are removed and no row and no signature file remain.
    ``on_commit(tx, version_id, number, manifest, signed_identity)`` lets the caller
    add evidence (attestations) in the same transaction.
    """
    from mlprov import signing  # noqa: PLC0415 - cryptography only when signing

    path = Path(path)
    target = (
        Path(signature_path) if signature_path is not None else signing.default_signature_path(path)
    )
    ignores = signing.relative_ignore_paths(path, ignore_paths, target)
    prepared = registry.prepare_version(
        path,
        name,
        info,
        hash_algorithm=hash_algorithm,
        ignore_paths=ignores,
        allow_symlinks=allow_symlinks,
    )
    temporary: Path | None = None
    with registry.stored_files(prepared, progress=progress) as stored:
        statement = signing.build_statement(
            stored.manifest,
            path.absolute().name or name,
            ignore_paths=ignores,
            allow_symlinks=allow_symlinks,
        )
        signed = signer.sign(statement)
        try:
            if write_signature:
                temporary = _write_temporary(target, signed.bundle)

            def add_signature(tx: StoreTransaction, version_id: int, number: int) -> None:
                registry.add_evidence(
                    tx,
                    version_id,
                    kind=SIGNATURE_KIND,
                    media_type=signing.BUNDLE_MEDIA_TYPE,
                    predicate_type=signing.PREDICATE_TYPE,
                    content=signed.bundle,
                    signer=str(signed.signer),
                    subject=f"{name}/{number}",
                )
                if on_commit is not None:
                    on_commit(tx, version_id, number, stored.manifest, signed.signer)

            record = registry.commit_version(prepared, stored, on_commit=add_signature)
        except BaseException:
            if temporary is not None:
                temporary.unlink(missing_ok=True)
            raise
    if temporary is not None:
        try:
            os.replace(temporary, target)
        except OSError as e:
            temporary.unlink(missing_ok=True)
            raise StorageError(
                f"{record.ref} is registered and signed, but writing {target} failed: "
                f"{e.strerror}; fetch it with `mlprov signature {record.ref}`"
            ) from e
    return SignedVersion(
        version=record,
        signature_path=target if write_signature else None,
        signer=signed.signer,
        bundle=signed.bundle,
    )


def signature_of(registry: Registry, ref: ModelRef | str) -> bytes:
    """The newest stored OMS signature of a version, as the exact bytes written."""
    signatures = registry.evidence(ref, kind=SIGNATURE_KIND)
    if not signatures:
        raise NotFoundError(f"{ref} has no stored signature")
    return registry.evidence_content(ref, signatures[-1].digest)


def verify_version(
    registry: Registry,
    ref: ModelRef | str,
    trust: Trust,
    *,
    path: Path | None = None,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerificationReport:
    """Verify a registered version: its stored signature against ``trust``, the
    registry's manifest against the signed one, and the bytes (stored, or at ``path``)."""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.signing import Check, VerificationReport  # noqa: PLC0415

    record = registry.get_version(ref)
    bundle = signature_of(registry, record.ref)
    if path is not None:
        report = signing.verify_model(
            path,
            bundle,
            trust,
            signature_path=signing.default_signature_path(path),
            limits=registry.limits,
            now=now,
            progress=progress,
        )
    else:
        report = signing.verify_bundle_report(bundle, trust, limits=registry.limits, now=now)
    checks = list(report.checks)
    if not report.passed or report.signature is None:
        return report
    try:
        registered = registry.manifest(record.ref)
        signing.match_manifest(report.signature.manifest, registered)
        checks.append(
            Check(
                "registry",
                True,
                f"{record.ref}'s recorded manifest ({record.digest}) is the signed one",
            )
        )
    except MlprovError as e:
        error = VerificationError(
            f"{record.ref}: the registry's manifest is not the signed one: {e}"
        )
        checks.append(Check("registry", False, error.message))
        return VerificationReport(tuple(checks), report.signature, error)
    if path is None:
        try:
            _check_stored_bytes(registry, record, registered, progress)
            checks.append(
                Check(
                    "files",
                    True,
                    f"{len(registered)} stored files, {registered.total_size} bytes match "
                    f"their signed {registered.algorithm} digests",
                )
            )
        except MlprovError as e:
            checks.append(Check("files", False, e.message))
            return VerificationReport(tuple(checks), report.signature, e)
    try:
        checks.append(_check_documents(registry, record, trust, now))
    except MlprovError as e:
        checks.append(Check("evidence", False, e.message))
        return VerificationReport(tuple(checks), report.signature, e)
    return VerificationReport(tuple(checks), report.signature, None)


#: Evidence that mlprov made with the model's own signer at registration.
_OWN_DOCUMENTS = ("provenance", "bom", "model-card")


def _check_documents(
    registry: Registry, record: ModelVersion, trust: Trust, now: datetime | None
) -> Check:
    """The version's own provenance, ML-BOM and card verify with the same trust as the
    model signature and name this model's digest. (Attestations attached from elsewhere
    have their own signers; they were verified against the named identity when attached.)"""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.signing import Check  # noqa: PLC0415

    own = [e for e in record.evidence if e.kind in _OWN_DOCUMENTS]
    model_hex = record.digest.partition(":")[2]
    for evidence in own:
        bundle = registry.evidence_content(record.ref, evidence.digest)
        verified = signing.verify_attestation(bundle, trust, limits=registry.limits, now=now)
        if not any(d.get("sha256") == model_hex for _n, d in verified.subjects):
            raise VerificationError(
                f"{record.ref}: the stored {evidence.kind} is not about this model's digest"
            )
    if not own:
        return Check("evidence", True, "no provenance, ML-BOM or card stored to check")
    kinds = ", ".join(e.kind for e in own)
    return Check("evidence", True, f"{kinds} verify with the same trust and name {record.digest}")


def _check_stored_bytes(
    registry: Registry,
    record: ModelVersion,
    manifest: Manifest,
    progress: ProgressCallback | None,
) -> None:
    """Re-hash every stored blob with the manifest's algorithm."""
    _version, files = registry._blob_map(ModelRef(record.name, version=record.version))
    blobs = {path: blob for path, blob, _digest, _size in files}
    actual: list[FileEntry] = []
    for entry in manifest:
        hasher = new_hasher(manifest.algorithm)
        size = 0
        for chunk in registry.artifacts.read_chunks(blobs[entry.path]):
            hasher.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
        actual.append(FileEntry(entry.path, Digest(manifest.algorithm, hasher.hexdigest()), size))
    from mlprov import signing  # noqa: PLC0415

    signing.match_manifest(manifest, Manifest.of(manifest.algorithm, actual))


def _write_temporary(target: Path, content: bytes) -> Path:
    directory = target.parent if str(target.parent) else Path(".")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    except FileNotFoundError as e:
        raise NotFoundError(f"{directory}: folder for the signature does not exist") from e
    except OSError as e:
        raise StorageError(f"cannot write the signature in {directory}: {e.strerror}") from e
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
    except OSError as e:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise StorageError(f"cannot write the signature {target}: {e.strerror}") from e
    return temporary
