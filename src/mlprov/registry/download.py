"""Installing a version's files in a folder, every digest checked while writing.

* :func:`download` installs what the registry holds: the reference is resolved once,
  and when the version has a stored signature the registry's manifest must be the one
  it signs (a manifest edited in the database is refused) and the signature is written
  beside the files, so ``model_signing verify`` accepts the folder as it is;
* :func:`install_verified` is the serving call: the same install, but only after the
  stored signature verified against the trust the caller gives. A version without a
  signature, or any failure, raises and leaves the target as it was.

Both read everything they need (version, files, signature) in one read transaction, do
every check before writing a byte, and install through :func:`mlprov.fs.install_folder`
(ADR 0027 for an existing folder, ADR 0028 for the signature file).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlprov.errors import (
    ConflictError,
    DigestMismatchError,
    MalformedDocumentError,
    MlprovError,
    StorageError,
    VerificationError,
)
from mlprov.fs import current_umask, install_folder
from mlprov.manifest import (
    SINGLE_FILE_NAME,
    Digest,
    FileEntry,
    Manifest,
    check_relative_path,
    new_hasher,
)
from mlprov.records import ModelVersion
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, corrupt_blobs_named, resolve
from mlprov.registry.signatures import SIGNATURE_KIND
from mlprov.registry.types import VerifiedInstall
from mlprov.serving import INSTALL_RECORD_NAME, install_record
from mlprov.store.versions import StoredFile

if TYPE_CHECKING:
    from mlprov.signing import Trust

__all__ = ["VerifiedInstall", "download", "install_verified"]

ProgressCallback = Callable[[int], None]

#: The signature file written in a downloaded model folder (``mlprov.signing``'s
#: DEFAULT_SIGNATURE_NAME, repeated so that a plain download does not load cryptography).
FOLDER_SIGNATURE_NAME = "model.sig"


@dataclass(frozen=True)
class _Snapshot:
    """One version as read in one transaction: the reference resolved once."""

    record: ModelVersion
    files: list[StoredFile]
    manifest: Manifest
    #: The newest stored OMS signature, the exact bytes written; None if unsigned.
    signature: bytes | None


def download(
    context: RegistryContext,
    ref: ModelRef | str,
    to: Path,
    *,
    progress: ProgressCallback | None = None,
    record_install: bool = False,
    sync: bool = True,
) -> ModelVersion:
    """Write a version's files to ``to``, checking every digest while writing.

    The reference is resolved once. A version with a stored signature is installed only
    if the registry's manifest is the one the signature names (checked before writing;
    the signature itself is not verified here: that needs trust, see
    :func:`install_verified`), and the signature is written with the files. On any
    mismatch or error ``to`` is left as it was. With ``record_install`` (serving installs)
    a signed version also gets its install record (:func:`mlprov.serving.install_record`).
    Every file and the folder are fsynced unless ``sync`` is false (``pull --no-sync``).
    """
    snapshot = _read(context, coerce_ref(ref))
    if snapshot.signature is not None:
        signed = _claimed_manifest(context, snapshot)
        _require_signed_manifest(snapshot, signed)
    _install(context, snapshot, Path(to), progress, record=record_install, sync=sync)
    return snapshot.record


def install_verified(
    context: RegistryContext,
    ref: ModelRef | str,
    to: Path,
    trust: Trust,
    *,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
    sync: bool = True,
) -> VerifiedInstall:
    """Resolve ``ref`` once, verify the version's stored signature against ``trust``,
    check that the registry's manifest is the signed one, and install the files (each
    digest checked while writing) with the signature; raise on any failure, leaving
    ``to`` as it was. A version without a stored signature is a VerificationError."""
    from mlprov import signing  # noqa: PLC0415 - cryptography only when verifying

    snapshot = _read(context, coerce_ref(ref))
    if snapshot.signature is None:
        raise VerificationError(
            f"{snapshot.record.ref} has no stored signature: nothing to verify it against"
        )
    verified = signing.verify_bundle(snapshot.signature, trust, limits=context.limits, now=now)
    _require_signed_manifest(snapshot, verified.manifest)
    target = Path(to)
    name = _install(context, snapshot, target, progress, record=True, sync=sync)
    assert name is not None  # a signed version always gets its signature file
    return VerifiedInstall(snapshot.record, verified, target, target / name)


def _read(context: RegistryContext, ref: ModelRef) -> _Snapshot:
    with context.metadata.read() as tx:
        key = resolve(tx, ref)
        record = tx.versions.record(key)
        files = tx.versions.files(key)
        signatures = [e for e in tx.evidence.records(key.id) if e.kind == SIGNATURE_KIND]
        content = tx.evidence.content(key.id, signatures[-1].digest) if signatures else None
    if signatures and (content is None or str(Digest.of_bytes(content)) != signatures[-1].digest):
        raise DigestMismatchError(
            f"{record.ref}: the stored signature {signatures[-1].digest} is missing or corrupt"
        )
    manifest = Manifest.of(
        key.hash_algorithm, (FileEntry(f.path, Digest.parse(f.digest), f.size) for f in files)
    )
    return _Snapshot(record, files, manifest, content)


def _claimed_manifest(context: RegistryContext, snapshot: _Snapshot) -> Manifest:
    """The manifest the stored signature names, read without verifying it."""
    from mlprov import signing  # noqa: PLC0415

    assert snapshot.signature is not None
    try:
        return signing.inspect_signature(snapshot.signature, context.limits).statement.manifest
    except MalformedDocumentError as e:
        raise VerificationError(
            f"{snapshot.record.ref}: the stored signature does not parse: {e.message}"
        ) from e


def _require_signed_manifest(snapshot: _Snapshot, signed: Manifest) -> None:
    """The registry's manifest must be the signed one, or the download would install
    files (or digests) no signature covers."""
    from mlprov import signing  # noqa: PLC0415

    try:
        signing.match_manifest(signed, snapshot.manifest)
    except MlprovError as e:
        raise VerificationError(
            f"{snapshot.record.ref}: the registry's manifest is not the signed one: {e.message}"
        ) from e


def _install(
    context: RegistryContext,
    snapshot: _Snapshot,
    to: Path,
    progress: ProgressCallback | None,
    *,
    record: bool = False,
    sync: bool = True,
) -> str | None:
    """Install the files and the stored signature (with ``record``, the install record
    beside it, written in the staging folder so it moves into place with the files);
    return the signature's file name."""
    version = snapshot.record
    names = [
        (version.artifact_name if item.path == SINGLE_FILE_NAME else item.path, item)
        for item in snapshot.files
    ]
    for name, _item in names:
        check_relative_path(name)
    signature_name: str | None = None
    if snapshot.signature is not None:
        # Where `mlprov verify` and `model_signing verify` look: MODEL/model.sig for a
        # folder, FILE.sig beside a single-file model (signing.default_signature_path).
        single = len(names) == 1 and snapshot.files[0].path == SINGLE_FILE_NAME
        signature_name = f"{names[0][0]}.sig" if single else FOLDER_SIGNATURE_NAME
        if signature_name in {name for name, _ in names}:
            raise ConflictError(
                f"{version.ref} has a file named {signature_name}, where its stored "
                "signature would be written; download it with `mlprov evidence` instead"
            )
        if record and INSTALL_RECORD_NAME in {name for name, _ in names}:
            raise ConflictError(
                f"{version.ref} has a file named {INSTALL_RECORD_NAME}, where the install "
                "record would be written; download it with `mlprov download` instead"
            )
    file_mode = 0o666 & ~current_umask()

    def fill(staging: Path) -> None:
        for name, item in names:
            _write_checked(
                context,
                staging / name,
                item.blob,
                Digest.parse(item.digest),
                file_mode,
                progress,
                sync=sync,
            )
        if signature_name is not None and snapshot.signature is not None:
            _write_bytes(staging / signature_name, snapshot.signature, file_mode, sync=sync)
            if record:
                # Last, so it sees every file as written (a rename keeps size and mtime).
                made = install_record(staging, signature_name, snapshot.signature)
                _write_bytes(staging / INSTALL_RECORD_NAME, made, file_mode, sync=sync)

    with corrupt_blobs_named(snapshot.record.ref, snapshot.files):
        install_folder(to, fill, sync=sync)
    return signature_name


def _open_new(target: Path, mode: int) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    return os.open(target, flags, mode)


def _write_bytes(target: Path, data: bytes, mode: int, *, sync: bool) -> None:
    try:
        with os.fdopen(_open_new(target, mode), "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
    except OSError as e:
        raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e


def _write_checked(
    context: RegistryContext,
    target: Path,
    blob: str,
    digest: Digest,
    mode: int,
    progress: ProgressCallback | None,
    *,
    sync: bool,
) -> None:
    hasher = new_hasher(digest.algorithm)
    try:
        with os.fdopen(_open_new(target, mode), "wb") as handle:
            for chunk in context.artifacts.read_chunks(blob):
                hasher.update(chunk)
                handle.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
    except OSError as e:
        raise StorageError(f"{target.name}: cannot write: {e.strerror}") from e
    actual = hasher.hexdigest()
    if actual != digest.hex:
        raise DigestMismatchError(
            f"{target.name}: digest mismatch, expected {digest.hex} got {actual}"
        )
