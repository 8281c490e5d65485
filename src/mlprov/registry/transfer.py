"""``mlprov export`` and ``mlprov promote``: a version, its evidence and its lineage
closure in one signed archive (docs/transfer.md, ADR 0051).

The archive is a POSIX tar (:mod:`mlprov.archive`) with one root folder::

    mlprov-archive/archive.sig                         signed archive manifest (first)
    mlprov-archive/versions/NAME/N/evidence/HEX        a version's evidence, exact bytes
    mlprov-archive/versions/NAME/N/record.json         each version of the closure
    mlprov-archive/deployments/NAME/N/release.json     a deployment archive's release
    mlprov-archive/deployments/NAME/N/bundle.sig       its signed bundle statement, exact bytes
    mlprov-archive/blobs/HEX                           file bytes, by SHA-256 (last)

``archive.sig`` is a Sigstore bundle over an in-toto Statement whose predicate
(:data:`ARCHIVE_PREDICATE_TYPE`) lists every other member with its size and SHA-256, the
versions in the closure (ancestors first, the exported version last) and the origin
registry. The blobs of the exported version are always in it; its ancestors' only with
``with_ancestors``. A deployment version (``kind`` ``deployment``, ``root``
``NAME/N``) carries every member version with its bytes, the union of the members'
lineage closures, the release record and the bundle statement as the exact stored bytes.

Export reads the rows in one read transaction, signs outside any transaction, streams
every blob from the artefact store into the tar (a local file store's blobs copied by the
kernel and the archive's bytes hashed on worker threads, other stores' digest-checked as
they stream: :class:`mlprov.archive.ArchiveWriter`), renames
the finished file into place, and audits ``version.export`` with the manifest's digest
(``deployment.export`` with the bundle's), which the importing registry's
``version.import`` (``deployment.import``) entry records too.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.archive import ROOT, ArchiveWriter, MemberDigestError, read_ahead
from mlprov.artifacts import CorruptBlobError
from mlprov.canonical import canonical_json
from mlprov.errors import DigestMismatchError, InvalidInputError
from mlprov.records import ModelVersion
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, resolve, utc_now
from mlprov.registry._unit import mutation
from mlprov.store import StoreTransaction
from mlprov.store.deployments import DeploymentVersion
from mlprov.store.versions import StoredFile, VersionKey

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_PREDICATE_TYPE",
    "SIGNATURE_MEMBER",
    "ExportedArchive",
    "blob_member",
    "deployment_bundle_member",
    "deployment_record_member",
    "evidence_member",
    "export_version",
    "record_member",
    "registry_identity",
]

ARCHIVE_PREDICATE_TYPE = "https://mlprov.dev/archive/v1"
ARCHIVE_FORMAT = 1
SIGNATURE_MEMBER = f"{ROOT}/archive.sig"
_CREDENTIALS = re.compile(r"//[^/@]*@")


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
class _Loaded:
    key: VersionKey
    record: ModelVersion
    files: list[StoredFile]
    evidence: dict[str, bytes]


def registry_identity(tx: StoreTransaction, uri: str) -> tuple[str, str]:
    """(id, uri) naming a registry: the hash of its first audit entry (fixed for its
    life) and its metadata URI without credentials."""
    first = tx.audit.hash_at(1) or ""
    return first, _CREDENTIALS.sub("//", uri)


def _closure(tx: StoreTransaction, roots: list[VersionKey], depth: int) -> list[_Loaded]:
    """The versions and their registered ancestors, ancestors first (each once): the
    union of each root's closure, each in the order that puts ancestors first."""
    combined: list[VersionKey] = []
    placed: set[int] = set()
    for root in roots:
        order: list[VersionKey] = []
        seen = {root.id}
        queue: deque[tuple[VersionKey, int]] = deque([(root, 0)])
        while queue:
            key, level = queue.popleft()
            order.append(key)
            if level >= depth:
                continue
            for edge in tx.lineage.edges_from(key.id):
                if edge.target_version_id is None or edge.target_version_id in seen:
                    continue
                target = tx.versions.by_id(edge.target_version_id)
                if target is not None:
                    seen.add(target.id)
                    queue.append((target, level + 1))
        for key in reversed(order):
            if key.id not in placed:
                placed.add(key.id)
                combined.append(key)
    return [
        _Loaded(k, tx.versions.record(k), tx.versions.files(k), tx.evidence.contents(k.id))
        for k in combined
    ]


def _record_document(item: _Loaded, with_bytes: bool) -> bytes:
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
        "with_bytes": with_bytes,
    }
    return canonical_json(document, "archived version")


