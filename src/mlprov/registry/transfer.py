"""``mlprov export`` and ``mlprov promote`` from this registry's stores: a version, its
evidence and its lineage closure in one signed archive (docs/transfer.md, ADR 0051).

The archive's layout and writer are :mod:`mlprov.registry.archive_writing`, shared with
the export from a server (ADR 0054). Here export reads the rows in one read transaction,
signs outside any transaction, copies every blob into the tar (a file store's by the
kernel, the archive's copy then hashed against the key on worker threads; S3's streamed
through the store's checked reads, a few chunks ahead of the tar writer), audits
``version.export`` with the archive's digest (``deployment.export`` with the bundle's
too), which the importing registry's ``version.import`` (``deployment.import``) entry
records as well, and renames the finished file into place.

:func:`export_closure` and :func:`record_export` serve a client that exports from this
registry over HTTP: what the archive of a reference holds, and the audit entry of the
archive the client wrote from it. With an idempotency key the key is recorded
(``export_keys``) in the audit entry's transaction, with the request's digest and the
answer, so a repeat of the request gets that answer and audits nothing more.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlprov.archive import MemberDigestError, read_ahead
from mlprov.artifacts import CorruptBlobError
from mlprov.canonical import canonical_json
from mlprov.errors import ConflictError, DigestMismatchError, InvalidInputError
from mlprov.refs import ModelRef
from mlprov.registry._context import (
    RegistryContext,
    check_idempotency_key,
    coerce_ref,
    resolve,
    utc_now,
)
from mlprov.registry._unit import mutation
from mlprov.registry.archive_writing import (
    ArchivedRelease,
    ArchivedVersion,
    ExportClosure,
    ExportedArchive,
    ExportPlan,
    check_destination,
    closure_order,
    write_export,
)
from mlprov.store import StoreTransaction
from mlprov.store.export_keys import ExportKey
from mlprov.store.versions import VersionKey

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = [
    "ExportedArchive",
    "export_closure",
    "export_version",
    "record_export",
    "registry_identity",
]

_CREDENTIALS = re.compile(r"//[^/@]*@")
_ARCHIVE_DIGEST = re.compile(r"\Asha256:[0-9a-f]{64}\Z")


def registry_identity(tx: StoreTransaction, uri: str) -> tuple[str, str]:
    """(id, uri) naming a registry: the hash of its first audit entry (fixed for its
    life) and its metadata URI without credentials."""
    first = tx.audit.hash_at(1) or ""
    return first, _CREDENTIALS.sub("//", uri)


def _parents(tx: StoreTransaction) -> Callable[[VersionKey], list[VersionKey]]:
    def parents(key: VersionKey) -> list[VersionKey]:
        found: list[VersionKey] = []
        for edge in tx.lineage.edges_from(key.id):
            if edge.target_version_id is None:
                continue
            target = tx.versions.by_id(edge.target_version_id)
            if target is not None:
                found.append(target)
        return found

    return parents


def _load_plan(
    context: RegistryContext,
    tx: StoreTransaction,
    ref: ModelRef,
    *,
    with_ancestors: bool,
    contents: bool,
) -> ExportPlan:
    """The export of ``ref`` (a version, or a deployment version whose members are the
    roots); without ``contents`` the evidence and bundle bytes are left out."""
    from mlprov.registry.deployments import resolve_deployment  # noqa: PLC0415

    release: ArchivedRelease | None = None
    found = tx.deployments.find(ref.name)
    if tx.models.find(ref.name) is None and found is not None:
        # A deployment (one namespace with models, ADR 0050): its members are the roots.
        version = tx.deployments.version_record(resolve_deployment(tx, ref))
        release = ArchivedRelease(version, tx.deployments.record(found).description)
        roots = [resolve(tx, ModelRef(m.model, version=m.version)) for m in version.members]
    else:
        roots = [resolve(tx, ref)]
    keys = closure_order(roots, _parents(tx), lambda key: key.id, context.limits.max_lineage_depth)
    root_ids = {r.id for r in roots}
    closure = [
        ArchivedVersion(
            tx.versions.record(k),
            tx.versions.files(k),
            tx.evidence.contents(k.id) if contents else {},
            with_ancestors or k.id in root_ids,
        )
        for k in keys
    ]
    origin_id, origin_uri = registry_identity(tx, context.metadata.uri)
    return ExportPlan(closure, release, with_ancestors, origin_id, origin_uri)


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
    to = check_destination(to)
    parsed = coerce_ref(ref)
    with context.metadata.read() as tx:
        plan = _load_plan(context, tx, parsed, with_ancestors=with_ancestors, contents=True)

    def blob_chunks(sha256: str, _size: int) -> Iterator[bytes]:
        chunks = read_ahead(context.artifacts.read_chunks(sha256))
        return chunks if progress is None else _counted(chunks, progress)

    def record(archive_digest: str) -> None:
        with mutation(context) as unit:
            unit.audit(*plan.summary().audit(archive_digest))

    try:
        return write_export(
            plan,
            to,
            signer,
            now=utc_now(),
            blob_chunks=blob_chunks,
            record=record,
            # A file store's blobs are copied by the kernel and the archive's copies
            # hashed on worker threads (ADR 0051, amendment); S3's are streamed.
            blob_file=context.artifacts.local_file,
            progress=progress,
        )
    except MemberDigestError as e:
        if e.actual is None:
            raise DigestMismatchError(
                f"blob {e.expected} is corrupt in the artefact store: {e.detail}"
            ) from e
        raise CorruptBlobError(e.expected, e.actual) from e


def export_closure(
    context: RegistryContext, ref: ModelRef | str, *, with_ancestors: bool = False
) -> ExportClosure:
    """What the archive of ``ref`` holds (``ref`` resolved once), without its contents."""
    with context.metadata.read() as tx:
        plan = _load_plan(
            context, tx, coerce_ref(ref), with_ancestors=with_ancestors, contents=False
        )
    return plan.summary()


def record_export(
    context: RegistryContext,
    ref: ModelRef | str,
    archive_digest: str,
    *,
    with_ancestors: bool = False,
    idempotency_key: str | None = None,
    closure: ExportClosure | None = None,
) -> ExportClosure:
    """Audit an archive of ``ref`` that a client wrote from what this registry sent
    (``version.export`` / ``deployment.export``, as a local export would): the closure
    is this registry's own, only the archive digest is the client's. With
    ``idempotency_key`` a repeat of the same request returns the closure the first one
    was answered with and audits nothing; the same key with another request (another
    reference, digest or ``with_ancestors``) is a ConflictError. ``closure``: the one
    already worked out for ``ref`` and ``with_ancestors`` (the server's access check
    needs it first), so it is not worked out again."""
    if not _ARCHIVE_DIGEST.match(archive_digest):
        raise InvalidInputError(
            f"archive digest {archive_digest[:80]!r} is not sha256: and 64 hex digits"
        )
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    # The request as sent (``ref`` unresolved): a key names one request, not one export.
    request = (
        "sha256:"
        + hashlib.sha256(
            canonical_json(
                {
                    "ref": str(ref),
                    "archive_digest": archive_digest,
                    "with_ancestors": with_ancestors,
                },
                "export record",
            )
        ).hexdigest()
    )
    if closure is None:
        closure = export_closure(context, ref, with_ancestors=with_ancestors)
    with mutation(context) as unit:
        if idempotency_key is not None:
            # Looked up in the write transaction (writers are serialised), so two
            # repeats arriving together audit the export once.
            earlier = unit.tx.export_keys.find(idempotency_key)
            if earlier is not None:
                if earlier.request_digest != request:
                    raise ConflictError(
                        f"idempotency key {idempotency_key!r} was used for a different "
                        "export record"
                    )
                return ExportClosure.from_json(
                    json.loads(earlier.answer), "the stored answer of an export record"
                )
        entry = unit.audit(*closure.audit(archive_digest))
        if idempotency_key is not None:
            answer = canonical_json(closure.to_json(), "export closure").decode("utf-8")
            unit.tx.export_keys.insert(
                ExportKey(idempotency_key, request, entry.seq, answer, unit.at, unit.actor)
            )
    return closure


def _counted(chunks: Iterator[bytes], progress: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        progress(len(chunk))
        yield chunk
