"""Reading an archive for ``mlprov import`` (step 1 of :mod:`mlprov.registry.importing`):
member by member through the bounded reader of :mod:`mlprov.archive`, every member checked
against the signed listing before its bytes are used, records and evidence parsed
strictly, blobs streamed into the artefact store only when their digests are the listed
ones (ADR 0051). Nothing here writes a row; the blobs it stores are leased and listed in
:class:`ArchiveReading` so a failed import can remove them again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mlprov.archive import ROOT, ArchiveEntry, read_ahead, read_archive
from mlprov.errors import (
    InvalidInputError,
    MalformedDocumentError,
    MlprovError,
    VerificationError,
)
from mlprov.manifest import Digest, FileEntry, Manifest, new_hasher
from mlprov.records import ModelVersion, Stage
from mlprov.refs import ModelRef, validate_model_name
from mlprov.registry._context import RegistryContext
from mlprov.registry.archive_writing import (
    ARCHIVE_FORMAT,
    ARCHIVE_PREDICATE_TYPE,
    SIGNATURE_MEMBER,
    blob_member,
    deployment_bundle_member,
    deployment_record_member,
    evidence_member,
    record_member,
)
from mlprov.registry.gc import lease_blob
from mlprov.store.versions import StoredFile

__all__ = [
    "DEPLOYMENT_KIND",
    "ArchiveReading",
    "ArchivedVersion",
    "deployment_documents",
    "read_archive_into",
    "registry_trust",
]

#: The ``kind`` of an archive holding a deployment version (else ``model-version``).
DEPLOYMENT_KIND = "deployment"

T = TypeVar("T")

_BLOB_BOUND = 1 << 50  # a blob's own bound is its listed size (checked on reading)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Member(_Strict):
    path: str
    size: int
    sha256: str


class _Origin(_Strict):
    registry_id: str
    uri: str


class _Predicate(_Strict):
    format: int
    kind: str
    root: str
    versions: list[str]
    with_ancestors: bool
    origin: _Origin
    exported_at: str
    members: list[_Member]


class _ArchivedFile(_Strict):
    path: str
    size: int
    digest: str
    blob: str


class _ArchivedEvidence(_Strict):
    kind: str
    media_type: str
    predicate_type: str
    digest: str
    signer: str


class _ArchivedVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    record: dict[str, Any]
    files: list[_ArchivedFile]
    evidence: list[_ArchivedEvidence]
    with_bytes: bool


@dataclass
class ArchivedVersion:
    """One archived version as read and checked (``name`` as it will be here)."""

    origin_ref: str
    name: str
    record: ModelVersion
    files: list[StoredFile]
    evidence: list[tuple[_ArchivedEvidence, bytes]]
    with_bytes: bool

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.record.version}"


@dataclass
class ArchiveReading:
    """State of one import: what was read, and the blobs it stored (to undo)."""

    predicate: _Predicate | None = None
    archive_digest: str = ""
    documents: dict[str, bytes] = field(default_factory=dict)
    versions: dict[str, ArchivedVersion] = field(default_factory=dict)
    wanted_blobs: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)


def read_archive_into(
    context: RegistryContext,
    path: Path,
    reading: ArchiveReading,
    holder: str,
    rename: str | None,
    authorize: Callable[[str], None] | None,
    imported_before: Callable[[ArchiveReading], T | None],
) -> T | None:
    """Read the archive at ``path`` into ``reading`` (module docstring). Once its signed
    listing is read, ``imported_before(reading)`` may answer for an archive imported
    before: reading stops there and that answer is returned. Else None, all read."""
    limits = context.limits

    def bound(name: str) -> int:
        return _BLOB_BOUND if name.startswith(f"{ROOT}/blobs/") else limits.max_document_bytes

    listed: dict[str, _Member] = {}
    for entry in read_archive(path, max_members=limits.max_archive_members, max_member_bytes=bound):
        if reading.predicate is None:
            if entry.name != SIGNATURE_MEMBER:
                raise InvalidInputError(
                    f"archive refused: its first member is {entry.name[:120]!r}, "
                    f"not {SIGNATURE_MEMBER}"
                )
            bundle = entry.read_all(limits.max_document_bytes)
            reading.predicate = _archive_predicate(context, bundle)
            reading.archive_digest = f"sha256:{hashlib.sha256(bundle).hexdigest()}"
            if reading.predicate.kind == DEPLOYMENT_KIND:
                if rename is not None:
                    raise InvalidInputError(
                        "--as renames the version of a model archive; a deployment archive "
                        "keeps its names, which its signed bundle statement names"
                    )
                if authorize is not None:
                    authorize(ModelRef.parse(reading.predicate.root).name)
            earlier = imported_before(reading)
            if earlier is not None:
                return earlier
            for member in reading.predicate.members:
                if member.path in listed or member.path == SIGNATURE_MEMBER:
                    raise InvalidInputError(f"archive refused: {member.path[:120]!r} listed twice")
                listed[member.path] = member
            continue
        found = listed.get(entry.name)
        if found is None:
            raise InvalidInputError(
                f"archive refused: member {entry.name[:120]!r} is not in its signed manifest"
            )
        member = found
        if entry.size != member.size:
            raise InvalidInputError(
                f"archive refused: {entry.name[:120]!r} has {entry.size} bytes, its manifest "
                f"says {member.size}"
            )
        if entry.name.startswith(f"{ROOT}/blobs/"):
            _store_blob(context, entry, member, reading, holder)
            continue
        data = entry.read_all(limits.max_document_bytes)
        if hashlib.sha256(data).hexdigest() != member.sha256:
            raise VerificationError(
                f"archive refused: {entry.name[:120]!r} does not match its signed digest"
            )
        reading.documents[entry.name] = data
        if entry.name.endswith("/record.json") and entry.name.startswith(f"{ROOT}/versions/"):
            version = _read_version(reading, entry.name, data, rename)
            if authorize is not None:
                authorize(version.name)
    if reading.predicate is None:
        raise InvalidInputError("archive refused: it has no members")
    seen = set(reading.documents) | {blob_member(b) for b in reading.leases}
    unread = sorted(set(listed) - seen)
    if unread:
        raise InvalidInputError(
            f"archive refused: {len(unread)} listed member(s) missing, first {unread[0][:120]!r}"
        )
    _check_versions(reading)
    return None


def _archive_predicate(context: RegistryContext, bundle: bytes) -> _Predicate:
    """The archive manifest, its signature checked with the key it carries; and, when
    this registry trusts signers for the ``registry`` role, by one of them."""
    from mlprov import signing  # noqa: PLC0415

    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    if inspected.predicate_type != ARCHIVE_PREDICATE_TYPE:
        raise VerificationError(
            f"archive refused: {SIGNATURE_MEMBER} is not an mlprov archive manifest "
            f"(predicate {inspected.predicate_type[:80]!r})"
        )
    trust = registry_trust(context)
    registries = trust.for_role("registry")
    if registries and not any(_signed_by(bundle, s.trust, context) for s in registries):
        raise VerificationError(
            "archive refused: this registry trusts registry signers, and none of them "
            "signed the archive manifest"
        )
    try:
        predicate = _Predicate.model_validate(inspected.statement.get("predicate"))
    except ValidationError as e:
        raise MalformedDocumentError(
            f"archive refused: its manifest is malformed: {e.errors()[0]['msg']}"
        ) from None
    if predicate.format != ARCHIVE_FORMAT or predicate.kind not in (
        "model-version",
        DEPLOYMENT_KIND,
    ):
        raise InvalidInputError(
            f"archive refused: format {predicate.format} of kind {predicate.kind[:40]!r} is "
            "not one this mlprov reads"
        )
    if predicate.kind == DEPLOYMENT_KIND:
        root = ModelRef.parse(predicate.root)
        if root.version is None or not predicate.versions:
            raise InvalidInputError(
                "archive refused: its manifest names no numbered deployment version or members"
            )
    elif not predicate.versions or predicate.versions[-1] != predicate.root:
        raise InvalidInputError("archive refused: its manifest does not end with its version")
    return predicate


def deployment_documents(predicate: Any) -> tuple[str, str]:
    """The members holding a deployment archive's release record and bundle statement."""
    root = ModelRef.parse(predicate.root)
    number = root.version or 0
    return deployment_record_member(root.name, number), deployment_bundle_member(root.name, number)