def export_version(
    context: RegistryContext,
    ref: ModelRef | str,
    to: Path,
    signer: Signer,
    *,
    with_ancestors: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportedArchive:
    """Write ``ref`` (with its lineage closure) to the tar file ``to`` (module docstring);
    ``ref`` may name a deployment version (``NAME/N`` or ``NAME@ALIAS``)."""
    from mlprov import provenance  # noqa: PLC0415
    from mlprov.registry.deployments import resolve_deployment  # noqa: PLC0415

    to = Path(to)
    if to.exists():
        raise InvalidInputError(f"{to} exists already; export writes a new file")
    if not to.parent.is_dir():
        raise InvalidInputError(f"{to.parent} is not a folder")
    parsed = coerce_ref(ref)
    release: tuple[DeploymentVersion, str] | None = None
    with context.metadata.read() as tx:
        found = tx.deployments.find(parsed.name)
        if tx.models.find(parsed.name) is None and found is not None:
            # A deployment (one namespace with models, ADR 0050): its members are the roots.
            release = (
                tx.deployments.version_record(resolve_deployment(tx, parsed)),
                tx.deployments.record(found).description,
            )
            roots = [resolve(tx, ModelRef(m.model, version=m.version)) for m in release[0].members]
        else:
            roots = [resolve(tx, parsed)]
        closure = _closure(tx, roots, context.limits.max_lineage_depth)
        origin_id, origin_uri = registry_identity(tx, context.metadata.uri)
    root_ids = {r.id for r in roots}
    documents: list[tuple[str, bytes]] = []
    blobs: dict[str, int] = {}
    for item in closure:
        with_bytes = with_ancestors or item.key.id in root_ids
        # Evidence before its record, records before blobs: the importer checks each
        # member against what it read before it (module docstring of registry.importing).
        for evidence in item.record.evidence:
            content = item.evidence.get(evidence.digest)
            if content is not None:
                documents.append(
                    (evidence_member(item.key.name, item.key.number, evidence.digest), content)
                )
        documents.append(
            (record_member(item.key.name, item.key.number), _record_document(item, with_bytes))
        )
        if with_bytes:
            for f in item.files:
                blobs[f.blob] = f.size
    if release is not None:
        documents += _release_documents(*release)
    members = [
        {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in documents
    ]
    members += [
        {"path": blob_member(sha), "size": size, "sha256": sha}
        for sha, size in sorted(blobs.items())
    ]
    refs = [item.key.ref for item in closure]
    if release is None:
        root_ref, kind, root_digest = roots[0].ref, "model-version", roots[0].digest
    else:
        root_ref, kind, root_digest = release[0].ref, "deployment", release[0].bundle_digest
    predicate = {
        "format": ARCHIVE_FORMAT,
        "kind": kind,
        "root": root_ref,
        "versions": refs,
        "with_ancestors": with_ancestors,
        "origin": {"registry_id": origin_id, "uri": origin_uri},
        "exported_at": utc_now(),
        "members": members,
    }
    statement = provenance.Statement(
        subject=(
            provenance.ResourceDescriptor(
                name=root_ref,
                digest={root_digest.partition(":")[0]: root_digest.partition(":")[2]},
            ),
        ),
        predicate_type=ARCHIVE_PREDICATE_TYPE,
        predicate=predicate,
    ).to_bytes()
    signed = signer.sign(statement).bundle
    archive_digest = f"sha256:{hashlib.sha256(signed).hexdigest()}"

    writer = ArchiveWriter(to)
    try:
        writer.add_bytes(SIGNATURE_MEMBER, signed)
        for name, data in documents:
            writer.add_bytes(name, data)
        for sha, size in sorted(blobs.items()):
            local = context.artifacts.local_file(sha)
            if local is not None:
                # Copied by the kernel; the archive's bytes are hashed on worker threads
                # against the key, and commit() fails if one does not match.
                writer.add_file(blob_member(sha), local, size, sha, progress)
                continue
            chunks = read_ahead(context.artifacts.read_chunks(sha))
            if progress is not None:
                chunks = _counted(chunks, progress)
            writer.add_stream(blob_member(sha), size, chunks, sha)
        writer.commit()
    except MemberDigestError as e:
        writer.discard()
        if e.actual is None:
            raise DigestMismatchError(
                f"blob {e.expected} is corrupt in the artefact store: {e.detail}"
            ) from e
        raise CorruptBlobError(e.expected, e.actual) from e
    except BaseException:
        writer.discard()
        raise
    with mutation(context) as unit:
        unit.audit(
            "version.export" if release is None else "deployment.export",
            root_ref,
            {
                "archive": archive_digest,
                "digest" if release is None else "bundle_digest": root_digest,
                "versions": refs,
                "with_ancestors": with_ancestors,
            },
        )
    return ExportedArchive(to, archive_digest, root_ref, tuple(refs), to.stat().st_size)


def _release_documents(version: DeploymentVersion, description: str) -> list[tuple[str, bytes]]:
    """A deployment version's release record and its bundle statement (exact bytes)."""
    record = {**version.to_json(), "description": description}
    return [
        (
            deployment_record_member(version.deployment, version.version),
            canonical_json(record, "archived deployment version"),
        ),
        (deployment_bundle_member(version.deployment, version.version), version.bundle),
    ]


def _counted(chunks: Any, progress: Callable[[int], None]) -> Any:
    for chunk in chunks:
        progress(len(chunk))
        yield chunk


def scratch_archive_path() -> tuple[tempfile.TemporaryDirectory[str], Path]:
    """A folder of its own for an archive that only passes through (``promote``)."""
    folder = tempfile.TemporaryDirectory(prefix="mlprov-promote-")
    return folder, Path(folder.name) / "transfer.tar"
