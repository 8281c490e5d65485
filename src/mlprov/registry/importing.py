"""``mlprov import`` and ``mlprov promote``: an archive verified against this registry's
own trust before a single row is written (docs/transfer.md, ADR 0051).

1. **Read** (outside any transaction), member by member through the bounded reader of
   :mod:`mlprov.archive`: ``archive.sig`` first, its signature checked with the key it
   carries (integrity of the listing only: an archive's keys are never trusted); then
   every member must be listed there, once, with its size and SHA-256. Records and
   evidence are read into memory (each at most the document size limit); each blob must
   be named by a file of a version already read, and is streamed into the artefact store
   (:meth:`~mlprov.artifacts.ArtifactStore.put_chunks`), which keeps it only if its
   digests are the listed ones, checked before anything is committed, and leases it
   first (ADR 0045). A member missing at the end is refused too.
2. **Verify**: every version to be written is checked by the verification engine with
   the trust and revocations of this registry's active policy set (no policy set: refused),
   its ancestors taken from the archive or, when already here, from this registry.
3. **Write** one :class:`~mlprov.registry._unit.Mutation`: each version keeps its name
   (the exported one may be renamed with ``--as``) and its number, so the lineage edges
   its signed documents name stay true; its files, evidence (exact bytes), lineage, an
   origin row and a ``version.import`` audit entry with the archive's digest.

A version already here with the same digest is not written again, and an archive whose
digest was imported before is a no-op. On any failure the blobs this import newly stored
that nothing references are removed again (the lease turned into a claim, as gc does), so
nothing is left behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mlprov.archive import ROOT, ArchiveEntry, read_ahead, read_archive
from mlprov.errors import (
    ConflictError,
    InvalidInputError,
    MalformedDocumentError,
    MlprovError,
    VerificationError,
)
from mlprov.manifest import Digest, FileEntry, Manifest, new_hasher
from mlprov.records import ModelVersion, Stage
from mlprov.refs import ModelRef, validate_model_name
from mlprov.registry._context import (
    MAX_ATTEMPTS,
    LostRace,
    RegistryContext,
    coerce_ref,
    utc_text,
)
from mlprov.registry._snapshot import load_snapshot
from mlprov.registry._unit import Mutation, mutation
from mlprov.registry.evidence import add_evidence_in
from mlprov.registry.gc import CLAIM_TTL, check_leases, lease_blob, new_holder
from mlprov.registry.lineage import stored_edge
from mlprov.registry.models import create_model_in
from mlprov.registry.transfer import (
    ARCHIVE_FORMAT,
    ARCHIVE_PREDICATE_TYPE,
    SIGNATURE_MEMBER,
    blob_member,
    evidence_member,
    export_version,
    record_member,
    scratch_archive_path,
)
from mlprov.registry.types import NewEvidence
from mlprov.store.origins import VersionOrigin
from mlprov.store.versions import StoredFile

if TYPE_CHECKING:
    from mlprov.registry.api import RegistryApi
    from mlprov.signing import Signer
    from mlprov.verification import VersionSnapshot

__all__ = ["ImportedArchive", "import_archive", "promote"]

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


@dataclass(frozen=True)
class ImportedArchive:
    """What an import did: the archive's digest, the version it carried (as named here),
    the versions it wrote (empty for a no-op) and those already present."""

    archive_digest: str
    root: ModelVersion
    written: tuple[str, ...]
    present: tuple[str, ...]
    origin_registry: str
    origin_version: str

    def to_json(self) -> dict[str, Any]:
        return {
            "archive_digest": self.archive_digest,
            "version": self.root.to_json(),
            "written": list(self.written),
            "present": list(self.present),
            "origin_registry": self.origin_registry,
            "origin_version": self.origin_version,
        }


@dataclass
class _Version:
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
class _Reading:
    """State of one import: what was read, and the blobs it stored (to undo)."""

    predicate: _Predicate | None = None
    archive_digest: str = ""
    documents: dict[str, bytes] = field(default_factory=dict)
    versions: dict[str, _Version] = field(default_factory=dict)
    wanted_blobs: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)


def import_archive(
    context: RegistryContext,
    path: Path,
    *,
    rename: str | None = None,
    authorize: Callable[[str], None] | None = None,
) -> ImportedArchive:
    """Import the archive at ``path`` (module docstring); ``rename`` names the exported
    version's model here instead of its original name. ``authorize(model)`` runs for
    each model a version would be written to, as soon as its record is read and before
    any of its bytes are (the server checks the caller's token there; what it raises
    stops the import)."""
    if rename is not None:
        validate_model_name(rename)
    reading = _Reading()
    holder = new_holder("import")
    try:
        earlier = _read(context, Path(path), reading, holder, rename, authorize)
        if earlier is not None:
            return earlier
        plan = _plan(context, reading)
        _verify(context, reading, plan)
        return _commit(context, reading, plan)
    except BaseException:
        _undo_blobs(context, reading, holder)
        raise


def _read(
    context: RegistryContext,
    path: Path,
    reading: _Reading,
    holder: str,
    rename: str | None,
    authorize: Callable[[str], None] | None,
) -> ImportedArchive | None:
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
            earlier = _already_imported(context, reading)
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
        if entry.name.endswith("/record.json"):
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
    trust = _trust(context)
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
    if predicate.format != ARCHIVE_FORMAT or predicate.kind != "model-version":
        raise InvalidInputError(
            f"archive refused: format {predicate.format} of kind {predicate.kind[:40]!r} is "
            "not one this mlprov reads"
        )
    if not predicate.versions or predicate.versions[-1] != predicate.root:
        raise InvalidInputError("archive refused: its manifest does not end with its version")
    return predicate


def _signed_by(bundle: bytes, trust: Any, context: RegistryContext) -> bool:
    from mlprov import signing  # noqa: PLC0415

    try:
        signing.verify_attestation(bundle, trust, limits=context.limits)
    except MlprovError:
        return False
    return True


def _trust(context: RegistryContext) -> Any:
    from mlprov.registry.policies import load_policy  # noqa: PLC0415

    with context.metadata.read() as tx:
        stored = tx.policies.active()
    if stored is None:
        raise VerificationError(
            "import refused: this registry has no policy set, so nothing it trusts can "
            "verify the archive; apply one first (mlprov policy apply)"
        )
    return load_policy(stored.files, context, stored.digest or None).trust


def _already_imported(context: RegistryContext, reading: _Reading) -> ImportedArchive | None:
    with context.metadata.read() as tx:
        origins = tx.origins.by_archive(reading.archive_digest)
        if not origins:
            return None
        keys = tx.versions.by_ids(o.version_id for o in origins)
        records = {o.origin_version: tx.versions.record(keys[o.version_id]) for o in origins}
    assert reading.predicate is not None
    root = records.get(reading.predicate.root)
    if root is None:
        return None
    return ImportedArchive(
        reading.archive_digest,
        root,
        (),
        tuple(r.ref for r in records.values()),
        reading.predicate.origin.registry_id,
        reading.predicate.root,
    )


def _read_version(reading: _Reading, member: str, data: bytes, rename: str | None) -> _Version:
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
    version = _Version(
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
    reading: _Reading,
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


def _check_versions(reading: _Reading) -> None:
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
    extra = sorted(set(reading.documents) - named)
    if extra:
        raise InvalidInputError(
            f"archive refused: member {extra[0][:120]!r} is not a record or evidence of a "
            "version in it"
        )
    unread = sorted(set(reading.wanted_blobs) - set(reading.leases))
    if unread:
        raise InvalidInputError(f"archive refused: blob {unread[0]} of a version is missing")


@dataclass(frozen=True)
class _Plan:
    write: tuple[str, ...]  # origin refs to write, ancestors first
    present: tuple[str, ...]  # origin refs already here with the same digest


def _plan(context: RegistryContext, reading: _Reading) -> _Plan:
    """Which versions are written and which are here already; a number taken by another
    version (or passed) is a conflict."""
    assert reading.predicate is not None
    write, present = [], []
    with context.metadata.read() as tx:
        for ref in reading.predicate.versions:
            version = reading.versions[ref]
            model = tx.models.find(version.name)
            found = tx.versions.find(model, version.record.version) if model else None
            if found is not None:
                if found.digest != version.record.digest:
                    raise ConflictError(
                        f"{version.ref} exists here with another digest; nothing was imported "
                        "(import the archive --as another model name)"
                    )
                present.append(ref)
                continue
            if model is not None and model.next_version > version.record.version:
                raise ConflictError(
                    f"{version.ref}: number {version.record.version} of {version.name} was "
                    "already given here; nothing was imported (import --as another name)"
                )
            write.append(ref)
    return _Plan(tuple(write), tuple(present))


def _verify(context: RegistryContext, reading: _Reading, plan: _Plan) -> None:
    """Every version to write passes the verification engine with this registry's trust."""
    from mlprov.verification import Revocations, verify_snapshot  # noqa: PLC0415

    trust = _trust(context)
    snapshots: dict[str, VersionSnapshot] = {}
    with context.metadata.read() as tx:
        found = tx.revocations.all()
        revocations = Revocations(
            versions={r.value: r.reason for r in found if r.kind == "version"},
            key_hints={r.value: r.reason for r in found if r.kind == "key"},
            identities={r.value: r.reason for r in found if r.kind == "identity"},
        )
        for ref in plan.write:  # ancestors first: each one's ancestors are built already
            snapshots[ref] = _snapshot(context, tx, reading, ref, snapshots)
    now = datetime.now(timezone.utc)
    for ref in plan.write:
        report = verify_snapshot(
            snapshots[ref], trust, revocations=revocations, now=now, limits=context.limits
        )
        failures = report.failures
        if failures:
            raise VerificationError(
                f"import refused: {reading.versions[ref].ref} does not verify with this "
                f"registry's trust: {failures[0].id}: {failures[0].message}"
                + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
            )


