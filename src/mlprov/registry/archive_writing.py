"""Writing a transfer archive (docs/transfer.md, ADR 0051 and 0054): the layout, the
signed listing and the tar, from values, for both exports.

The local export (:mod:`mlprov.registry.transfer`) loads those values from its stores;
the export from a server (``HttpRegistry.export``) fetches them over the REST API and
checks every byte against its digest. Both hand an :class:`ExportPlan` to
:func:`write_export`, so the archive's layout, its listing and its order exist once.
Nothing here opens a store: this module is what a client may load (ADR 0049).

The archive is a POSIX tar (:mod:`mlprov.archive`) with one root folder::

    mlprov-archive/archive.sig                         signed archive manifest (first)
    mlprov-archive/versions/NAME/N/evidence/HEX        a version's evidence, exact bytes
    mlprov-archive/versions/NAME/N/record.json         each version of the closure
    mlprov-archive/deployments/NAME/N/release.json     a deployment archive's release
    mlprov-archive/deployments/NAME/N/bundle.sig       its signed bundle statement, exact bytes
    mlprov-archive/blobs/HEX                           file bytes, by SHA-256 (last)
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlprov.archive import ROOT, ArchiveWriter
from mlprov.canonical import canonical_json
from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.records import DeploymentVersion, ModelVersion, StoredFile
from mlprov.refs import ModelRef

if TYPE_CHECKING:
    from mlprov.registry.api import RegistryApi
    from mlprov.registry.types import ImportedArchive
    from mlprov.signing import Signer

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_PREDICATE_TYPE",
    "SIGNATURE_MEMBER",
    "ArchivedRelease",
    "ArchivedVersion",
    "ExportClosure",
    "ExportPlan",
    "ExportedArchive",
    "blob_member",
    "check_destination",
    "closure_order",
    "deployment_bundle_member",
    "deployment_record_member",
    "evidence_member",
    "promote_through",
    "record_member",
    "scratch_archive_path",
    "write_export",
]

ARCHIVE_PREDICATE_TYPE = "https://mlprov.dev/archive/v1"
ARCHIVE_FORMAT = 1
SIGNATURE_MEMBER = f"{ROOT}/archive.sig"


def record_member(name: str, number: int) -> str:
    return f"{ROOT}/versions/{name}/{number}/record.json"


def evidence_member(name: str, number: int, digest: str) -> str:
    return f"{ROOT}/versions/{name}/{number}/evidence/{digest.partition(':')[2]}"


def deployment_record_member(name: str, number: int) -> str:
    return f"{ROOT}/deployments/{name}/{number}/release.json"


def deployment_bundle_member(name: str, number: int) -> str:
    return f"{ROOT}/deployments/{name}/{number}/bundle.sig"


def blob_member(sha256: str) -> str:
    return f"{ROOT}/blobs/{sha256}"


@dataclass(frozen=True)
class ExportedArchive:
    """What an export wrote: the file, the digest of its signed manifest (what both
    registries' audit logs record), the versions in it and its size."""

    path: Path
    archive_digest: str
    root: str
    versions: tuple[str, ...]
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "archive_digest": self.archive_digest,
            "root": self.root,
            "versions": list(self.versions),
            "size": self.size,
        }


@dataclass(frozen=True)
class ArchivedVersion:
    """One version of the closure: its record, stored files and evidence (exact bytes,
    by digest), and whether its blobs go into the archive."""

    record: ModelVersion
    files: list[StoredFile]
    evidence: dict[str, bytes]
    with_bytes: bool

    @property
    def ref(self) -> str:
        return f"{self.record.name}/{self.record.version}"


@dataclass(frozen=True)
class ArchivedRelease:
    """A deployment archive's release (its bundle as the exact stored bytes) and the
    deployment's description."""

    version: DeploymentVersion
    description: str


@dataclass(frozen=True)
class ExportPlan:
    """Everything an archive holds but the blobs' bytes: the closure (ancestors first,
    the exported versions last), the release of a deployment archive, and the origin
    registry (id, URI without credentials)."""

    closure: list[ArchivedVersion]
    release: ArchivedRelease | None
    with_ancestors: bool
    origin_id: str
    origin_uri: str

    @property
    def kind(self) -> str:
        return "model-version" if self.release is None else "deployment"

    @property
    def root(self) -> str:
        return self.closure[-1].ref if self.release is None else self.release.version.ref

    @property
    def root_digest(self) -> str:
        """The listing's subject: the version's manifest digest, or the bundle's."""
        if self.release is None:
            return self.closure[-1].record.digest
        return self.release.version.bundle_digest

    @property
    def versions(self) -> list[str]:
        return [item.ref for item in self.closure]

    def summary(self) -> ExportClosure:
        return ExportClosure(
            kind=self.kind,
            root=self.root,
            root_digest=self.root_digest,
            versions=tuple(self.versions),
            with_bytes=tuple(item.ref for item in self.closure if item.with_bytes),
            with_ancestors=self.with_ancestors,
            origin_id=self.origin_id,
            origin_uri=self.origin_uri,
        )


