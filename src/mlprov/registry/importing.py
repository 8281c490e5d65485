"""``mlprov import`` and ``mlprov promote``: an archive verified against this registry's
own trust before a single row is written (docs/transfer.md, ADR 0051).

1. **Read** (outside any transaction, :mod:`mlprov.registry.archive_reading`): member by
   member through the bounded reader of :mod:`mlprov.archive`: ``archive.sig`` first, its
   signature checked with the key it carries (integrity of the listing only: an
   archive's keys are never trusted); then every member must be listed there, once, with
   its size and SHA-256. Records and evidence are read into memory (each at most the
   document size limit); each blob must be named by a file of a version already read, and
   is streamed into the artefact store
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

A deployment archive (kind ``deployment``) adds its release to each step
(:mod:`mlprov.registry.deployment_import`): read and checked against the archive, its
bundle statement verified with this registry's trust, written in the same Mutation.

A version already here with the same digest is not written again, and an archive whose
digest was imported before is a no-op (as is a deployment release already here). On any
failure the blobs this import newly stored that nothing references are removed again (the
lease turned into a claim, as gc does), so nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.errors import ConflictError, MlprovError, VerificationError
from mlprov.manifest import Digest, FileEntry, Manifest
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
from mlprov.registry.archive_reading import (
    DEPLOYMENT_KIND,
    ArchivedVersion,
    ArchiveReading,
    read_archive_into,
    registry_trust,
)
from mlprov.registry.archive_writing import promote_through
from mlprov.registry.deployment_import import (
    ArchivedRelease,
    present_release,
    read_release,
    verify_release,
    write_release_in,
)
from mlprov.registry.evidence import add_evidence_in
from mlprov.registry.gc import CLAIM_TTL, check_leases, new_holder
from mlprov.registry.lineage import stored_edge
from mlprov.registry.models import create_model_in
from mlprov.registry.transfer import export_version
from mlprov.registry.types import ImportedArchive, NewEvidence
from mlprov.store.deployments import DeploymentVersion
from mlprov.store.origins import VersionOrigin

if TYPE_CHECKING:
    from mlprov.registry.api import RegistryApi
    from mlprov.signing import Signer
    from mlprov.verification import VersionSnapshot

__all__ = ["ImportedArchive", "import_archive", "promote"]


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
    reading = ArchiveReading()
    holder = new_holder("import")
    try:
        earlier = read_archive_into(
            context,
            Path(path),
            reading,
            holder,
            rename,
            authorize,
            lambda r: _already_imported(context, r),
        )
        if earlier is not None:
            return earlier
        plan = _plan(context, reading)
        assert reading.predicate is not None
        release = None
        if reading.predicate.kind == DEPLOYMENT_KIND:
            release = read_release(context, reading)
        _verify(context, reading, plan, release)
        return _commit(context, reading, plan, release)
    except BaseException:
        _undo_blobs(context, reading, holder)
        raise


def _already_imported(context: RegistryContext, reading: ArchiveReading) -> ImportedArchive | None:
    assert reading.predicate is not None
    if reading.predicate.kind == DEPLOYMENT_KIND:
        here = present_release(context, reading)
        if here is None:
            return None
        return ImportedArchive(
            reading.archive_digest,
            None,
            (),
            tuple(m.ref for m in here.members),
            reading.predicate.origin.registry_id,
            reading.predicate.root,
            here,
        )
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


@dataclass(frozen=True)
class _Plan:
    write: tuple[str, ...]  # origin refs to write, ancestors first
    present: tuple[str, ...]  # origin refs already here with the same digest


def _plan(context: RegistryContext, reading: ArchiveReading) -> _Plan:
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


def _verify(
    context: RegistryContext,
    reading: ArchiveReading,
    plan: _Plan,
    release: ArchivedRelease | None,
) -> None:
    """Every version to write passes the verification engine with this registry's trust,
    and so does a deployment release's bundle statement."""
    from mlprov.verification import Revocations, verify_snapshot  # noqa: PLC0415

    trust = registry_trust(context)
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
    if release is not None:
        verify_release(context, release, trust, now)


def _snapshot(
    context: RegistryContext,
    tx: Any,
    reading: ArchiveReading,
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


def _commit(
    context: RegistryContext,
    reading: ArchiveReading,
    plan: _Plan,
    release: ArchivedRelease | None,
) -> ImportedArchive:
    assert reading.predicate is not None
    predicate = reading.predicate
    for _attempt in range(MAX_ATTEMPTS):
        written_release = None
        try:
            with mutation(context) as unit:
                if unit.tx.origins.by_archive(reading.archive_digest):
                    break  # imported meanwhile by a concurrent import of the same archive
                for ref in plan.write:
                    _write_version(unit, reading, reading.versions[ref])
                if release is not None:
                    written_release = write_release_in(unit, reading, release)
        except LostRace:
            plan = _plan(context, reading)
            continue
        if release is not None:
            return _imported_release(context, reading, plan, written_release)
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


def _imported_release(
    context: RegistryContext,
    reading: ArchiveReading,
    plan: _Plan,
    written: DeploymentVersion | None,
) -> ImportedArchive:
    from mlprov.registry.deployments import deployment_version  # noqa: PLC0415

    assert reading.predicate is not None
    here = written or deployment_version(context, reading.predicate.root)
    return ImportedArchive(
        reading.archive_digest,
        None,
        tuple(reading.versions[r].ref for r in plan.write) + ((here.ref,) if written else ()),
        tuple(reading.versions[r].ref for r in plan.present),
        reading.predicate.origin.registry_id,
        reading.predicate.root,
        here,
    )


def _write_version(unit: Mutation, reading: ArchiveReading, version: ArchivedVersion) -> None:
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


def _undo_blobs(context: RegistryContext, reading: ArchiveReading, holder: str) -> None:
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
                    sha, reading.leases.get(sha, ""), utc_text(now + CLAIM_TTL), utc_text(now)
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
    """Export ``ref`` (a version or a deployment version) from ``context`` and import it
    into ``target`` (a local registry or a server) through the target's trust, then (with
    ``alias``) move the alias there through the target's gate (for a deployment, its
    deployment policies)."""
    return promote_through(
        lambda path: export_version(
            context, coerce_ref(ref), path, signer, with_ancestors=with_ancestors
        ),
        target,
        alias=alias,
        reason=reason,
    )