def _snapshot(
    context: RegistryContext,
    tx: Any,
    reading: _Reading,
    ref: str,
    built: dict[str, VersionSnapshot],
) -> VersionSnapshot:
    from mlprov.records import Evidence  # noqa: PLC0415
    from mlprov.verification import StoredEvidence, VersionSnapshot  # noqa: PLC0415

    version = reading.versions[ref]
    record = version.record
    evidence: list[StoredEvidence] = [
        StoredEvidence(
            Evidence(
                id=index + 1,
                kind=item.kind,
                media_type=item.media_type,
                predicate_type=item.predicate_type,
                digest=item.digest,
                signer=item.signer,
                created_at=record.created_at,
                created_by=record.created_by,
            ),
            content,
        )
        for index, (item, content) in enumerate(version.evidence)
    ]
    record = record.model_copy(update={"evidence": [e.record for e in evidence]})
    manifest = Manifest.of(
        record.hash_algorithm,
        (FileEntry(f.path, Digest.parse(f.digest), f.size) for f in version.files),
    )
    ancestors: dict[str, VersionSnapshot | None] = {}
    for edge in record.lineage:
        if not edge.registered:
            continue
        if edge.target in built:
            ancestors[edge.target] = built[edge.target]
            continue
        target = ModelRef.parse(edge.target)
        model = tx.models.find(target.name)
        key = tx.versions.find(model, target.version or 0) if model is not None else None
        if key is None:
            raise VerificationError(
                f"import refused: {version.ref} descends from {edge.target}, which is neither "
                "in the archive nor in this registry"
            )
        ancestors[edge.target] = load_snapshot(tx, key, context.limits.max_lineage_depth)
    return VersionSnapshot(record, manifest, tuple(evidence), ancestors)