@dataclass(frozen=True)
class ExportClosure:
    """What an export of ``root`` holds, without the contents: its kind, the listing's
    subject digest, the versions (ancestors first), those whose blobs it carries, and
    the origin registry. A server answers it to a client exporting from it
    (``GET /api/v1/exports/closure``) and audits an export by it."""

    kind: str
    root: str
    root_digest: str
    versions: tuple[str, ...]
    with_bytes: tuple[str, ...]
    with_ancestors: bool
    origin_id: str
    origin_uri: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "root": self.root,
            "root_digest": self.root_digest,
            "versions": list(self.versions),
            "with_bytes": list(self.with_bytes),
            "with_ancestors": self.with_ancestors,
            "origin": {"registry_id": self.origin_id, "uri": self.origin_uri},
        }

    @classmethod
    def from_json(cls, data: Any, what: str) -> ExportClosure:
        """The closure :meth:`to_json` wrote (a server's answer, or the one an export
        record's idempotency key kept); MalformedDocumentError naming ``what`` otherwise."""
        try:
            origin = dict(data["origin"])
            closure = cls(
                kind=str(data["kind"]),
                root=str(data["root"]),
                root_digest=str(data["root_digest"]),
                versions=tuple(str(v) for v in data["versions"]),
                with_bytes=tuple(str(v) for v in data["with_bytes"]),
                with_ancestors=bool(data["with_ancestors"]),
                origin_id=str(origin["registry_id"]),
                origin_uri=str(origin["uri"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise MalformedDocumentError(f"{what} is malformed: {e}") from None
        if closure.kind not in ("model-version", "deployment") or not closure.versions:
            raise MalformedDocumentError(f"{what} names no versions")
        return closure

    def audit(self, archive_digest: str) -> tuple[str, str, dict[str, Any]]:
        """The export's audit entry (action, subject, details): the same whether the
        registry exported itself or a client exported from it over HTTP."""
        return (
            "version.export" if self.kind == "model-version" else "deployment.export",
            self.root,
            {
                "archive": archive_digest,
                "digest" if self.kind == "model-version" else "bundle_digest": self.root_digest,
                "versions": list(self.versions),
                "with_ancestors": self.with_ancestors,
            },
        )


_Key = TypeVar("_Key")


def closure_order(
    roots: Sequence[_Key],
    parents: Callable[[_Key], Sequence[_Key]],
    identity: Callable[[_Key], Hashable],
    depth: int,
) -> list[_Key]:
    """The roots and their registered ancestors (at most ``depth`` edges away), each
    once, ancestors first: the union of each root's closure, each in the order that puts
    ancestors first. ``parents(key)`` are the registered targets of its edges."""
    combined: list[_Key] = []
    placed: set[Hashable] = set()
    for root in roots:
        order: list[_Key] = []
        seen = {identity(root)}
        queue: deque[tuple[_Key, int]] = deque([(root, 0)])
        while queue:
            key, level = queue.popleft()
            order.append(key)
            if level >= depth:
                continue
            for target in parents(key):
                if identity(target) not in seen:
                    seen.add(identity(target))
                    queue.append((target, level + 1))
        for key in reversed(order):
            if identity(key) not in placed:
                placed.add(identity(key))
                combined.append(key)
    return combined


def check_destination(to: Path) -> Path:
    """``to`` as an archive path export may write: new, in an existing folder."""
    to = Path(to)
    if to.exists():
        raise InvalidInputError(f"{to} exists already; export writes a new file")
    if not to.parent.is_dir():
        raise InvalidInputError(f"{to.parent} is not a folder")
    return to


def _record_document(item: ArchivedVersion) -> bytes:
    record = item.record.model_copy(update={"aliases": [], "evidence": []}).model_dump(mode="json")
    document = {
        "record": record,
        "files": [
            {"path": f.path, "size": f.size, "digest": f.digest, "blob": f.blob} for f in item.files
        ],
        "evidence": [
            {
                "kind": e.kind,
                "media_type": e.media_type,
                "predicate_type": e.predicate_type,
                "digest": e.digest,
                "signer": e.signer,
            }
            for e in item.record.evidence
            if e.digest in item.evidence
        ],
        "with_bytes": item.with_bytes,
    }
    return canonical_json(document, "archived version")


def _release_documents(release: ArchivedRelease) -> list[tuple[str, bytes]]:
    """A deployment version's release record and its bundle statement (exact bytes)."""
    version = release.version
    record = {**version.to_json(), "description": release.description}
    return [
        (
            deployment_record_member(version.deployment, version.version),
            canonical_json(record, "archived deployment version"),
        ),
        (deployment_bundle_member(version.deployment, version.version), version.bundle),
    ]


def _documents(plan: ExportPlan) -> tuple[list[tuple[str, bytes]], dict[str, int]]:
    """The archive's documents in their order, and its blobs (SHA-256 -> size)."""
    documents: list[tuple[str, bytes]] = []
    blobs: dict[str, int] = {}
    for item in plan.closure:
        name, number = item.record.name, item.record.version
        # Evidence before its record, records before blobs: the importer checks each
        # member against what it read before it (module docstring of registry.importing).
        for evidence in item.record.evidence:
            content = item.evidence.get(evidence.digest)
            if content is not None:
                documents.append((evidence_member(name, number, evidence.digest), content))
        documents.append((record_member(name, number), _record_document(item)))
        if item.with_bytes:
            for f in item.files:
                blobs[f.blob] = f.size
    if plan.release is not None:
        documents += _release_documents(plan.release)
    return documents, blobs


def _listing(
    plan: ExportPlan, documents: list[tuple[str, bytes]], blobs: dict[str, int], now: str
) -> bytes:
    """The in-toto Statement ``archive.sig`` signs (predicate :data:`ARCHIVE_PREDICATE_TYPE`)."""
    from mlprov import provenance  # noqa: PLC0415

    members = [
        {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in documents
    ]
    members += [
        {"path": blob_member(sha), "size": size, "sha256": sha}
        for sha, size in sorted(blobs.items())
    ]
    predicate = {
        "format": ARCHIVE_FORMAT,
        "kind": plan.kind,
        "root": plan.root,
        "versions": plan.versions,
        "with_ancestors": plan.with_ancestors,
        "origin": {"registry_id": plan.origin_id, "uri": plan.origin_uri},
        "exported_at": now,
        "members": members,
    }
    algorithm, _, value = plan.root_digest.partition(":")
    return provenance.Statement(
        subject=(provenance.ResourceDescriptor(name=plan.root, digest={algorithm: value}),),
        predicate_type=ARCHIVE_PREDICATE_TYPE,
        predicate=predicate,
    ).to_bytes()


def write_export(
    plan: ExportPlan,
    to: Path,
    signer: Signer,
    *,
    now: str,
    blob_chunks: Callable[[str, int], Iterator[bytes]],
    record: Callable[[str], None],
    blob_file: Callable[[str], Path | None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportedArchive:
    """Sign ``plan``'s listing and write the archive to ``to`` (a temporary name, renamed
    when complete). ``blob_chunks(sha256, size)`` yields a blob's bytes and raises when
    they are not that blob's; ``blob_file(sha256)``, where given, names a local file
    holding a blob, which the kernel copies and whose copy in the archive is hashed
    against the key (:meth:`mlprov.archive.ArchiveWriter.add_file`: a mismatch is
    :class:`mlprov.archive.MemberDigestError`); ``progress`` sees those copies' bytes.
    ``record(archive_digest)`` audits the export once every member is written and checked
    and before the rename, so no archive exists that its source registry did not audit.
    Any failure leaves no file."""
    documents, blobs = _documents(plan)
    signed = signer.sign(_listing(plan, documents, blobs, now)).bundle
    archive_digest = f"sha256:{hashlib.sha256(signed).hexdigest()}"
    writer = ArchiveWriter(to)
    try:
        writer.add_bytes(SIGNATURE_MEMBER, signed)
        for name, data in documents:
            writer.add_bytes(name, data)
        for sha, size in sorted(blobs.items()):
            local = blob_file(sha) if blob_file is not None else None
            if local is not None:
                writer.add_file(blob_member(sha), local, size, sha, progress)
            else:
                writer.add_stream(blob_member(sha), size, blob_chunks(sha, size), sha)
        writer.commit(before_rename=lambda: record(archive_digest))
    except BaseException:
        writer.discard()
        raise
    return ExportedArchive(to, archive_digest, plan.root, tuple(plan.versions), to.stat().st_size)


def scratch_archive_path() -> tuple[tempfile.TemporaryDirectory[str], Path]:
    """A folder of its own for an archive that only passes through (``promote``)."""
    folder = tempfile.TemporaryDirectory(prefix="mlprov-promote-")
    return folder, Path(folder.name) / "transfer.tar"


def promote_through(
    export: Callable[[Path], object],
    target: RegistryApi,
    *,
    alias: str | None,
    reason: str,
) -> ImportedArchive:
    """``export(path)`` into a scratch archive, import it into ``target`` through the
    target's trust, then (with ``alias``) move the alias there through its gate (for a
    deployment, its deployment policies). The scratch archive is removed in every case."""
    folder, path = scratch_archive_path()
    with folder:
        export(path)
        imported = target.import_archive(path)
    if alias is not None:
        moved = ModelRef.parse(imported.ref)
        target.set_alias(moved.name, alias, moved.version or 0, reason=reason)
    return imported
