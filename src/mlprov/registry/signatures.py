"""Signing and verifying registered versions.

* :func:`sign_and_register` hashes a model once, stores its bytes, signs the manifest
  (OMS) and, with documents, its provenance, ML-BOM and card, all before the write
  transaction; the version then commits with its signature as the exact bytes written,
  and the detached signature file is renamed into place only after the commit;
* :func:`verify_version` verifies a registered version's stored signature against the
  trust the caller gives, checks that the registry's manifest is the signed one, and
  re-hashes the bytes (stored blobs, or a local copy).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mlprov.config import Limits
from mlprov.errors import (
    ConflictError,
    MlprovError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from mlprov.manifest import Digest, FileEntry, Manifest, new_hasher
from mlprov.records import Evidence, ModelVersion
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, corrupt_blobs_named, resolve
from mlprov.registry._unit import mutation
from mlprov.registry.evidence import (
    add_evidence_in,
    documents_for_new_version,
    evidence,
    evidence_content,
)
from mlprov.registry.inputs import VersionInput
from mlprov.registry.types import NewEvidence, SignedVersion
from mlprov.registry.versions import (
    commit_version,
    get_version,
    manifest,
    prepare_version,
    store_files,
    version_files,
)

if TYPE_CHECKING:
    from mlprov.signing import Check, SignedBundle, Signer, Trust, VerificationReport

__all__ = [
    "SIGNATURE_KIND",
    "attach",
    "check_stored_bytes",
    "register_with_signature_file",
    "sign_and_register",
    "sign_version",
    "signature_of",
    "store_signature",
    "verify_version",
    "verify_version_report",
]

SIGNATURE_KIND = "signature"
ProgressCallback = Callable[[int], None]


def sign_and_register(
    context: RegistryContext,
    path: Path,
    name: str,
    signer: Signer,
    info: VersionInput | None = None,
    *,
    with_documents: bool = True,
    hash_algorithm: str = "sha256",
    ignore_paths: Sequence[str | Path] = (),
    allow_symlinks: bool = False,
    signature_path: Path | None = None,
    write_signature: bool = True,
    progress: ProgressCallback | None = None,
) -> SignedVersion:
    """Hash, store, sign and register in one step; write the detached signature.

    With ``with_documents`` the version also gets signed SLSA provenance, ML-BOM and
    model card. Every signature is made before the write transaction. The signature file
    is written to a temporary name first and renamed into place only after the version
    committed; if anything fails before, no row and no signature file remain (blobs may:
    see :mod:`mlprov.registry.versions`).
    """
    from mlprov import signing  # noqa: PLC0415 - cryptography only when signing

    path = Path(path)
    info = info or VersionInput()
    if with_documents and info.builder_id is None:
        from mlprov.provenance import LOCAL_BUILDER_ID  # noqa: PLC0415

        # SLSA needs a builder id; "this host said so" unless the job names its builder.
        builder = os.environ.get("MLPROV_BUILDER_ID", "").strip() or LOCAL_BUILDER_ID
        info = dataclasses.replace(info, builder_id=builder)
    target = (
        Path(signature_path) if signature_path is not None else signing.default_signature_path(path)
    )
    ignores = signing.relative_ignore_paths(path, ignore_paths, target)
    prepared = prepare_version(
        context,
        path,
        name,
        info,
        hash_algorithm=hash_algorithm,
        ignore_paths=ignores,
        allow_symlinks=allow_symlinks,
        leave_out_signature=False,
    )
    stored = store_files(context, prepared, progress=progress)
    statement = signing.build_statement(
        stored.manifest,
        path.absolute().name or name,
        ignore_paths=ignores,
        allow_symlinks=allow_symlinks,
    )
    signed = signer.sign(statement)
    signature = NewEvidence(
        SIGNATURE_KIND,
        signing.BUNDLE_MEDIA_TYPE,
        signing.PREDICATE_TYPE,
        signed.bundle,
        str(signed.signer),
    )
    documents = documents_for_new_version(signer) if with_documents else None

    def evidence_for(draft: ModelVersion) -> list[NewEvidence]:
        return [signature, *(documents(draft) if documents is not None else [])]

    return register_with_signature_file(
        lambda: commit_version(context, prepared, stored, evidence_for=evidence_for),
        signed,
        target if write_signature else None,
        fetch_hint="mlprov evidence {ref}",
    )


def register_with_signature_file(
    register: Callable[[], ModelVersion],
    signed: SignedBundle,
    target: Path | None,
    *,
    fetch_hint: str,
) -> SignedVersion:
    """Run ``register`` (the commit, local or over HTTP) with the detached signature
    staged at ``target`` (None: not written): it lands, atomically, only once the version
    exists, and is discarded if registering fails. A version that registered but whose
    file could not be written is said so, with ``fetch_hint`` (``{ref}`` filled in)."""
    from mlprov.fs import StagedFile  # noqa: PLC0415

    staged = StagedFile(target, signed.bundle, what="signature") if target is not None else None
    try:
        record = register()
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    if staged is not None:
        try:
            staged.commit()
        except StorageError as e:
            raise StorageError(
                f"{record.ref} is registered and signed, but writing {target} failed: "
                f"{e.message}; fetch it with `{fetch_hint.format(ref=record.ref)}`"
            ) from e
    return SignedVersion(
        version=record, signature_path=target, signer=signed.signer, bundle=signed.bundle
    )


def sign_version(context: RegistryContext, ref: ModelRef | str, signer: Signer) -> Evidence:
    """Sign a version registered without a signature: an OMS signature over its recorded
    manifest, made outside any transaction and stored as its signature (audited). A
    version that already has a signature is refused (ConflictError); its evidence is
    never replaced."""
    from mlprov import signing  # noqa: PLC0415

    record = get_version(context, ref)
    existing = evidence(context, record.ref, kind=SIGNATURE_KIND)
    if existing:
        raise ConflictError(f"{record.ref} is already signed (by {existing[-1].signer})")
    statement = signing.build_statement(manifest(context, record.ref), record.artifact_name)
    signed = signer.sign(statement)
    new = NewEvidence(
        SIGNATURE_KIND,
        signing.BUNDLE_MEDIA_TYPE,
        signing.PREDICATE_TYPE,
        signed.bundle,
        str(signed.signer),
    )
    return store_signature(context, record, new)


def store_signature(context: RegistryContext, record: ModelVersion, new: NewEvidence) -> Evidence:
    """Store a signature made or verified outside the transaction; compare-and-set on
    "no signature yet", so two concurrent signers cannot both become the signature."""
    with mutation(context) as unit:
        key = resolve(unit.tx, ModelRef(record.name, version=record.version))
        if any(e.kind == SIGNATURE_KIND for e in unit.tx.evidence.records(key.id)):
            raise ConflictError(f"{record.ref} was signed meanwhile; nothing was stored")
        return add_evidence_in(unit, key, new)


def attach(
    context: RegistryContext,
    ref: ModelRef | str,
    bundle: bytes,
    trust: Trust,
    *,
    now: datetime | None = None,
) -> Evidence:
    """Store a bundle signed elsewhere, verified against ``trust`` first. An OMS signature
    (predicate ``https://model_signing/signature/v1.0``) becomes the version's signature
    when its signed manifest is exactly the recorded one; anything else is an attestation
    about the version (:func:`mlprov.registry.evidence.attach`)."""
    from mlprov import documents, signing  # noqa: PLC0415
    from mlprov.registry import evidence as attestations  # noqa: PLC0415

    parsed = signing.parse_bundle(bundle, context.limits)
    statement = documents.load_json(
        parsed.envelope.payload, "the bundle's statement", context.limits
    )
    if not isinstance(statement, dict) or statement.get("predicateType") != signing.PREDICATE_TYPE:
        return attestations.attach(context, ref, bundle, trust, now=now)
    record = get_version(context, ref)
    verified = signing.verify_bundle(bundle, trust, limits=context.limits, now=now)
    try:
        signing.match_manifest(verified.manifest, manifest(context, record.ref))
    except MlprovError as e:
        raise VerificationError(f"the signature is not of {record.ref}: {e.message}") from e
    new = NewEvidence(
        SIGNATURE_KIND,
        signing.BUNDLE_MEDIA_TYPE,
        signing.PREDICATE_TYPE,
        bundle,
        str(verified.signer),
    )
    return store_signature(context, record, new)


def signature_of(context: RegistryContext, ref: ModelRef | str) -> bytes:
    """The newest stored OMS signature of a version, as the exact bytes written."""
    signatures = evidence(context, ref, kind=SIGNATURE_KIND)
    if not signatures:
        raise NotFoundError(f"{ref} has no stored signature")
    return evidence_content(context, ref, signatures[-1].digest)


def verify_version(
    context: RegistryContext,
    ref: ModelRef | str,
    trust: Trust,
    *,
    path: Path | None = None,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerificationReport:
    """Verify a registered version: its stored signature against ``trust``, the
    registry's manifest against the signed one, and the bytes (stored, or at ``path``)."""
    record = get_version(context, ref)
    bundle = signature_of(context, record.ref)
    stored = version_files(context, record.ref)
    blobs = {f.path: f.blob for f in stored}

    def stored_chunks(entry_path: str) -> Iterator[bytes]:
        with corrupt_blobs_named(record.ref, stored):
            yield from context.artifacts.read_chunks(blobs[entry_path])

    return verify_version_report(
        record,
        bundle,
        lambda: manifest(context, record.ref),
        trust,
        stored_chunks=stored_chunks,
        evidence_bytes=lambda digest: evidence_content(context, record.ref, digest),
        path=path,
        limits=context.limits,
        now=now,
        progress=progress,
    )


def verify_version_report(
    record: ModelVersion,
    bundle: bytes,
    registered_manifest: Callable[[], Manifest],
    trust: Trust,
    *,
    stored_chunks: Callable[[str], Iterable[bytes]],
    evidence_bytes: Callable[[str], bytes],
    path: Path | None,
    limits: Limits,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerificationReport:
    """The checks of :func:`verify_version` over a version's parts wherever they come
    from (this registry's stores, or a server whose answers are not trusted): the
    signature ``bundle`` against ``trust``, the ``registered_manifest`` against the signed
    one, the bytes (``stored_chunks`` by manifest path, or a local copy at ``path``)
    against their signed digests, and the version's own documents (``evidence_bytes``
    by digest) against the same trust."""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.signing import Check, VerificationReport  # noqa: PLC0415

    if path is not None:
        report = signing.verify_model(
            path,
            bundle,
            trust,
            signature_path=signing.default_signature_path(path),
            limits=limits,
            now=now,
            progress=progress,
        )
    else:
        report = signing.verify_bundle_report(bundle, trust, limits=limits, now=now)
    checks = list(report.checks)
    if not report.passed or report.signature is None:
        return report
    try:
        registered = registered_manifest()
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
            _check_bytes(registered, stored_chunks, progress)
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
        checks.append(_check_documents(record, evidence_bytes, trust, limits, now))
    except MlprovError as e:
        checks.append(Check("evidence", False, e.message))
        return VerificationReport(tuple(checks), report.signature, e)
    return VerificationReport(tuple(checks), report.signature, None)


#: Evidence that mlprov made with the model's own signer at registration.
_OWN_DOCUMENTS = ("provenance", "bom", "model-card")


def _check_documents(
    record: ModelVersion,
    evidence_bytes: Callable[[str], bytes],
    trust: Trust,
    limits: Limits,
    now: datetime | None,
) -> Check:
    """The version's own provenance, ML-BOM and card verify with the same trust as the
    model signature and name this model's digest. (Attestations attached from elsewhere
    have their own signers; they were verified against the named identity when attached.)"""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.signing import Check  # noqa: PLC0415

    own = [e for e in record.evidence if e.kind in _OWN_DOCUMENTS]
    model_hex = record.digest.partition(":")[2]
    for item in own:
        bundle = evidence_bytes(item.digest)
        verified = signing.verify_attestation(bundle, trust, limits=limits, now=now)
        if not any(d.get("sha256") == model_hex for _n, d in verified.subjects):
            raise VerificationError(
                f"{record.ref}: the stored {item.kind} is not about this model's digest"
            )
    if not own:
        return Check("evidence", True, "no provenance, ML-BOM or card stored to check")
    kinds = ", ".join(e.kind for e in own)
    return Check("evidence", True, f"{kinds} verify with the same trust and name {record.digest}")


def _check_bytes(
    manifest: Manifest,
    stored_chunks: Callable[[str], Iterable[bytes]],
    progress: ProgressCallback | None,
) -> None:
    """Re-hash every stored file with the manifest's algorithm."""
    from mlprov import signing  # noqa: PLC0415

    actual: list[FileEntry] = []
    for entry in manifest:
        hasher = new_hasher(manifest.algorithm)
        size = 0
        for chunk in stored_chunks(entry.path):
            hasher.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
        actual.append(FileEntry(entry.path, Digest(manifest.algorithm, hasher.hexdigest()), size))
    signing.match_manifest(manifest, Manifest.of(manifest.algorithm, actual))


def check_stored_bytes(
    context: RegistryContext,
    record: ModelVersion,
    manifest: Manifest,
    progress: ProgressCallback | None,
) -> None:
    """Re-hash every stored blob with the manifest's algorithm."""
    stored = version_files(context, record.ref)
    blobs = {f.path: f.blob for f in stored}

    def stored_chunks(entry_path: str) -> Iterator[bytes]:
        with corrupt_blobs_named(record.ref, stored):
            yield from context.artifacts.read_chunks(blobs[entry_path])

    _check_bytes(manifest, stored_chunks, progress)