def _commit(context: RegistryContext, reading: _Reading, plan: _Plan) -> ImportedArchive:
    assert reading.predicate is not None
    predicate = reading.predicate
    for _attempt in range(MAX_ATTEMPTS):
        try:
            with mutation(context) as unit:
                if unit.tx.origins.by_archive(reading.archive_digest):
                    break  # imported meanwhile by a concurrent import of the same archive
                for ref in plan.write:
                    _write_version(unit, reading, reading.versions[ref])
        except LostRace:
            plan = _plan(context, reading)
            continue
        root = reading.versions[predicate.root]
        from mlprov.registry.versions import get_version  # noqa: PLC0415

        return ImportedArchive(
            reading.archive_digest,
            get_version(context, ModelRef(root.name, version=root.record.version)),
            tuple(reading.versions[r].ref for r in plan.write),
            tuple(reading.versions[r].ref for r in plan.present),
            predicate.origin.registry_id,
            predicate.root,
        )
    earlier = _already_imported(context, reading)
    if earlier is None:
        raise ConflictError("import lost a race repeatedly; nothing was imported: retry")
    return earlier


def _write_version(unit: Mutation, reading: _Reading, version: _Version) -> None:
    assert reading.predicate is not None
    record = version.record
    model = unit.tx.models.find(version.name)
    if model is None:
        model = create_model_in(unit, version.name)
    found = unit.tx.versions.find(model, record.version)
    if found is not None:
        if found.digest != record.digest:
            raise ConflictError(f"{version.ref} was registered meanwhile with another digest")
        return
    unit.expect(unit.tx.models.claim_imported_number(model, record.version))
    if version.with_bytes:
        check_leases(unit, version.name, {f.blob: reading.leases[f.blob] for f in version.files})
    edges = [stored_edge(unit.tx, edge) for edge in record.lineage]
    key = unit.tx.versions.insert(model, record, version.files, edges)
    for item, content in version.evidence:
        add_evidence_in(
            unit,
            key,
            NewEvidence(item.kind, item.media_type, item.predicate_type, content, item.signer),
        )
    unit.tx.origins.insert(
        VersionOrigin(
            key.id,
            reading.archive_digest,
            reading.predicate.origin.registry_id,
            reading.predicate.origin.uri,
            version.origin_ref,
            version.with_bytes,
            unit.at,
            unit.actor,
        )
    )
    unit.audit(
        "version.import",
        key.ref,
        {
            "archive": reading.archive_digest,
            "digest": record.digest,
            "origin_registry": reading.predicate.origin.registry_id,
            "origin_uri": reading.predicate.origin.uri,
            "origin_version": version.origin_ref,
            "with_bytes": version.with_bytes,
        },
    )