def _signed_by(bundle: bytes, trust: Any, context: RegistryContext) -> bool:
    from mlprov import signing  # noqa: PLC0415

    try:
        signing.verify_attestation(bundle, trust, limits=context.limits)
    except MlprovError:
        return False
    return True


def registry_trust(context: RegistryContext) -> Any:
    from mlprov.registry.policies import load_policy  # noqa: PLC0415

    with context.metadata.read() as tx:
        stored = tx.policies.active()
    if stored is None:
        raise VerificationError(
            "import refused: this registry has no policy set, so nothing it trusts can "
            "verify the archive; apply one first (mlprov policy apply)"
        )
    return load_policy(stored.files, context, stored.digest or None).trust


def _read_version(
    reading: ArchiveReading, member: str, data: bytes, rename: str | None
) -> ArchivedVersion:
    assert reading.predicate is not None
    try:
        archived = _ArchivedVersion.model_validate(json.loads(data))
        record = ModelVersion.model_validate_json(json.dumps(archived.record), strict=False)
    except (ValidationError, ValueError) as e:
        raise MalformedDocumentError(f"archive refused: {member[:120]!r} is malformed") from e
    origin_ref = record.ref
    if record_member(record.name, record.version) != member:
        raise InvalidInputError(f"archive refused: {member[:120]!r} holds {origin_ref}")
    if origin_ref not in reading.predicate.versions or origin_ref in reading.versions:
        raise InvalidInputError(f"archive refused: {origin_ref} is not listed once")
    validate_model_name(record.name)
    if record.version < 1:
        raise InvalidInputError(f"archive refused: {origin_ref} has no valid version number")
    _check_files(origin_ref, archived.files)
    is_root = origin_ref == reading.predicate.root
    if is_root and not archived.with_bytes:
        raise InvalidInputError(f"archive refused: {origin_ref} comes without its bytes")
    name = rename if is_root and rename is not None else record.name
    files = [StoredFile(f.path, f.size, f.digest, f.blob) for f in archived.files]
    manifest = Manifest.of(
        record.hash_algorithm, (FileEntry(f.path, Digest.parse(f.digest), f.size) for f in files)
    )
    if str(manifest.digest) != record.digest or len(files) != record.file_count:
        raise VerificationError(
            f"archive refused: the files of {origin_ref} do not make its digest {record.digest}"
        )
    evidence = []
    for item in archived.evidence:
        content = reading.documents.get(evidence_member(record.name, record.version, item.digest))
        if content is None or f"sha256:{hashlib.sha256(content).hexdigest()}" != item.digest:
            raise InvalidInputError(
                f"archive refused: evidence {item.digest[:24]} of {origin_ref} is missing or "
                "does not match its digest"
            )
        evidence.append((item, content))
    version = ArchivedVersion(
        origin_ref,
        name,
        record.model_copy(update={"name": name, "stage": Stage.NONE}),
        files,
        evidence,
        archived.with_bytes,
    )
    reading.versions[origin_ref] = version
    if archived.with_bytes:
        for f in files:
            reading.wanted_blobs.setdefault(f.blob, []).append((f.path, f.digest, f.size))
    return version