def _undo_blobs(context: RegistryContext, reading: _Reading, holder: str) -> None:
    """Remove the blobs this import newly stored that no version references: each lease
    becomes a claim in one transaction (as gc's), then the blob goes."""
    if not reading.added:
        return
    now = datetime.now(timezone.utc)
    try:
        with mutation(context) as unit:
            in_use = unit.tx.versions.blobs_in_use(reading.added)
            claimed = [
                sha
                for sha in reading.added
                if sha not in in_use
                and unit.tx.blob_holds.claim_own_lease(
                    sha, reading.leases.get(sha, ""), utc_text(now + CLAIM_TTL)
                )
            ]
        for sha in claimed:
            context.artifacts.delete(sha)
        with mutation(context) as unit:
            unit.tx.blob_holds.release_claims(claimed, holder)
    except MlprovError:
        # Left for gc: an unreferenced blob is collected after its grace period.
        return


def promote(
    context: RegistryContext,
    target: RegistryApi,
    ref: ModelRef | str,
    signer: Signer,
    *,
    alias: str | None = None,
    with_ancestors: bool = False,
    reason: str = "",
) -> ImportedArchive:
    """Export ``ref`` from ``context`` and import it into ``target`` (a local registry or
    a server) through the target's trust, then (with ``alias``) move the alias there
    through the target's gate."""
    folder, path = scratch_archive_path()
    with folder:
        export_version(context, coerce_ref(ref), path, signer, with_ancestors=with_ancestors)
        imported = target.import_archive(path)
    if alias is not None:
        target.set_alias(imported.root.name, alias, imported.root.version, reason=reason)
    return imported