def _check_files(ref: str, files: list[_ArchivedFile]) -> None:
    """Paths a download could install safely, each once; sizes and blob keys well formed."""
    from mlprov.manifest import SINGLE_FILE_NAME, check_relative_path  # noqa: PLC0415

    if not files:
        raise InvalidInputError(f"archive refused: {ref} has no files")
    paths = set()
    for item in files:
        if item.path != SINGLE_FILE_NAME or len(files) > 1:
            check_relative_path(item.path)
        if item.path in paths:
            raise InvalidInputError(f"archive refused: {ref} lists {item.path[:120]!r} twice")
        paths.add(item.path)
        if item.size < 0 or len(item.blob) != 64 or item.blob.strip("0123456789abcdef"):
            raise InvalidInputError(f"archive refused: {ref}: {item.path[:120]!r} is malformed")


def _store_blob(
    context: RegistryContext,
    entry: ArchiveEntry,
    member: Any,
    reading: ArchiveReading,
    holder: str,
) -> None:
    """One blob: named by a version read before, streamed into the artefact store and
    kept only if its SHA-256 (and each file's manifest digest) is the expected one."""
    sha = entry.name.rsplit("/", 1)[1]
    uses = reading.wanted_blobs.get(sha)
    if sha != member.sha256 or not uses:
        raise InvalidInputError(
            f"archive refused: blob {entry.name[:120]!r} is not a file of a version in it"
        )
    if any(size != entry.size for _, _, size in uses):
        raise InvalidInputError(
            f"archive refused: blob {sha[:16]}... has {entry.size} bytes, not its file's size"
        )
    # The artefact store hashes SHA-256 as it writes; other manifest algorithms watch
    # the same pass. The check runs in ``hold``, before the store commits anything, so
    # bytes that are not the listed ones never become a blob.
    others: dict[str, Any] = {}
    for _path, digest, _size in uses:
        algorithm = digest.partition(":")[0]
        if algorithm != "sha256" and algorithm not in others:
            others[algorithm] = new_hasher(algorithm)

    def observe(chunk: memoryview) -> None:
        for hasher in others.values():
            hasher.update(chunk)

    def hold(digest: str) -> None:
        actual = {"sha256": digest, **{a: h.hexdigest() for a, h in others.items()}}
        if digest != sha or any(f"{d.partition(':')[0]}:{actual[d.partition(':')[0]]}" != d
                                for _, d, _ in uses):  # fmt: skip
            raise VerificationError(
                f"archive refused: the bytes of {uses[0][0][:120]!r} (blob {sha[:16]}...) do "
                "not match their digest"
            )
        reading.leases[digest] = lease_blob(context, digest, holder)

    stored = context.artifacts.put_chunks(
        read_ahead(entry.chunks()), name=uses[0][0], observe=observe if others else None, hold=hold
    )
    if stored.created:
        reading.added.append(sha)


def _check_versions(reading: ArchiveReading) -> None:
    assert reading.predicate is not None
    absent = [ref for ref in reading.predicate.versions if ref not in reading.versions]
    if absent:
        raise InvalidInputError(f"archive refused: no record of {absent[0][:120]}")
    # Every document is a record or evidence one names: nothing rides along unchecked.
    named = set()
    for version in reading.versions.values():
        origin = ModelRef.parse(version.origin_ref)
        number = origin.version or 0
        named.add(record_member(origin.name, number))
        named |= {evidence_member(origin.name, number, item.digest) for item, _ in version.evidence}
    if reading.predicate.kind == DEPLOYMENT_KIND:
        named |= set(deployment_documents(reading.predicate))
    extra = sorted(set(reading.documents) - named)
    if extra:
        raise InvalidInputError(
            f"archive refused: member {extra[0][:120]!r} is not a record or evidence of a "
            "version in it"
        )
    unread = sorted(set(reading.wanted_blobs) - set(reading.leases))
    if unread:
        raise InvalidInputError(f"archive refused: blob {unread[0]} of a version is missing")
