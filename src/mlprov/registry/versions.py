"""Model versions: registration (prepare, store the bytes, commit) and reading.

A registration runs in three steps, so a failure at any one changes nothing that a
reader can see (DESIGN.md, "Storage"; ARCHITECTURE.md, rule 4):

1. :func:`prepare_version` validates every input and lists the files; nothing is written;
2. :func:`store_files` hashes the files and stores their bytes, content-addressed, in
   one read pass per file (bytes already stored are neither copied nor synced again). A
   blob is never deleted here, even when a later step fails: another registration may
   be reusing it at this moment. Blobs no version references are left for ``gc``, and
   every blob stored or found stored is leased first so gc leaves it alone
   (:mod:`mlprov.registry.gc`, ADR 0045);
3. :func:`commit_version` reads the next version number, builds the version's record,
   makes and signs its evidence (outside any transaction), then commits the rows with a
   compare-and-set on that number. A registration that lost the number to another
   redoes the outside work with the next one, a bounded number of times.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mlprov.errors import ConflictError, InvalidInputError, VerificationError
from mlprov.hashing import (
    CHUNK_SIZE,
    ModelFile,
    hashing_plan,
    list_model_files,
    read_whole_file,
)
from mlprov.manifest import Digest, FileEntry, Manifest, new_hasher
from mlprov.records import DatasetRef, FileFormat, LineageEdge, ModelVersion, Stage
from mlprov.refs import LATEST, ModelRef, validate_model_name
from mlprov.registry._context import (
    LostRace,
    RegistryContext,
    coerce_ref,
    require_model,
    resolve,
    utc_now,
)
from mlprov.registry._unit import Mutation, grouped_mutation, mutation
from mlprov.registry.evidence import add_evidence_in
from mlprov.registry.formats import detect_formats
from mlprov.registry.gc import check_leases, check_unremoved, lease_blob, new_holder
from mlprov.registry.inputs import (
    VersionInput,
    check_tag,
    check_tag_changes,
    json_document,
    normalised,
)
from mlprov.registry.lineage import resolve_edge, stored_edge
from mlprov.registry.models import create_model_in
from mlprov.registry.types import NewEvidence, PreparedVersion, StoredFiles
from mlprov.store.versions import StoredFile, VersionKey

__all__ = [
    "ProgressCallback",
    "commit_version",
    "describe_version",
    "get_version",
    "list_versions",
    "manifest",
    "prepare_stored_version",
    "prepare_version",
    "register",
    "store_files",
    "tag_version",
    "version_files",
]

ProgressCallback = Callable[[int], None]
EvidenceMaker = Callable[[ModelVersion], Sequence[NewEvidence]]
#: Runs inside a registration's write transaction, after its rows are written.
CommitHook = Callable[[Mutation, VersionKey], None]

#: Signed registrations racing for one model's next number each redo their signing on a
#: lost race; with jittered back-off 16 racers on 2 cores settle well within this.
MAX_REGISTRATION_ATTEMPTS = 32


def prepare_version(
    context: RegistryContext,
    path: Path,
    name: str,
    info: VersionInput | None = None,
    *,
    hash_algorithm: str = "sha256",
    ignore_paths: Sequence[str | Path] = (),
    allow_symlinks: bool = False,
    leave_out_signature: bool = True,
) -> PreparedVersion:
    """Step 1: validate everything and list the files. Nothing is written.

    ``model.sig`` in the folder is left out unless ``leave_out_signature`` is False
    (``sign --name`` leaves out the signature file it writes, wherever that is)."""
    checked = _checked_input(context, name, info, hash_algorithm)
    from mlprov import signing  # noqa: PLC0415 - cryptography only when registering

    # Ignore paths are relative to the model root (OMS v1.0 section 6.2.1), and a detached
    # signature in the folder (model.sig) is not part of the model it signs, unless the
    # caller signs with its signature elsewhere and says which files to leave out.
    ignores = signing.relative_ignore_paths(
        Path(path),
        ignore_paths,
        signing.default_signature_path(Path(path)) if leave_out_signature else None,
    )
    files = list_model_files(Path(path), ignore_paths=ignores, allow_symlinks=allow_symlinks)
    if not files:
        raise InvalidInputError(f"{path}: the model folder has no files to register")
    if len(files) > context.limits.max_manifest_files:
        raise InvalidInputError(
            f"{path}: {len(files)} files exceed the limit of {context.limits.max_manifest_files}"
        )
    return PreparedVersion(
        name=name,
        path=Path(path),
        files=files,
        hash_algorithm=hash_algorithm,
        params=checked.params,
        metrics=checked.metrics,
        info=checked.info,
        datasets=checked.datasets,
        lineage=checked.lineage,
    )


def prepare_stored_version(
    context: RegistryContext,
    name: str,
    info: VersionInput | None,
    artifact_name: str,
    file_count: int,
) -> PreparedVersion:
    """Step 1 for a version whose bytes are already stored (uploaded over HTTP): the same
    checks of its inputs as :func:`prepare_version`, with no local files. Its ``formats``
    are the caller's to add, detected from the stored blobs as they are read back (one
    per file, path order), once they are leased."""
    checked = _checked_input(context, name, info, "sha256")
    if file_count < 1:
        raise InvalidInputError(f"{name}: a version needs at least one file")
    if file_count > context.limits.max_manifest_files:
        raise InvalidInputError(
            f"{file_count} files exceed the limit of {context.limits.max_manifest_files}"
        )
    return PreparedVersion(
        name=name,
        path=Path(artifact_name),
        files=[],
        hash_algorithm="sha256",
        params=checked.params,
        metrics=checked.metrics,
        info=checked.info,
        datasets=checked.datasets,
        lineage=checked.lineage,
        artifact_name=artifact_name,
    )


@dataclass(frozen=True)
class _CheckedInput:
    params: str
    metrics: str
    info: VersionInput
    datasets: list[DatasetRef]
    lineage: list[LineageEdge]


def _checked_input(
    context: RegistryContext, name: str, info: VersionInput | None, hash_algorithm: str
) -> _CheckedInput:
    """Validate what is recorded with a version (nothing is written)."""
    validate_model_name(name)
    info = info or VersionInput()
    limits = context.limits
    if hash_algorithm not in limits.hash_algorithms:
        raise InvalidInputError(
            f"unsupported hash algorithm {hash_algorithm!r}: use one of "
            f"{', '.join(limits.hash_algorithms)}"
        )
    info = normalised(info)
    params = json_document(info.params, "params")
    metrics = json_document(info.metrics, "metrics")
    for key, value in info.tags.items():
        check_tag(key, value)
    datasets = [DatasetRef(name=d.name, uri=d.uri, digest=d.digest) for d in info.datasets]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInputError(f"dataset {twice[0]!r} is named twice; names must be unique")
    lineage: list[LineageEdge] = []
    if info.lineage or name not in context.known_models:
        with context.metadata.read() as tx:
            # One namespace (ADR 0050), refused before any byte is hashed or stored; the
            # model's insert checks again inside its transaction.
            found = tx.models.find(name) is not None
            if not found and tx.deployments.find(name) is not None:
                raise ConflictError(f"{name!r} is a deployment; a model cannot have its name")
            lineage = [resolve_edge(tx, edge) for edge in info.lineage]
        if found:
            _know_model(context, name)
    # Otherwise the model is known to exist (so no deployment has its name) and there is
    # no lineage to resolve: no read transaction before the write (ADR 0049, amendment).
    return _CheckedInput(params, metrics, info, datasets, lineage)


#: Most model names one process remembers as stored (then it starts over).
_KNOWN_MODELS_MOST = 100_000


def _know_model(context: RegistryContext, name: str) -> None:
    if len(context.known_models) >= _KNOWN_MODELS_MOST:
        context.known_models.clear()
    context.known_models.add(name)


def store_files(
    context: RegistryContext, prepared: PreparedVersion, *, progress: ProgressCallback | None = None
) -> StoredFiles:
    """Step 2: hash the files and store their bytes (content-addressed, never deleted
    here; see the module docstring). ``progress`` receives byte counts adding up to the
    files' total size.

    One read pass per file computes the manifest digest and the blob's SHA-256 (the same
    computation when the manifest is sha256) while it writes the blob's temporary file;
    files are stored in parallel, largest first. A file the model's latest version holds
    at the same path with the same size is probably unchanged: it is hashed first, without
    writing, and when its digest is the recorded one (so its bytes are that blob's) and
    the blob is stored, nothing is written or synced at all. Otherwise it is stored as a
    new file, read a second time (from the page cache), and both reads must give the same
    digest.
    """
    algorithm = prepared.hash_algorithm
    previous = _latest_files(context, prepared.name, algorithm)
    order = sorted(prepared.files, key=lambda f: f.size, reverse=True)
    plan = hashing_plan(order, algorithm)
    local = threading.local()
    # Each blob is leased once its digest is known, before the store looks whether it is
    # stored already (a blob found stored could otherwise be collected before the commit).
    # Blobs of the latest version are referenced by it, and gc never collects those.
    holder = new_holder("register")
    leases: dict[str, str] = {}
    leases_lock = threading.Lock()

    def hold(digest: str) -> None:
        with leases_lock:
            if digest in leases:
                return
        token = lease_blob(context, digest, holder)
        with leases_lock:
            leases[digest] = token

    def store(item: ModelFile) -> tuple[FileEntry, str]:
        buffer: bytearray | None = getattr(local, "buffer", None)
        if buffer is None:
            buffer = local.buffer = bytearray(CHUNK_SIZE)
        known = previous.get(item.name)
        if known is None or known.size != item.size or not context.artifacts.exists(known.blob):
            return _store_new(context, item, algorithm, plan.multithreaded, progress, hold)
        hasher = new_hasher(algorithm, multithreaded=plan.multithreaded)
        size = read_whole_file(
            item.path,
            [hasher.update],
            display=item.name,
            buffer=buffer,
            expected_size=item.size,
            progress=progress,
        )
        digest = Digest(algorithm, hasher.hexdigest())
        if str(digest) == known.digest:
            # Same digest, so the same bytes as when ``known.blob`` was stored from them.
            return FileEntry(item.name, digest, size), known.blob
        entry, blob = _store_new(context, item, algorithm, plan.multithreaded, None, hold)
        if entry.digest != digest:
            raise VerificationError(
                f"{item.name}: changed while being registered "
                f"(hashed {digest}, then stored {entry.digest})"
            )
        return entry, blob

    if plan.workers == 1 or len(order) <= 1:
        results = [store(item) for item in order]
    else:
        with ThreadPoolExecutor(
            max_workers=plan.workers, thread_name_prefix="mlprov-store"
        ) as pool:
            results = list(pool.map(store, order))
    manifest = Manifest.of(algorithm, (entry for entry, _ in results))
    return StoredFiles(
        manifest=manifest,
        blobs={entry.path: blob for entry, blob in results},
        leases=dict(leases),
    )


def _latest_files(context: RegistryContext, name: str, algorithm: str) -> dict[str, StoredFile]:
    """The files of the model's latest version, when hashed with ``algorithm``: a
    prediction of which blobs are already stored (a digest still decides)."""
    with context.metadata.read() as tx:
        model = tx.models.find(name)
        latest = tx.versions.latest(model) if model is not None else None
        if latest is None or latest.hash_algorithm != algorithm:
            return {}
        return {f.path: f for f in tx.versions.files(latest)}


def _store_new(
    context: RegistryContext,
    item: ModelFile,
    algorithm: str,
    multithreaded: bool,
    progress: ProgressCallback | None,
    hold: Callable[[str], None],
) -> tuple[FileEntry, str]:
    """Store one file in one read pass that also computes its manifest digest."""
    hasher = None if algorithm == "sha256" else new_hasher(algorithm, multithreaded=multithreaded)
    blob = context.artifacts.put_file(
        item.path,
        name=item.name,
        progress=progress,
        observe=hasher.update if hasher is not None else None,
        hold=hold,
    )
    if blob.size != item.size:
        raise VerificationError(
            f"{item.name}: changed while being registered "
            f"(listed with {item.size} bytes, stored {blob.size})"
        )
    hex_digest = blob.sha256 if hasher is None else hasher.hexdigest()
    return FileEntry(item.name, Digest(algorithm, hex_digest), blob.size), blob.sha256


def _draft(
    prepared: PreparedVersion,
    stored: StoredFiles,
    number: int,
    at: str,
    actor: str,
    formats: list[FileFormat],
) -> ModelVersion:
    """The record the version will have once committed (what its documents describe)."""
    manifest = stored.manifest
    info = prepared.info
    return ModelVersion(
        name=prepared.name,
        version=number,
        digest=str(manifest.digest),
        hash_algorithm=manifest.algorithm,
        size=manifest.total_size,
        file_count=len(manifest),
        single_file=manifest.is_single_file,
        artifact_name=prepared.artifact_name or prepared.path.resolve().name or prepared.name,
        stage=Stage.NONE,
        params=json.loads(prepared.params),
        metrics=json.loads(prepared.metrics),
        tags=dict(info.tags),
        description=info.description,
        datasets=list(prepared.datasets),
        lineage=list(prepared.lineage),
        source_uri=info.source_uri,
        run_id=info.run_id,
        code_repo=info.code_repo,
        code_commit=info.code_commit,
        code_dirty=info.code_dirty,
        builder_id=info.builder_id,
        started_at=info.started_at,
        finished_at=info.finished_at,
        environment=sorted(set(info.environment)) if info.environment is not None else None,
        card=json.loads(json.dumps(info.card, sort_keys=True)) if info.card is not None else None,
        formats=formats,
        created_at=at,
        created_by=actor,
    )


def commit_version(
    context: RegistryContext,
    prepared: PreparedVersion,
    stored: StoredFiles,
    *,
    evidence_for: EvidenceMaker | None = None,
    within: CommitHook | None = None,
) -> ModelVersion:
    """Step 3: record the version, its files, lineage, evidence and audit entries.

    ``evidence_for(record)`` makes the evidence to store with it (signatures, signed
    documents) from the record it will have; it runs before the write transaction and
    again if the version number was lost to a concurrent registration. Without it the
    number is simply the next free one when the transaction commits. ``within(unit, key)``
    runs inside the write transaction once the version's rows are written (to record
    more with it, or raise to roll it all back); it must not change the version's own
    record, which is returned as written (read back only when evidence was stored with
    it).
    """
    manifest = stored.manifest
    files = [StoredFile(e.path, e.size or 0, str(e.digest), stored.blobs[e.path]) for e in manifest]
    # Read once, outside the transaction: part of the record the documents describe.
    formats = (
        prepared.formats
        if prepared.formats is not None
        else detect_formats(context, prepared, stored)
    )
    for attempt in range(MAX_REGISTRATION_ATTEMPTS):
        at, actor = utc_now(), context.actor
        number, draft, evidence = 0, None, []
        if evidence_for is not None:
            # Signed documents name the number: guess it before the transaction.
            with context.metadata.read() as tx:
                model = tx.models.find(prepared.name)
            number = model.next_version if model is not None else 1
            draft = _draft(prepared, stored, number, at, actor, formats)
            evidence = list(evidence_for(draft))

        def write(
            unit: Mutation,
            number: int = number,
            draft: ModelVersion | None = draft,
            made: Sequence[NewEvidence] = evidence,
        ) -> ModelVersion:
            # The leases (or the watch) are checked with the transaction's first statement (on
            # PostgreSQL in its round trip, under the writer lock it takes).
            check_leases(unit, prepared.name, stored.leases)
            if stored.watch is not None:
                check_unremoved(unit, prepared.name, stored.watch)
            # Found and claimed in one statement (None: no model yet, or, with a number
            # that signed documents name, a concurrent registration took it).
            taken = unit.tx.models.take_number(prepared.name, number if draft else None)
            if taken is None:
                if unit.tx.models.find(prepared.name) is not None:
                    raise LostRace
                create_model_in(unit, prepared.name)
                taken = unit.tx.models.take_number(prepared.name, number if draft else None)
                unit.expect(taken is not None)
            assert taken is not None  # for mypy: expect() raised otherwise
            current, number = taken.model, taken.number
            if draft is None:
                # Nothing signed names the number: the one that was free just now
                # (no read transaction before this one to guess it).
                draft = _draft(prepared, stored, number, unit.at, unit.actor, formats)
            edges = [stored_edge(unit.tx, edge) for edge in prepared.lineage]
            key = unit.tx.versions.insert(current, draft, files, edges, version_id=taken.version_id)
            for item in made:
                add_evidence_in(unit, key, item)
            if within is not None:
                within(unit, key)
            unit.audit(
                "version.register",
                key.ref,
                {
                    "digest": str(manifest.digest),
                    "files": len(manifest),
                    "size": manifest.total_size,
                    "lineage": [
                        {"relation": e.relation, "target": e.target, "digest": e.digest}
                        for e in prepared.lineage
                    ],
                },
            )
            return draft

        try:
            # Concurrent registrations of this process commit together, each its own
            # rows and audit entry in its own savepoint (mlprov.store._commit_group).
            written = grouped_mutation(context, write, at=at, actor=actor)
        except LostRace:
            # Another registration took the number; let the racers spread out.
            time.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # noqa: S311 - jitter
            continue
        _know_model(context, prepared.name)
        if evidence:
            # Evidence rows get their ids and timestamps in the write: read them back.
            return get_version(context, ModelRef(prepared.name, version=written.version))
        # Nothing else can be attached to a version in the transaction that creates it
        # (no alias points at it, its stage is none), so the record the write stored is
        # the draft itself; a test compares it with the record read back.
        return written
    raise ConflictError(
        f"{prepared.name}: lost the next version number {MAX_REGISTRATION_ATTEMPTS} times; retry"
    )


def register(
    context: RegistryContext,
    path: Path,
    name: str,
    info: VersionInput | None = None,
    *,
    hash_algorithm: str = "sha256",
    ignore_paths: Sequence[str | Path] = (),
    allow_symlinks: bool = False,
    progress: ProgressCallback | None = None,
) -> ModelVersion:
    """Register a file or folder as the model's next version (the model is created if it
    does not exist yet). Either every row is recorded or none is."""
    prepared = prepare_version(
        context,
        path,
        name,
        info,
        hash_algorithm=hash_algorithm,
        ignore_paths=ignore_paths,
        allow_symlinks=allow_symlinks,
    )
    return commit_version(context, prepared, store_files(context, prepared, progress=progress))


def get_version(context: RegistryContext, ref: ModelRef | str) -> ModelVersion:
    """Resolve a reference (number or alias) to its version."""
    ref = coerce_ref(ref)
    # One statement (no transaction around it) for the common case; only a miss takes
    # the step-by-step resolve, which names the missing part (model, version or alias)
    # in its error, each step seeing what was committed when it ran.
    with context.metadata.read_statements() as tx:
        found = tx.versions.resolve_record(
            ref.name, number=ref.version, alias=ref.alias if ref.alias != LATEST else None
        )
        return found if found is not None else tx.versions.record(resolve(tx, ref))


def list_versions(context: RegistryContext, name: str) -> list[ModelVersion]:
    validate_model_name(name)
    with context.metadata.read() as tx:
        model = require_model(tx, name)
        return [tx.versions.record(key) for key in tx.versions.of_model(model)]


def version_files(context: RegistryContext, ref: ModelRef | str) -> list[StoredFile]:
    """The version's manifest entries, each with the blob holding its bytes."""
    with context.metadata.read() as tx:
        return tx.versions.files(resolve(tx, coerce_ref(ref)))


def manifest(context: RegistryContext, ref: ModelRef | str) -> Manifest:
    """The version's manifest as recorded (paths, sizes, digests)."""
    with context.metadata.read() as tx:
        key = resolve(tx, coerce_ref(ref))
        files = tx.versions.files(key)
    return Manifest.of(
        key.hash_algorithm, (FileEntry(f.path, Digest.parse(f.digest), f.size) for f in files)
    )


def tag_version(
    context: RegistryContext,
    ref: ModelRef | str,
    changes: Mapping[str, str | None],
    *,
    reason: str = "",
) -> ModelVersion:
    """Tags and the description are the only things that change on a version; audited."""
    parsed = coerce_ref(ref)
    check_tag_changes(changes)
    with mutation(context) as unit:
        key = resolve(unit.tx, parsed)
        for tag, value in sorted(changes.items()):
            unit.tx.versions.set_tag(key.id, tag, value)
        unit.audit("version.tag", key.ref, {"tags": dict(changes)}, reason)
    return get_version(context, ModelRef(key.name, version=key.number))


def describe_version(
    context: RegistryContext, ref: ModelRef | str, description: str
) -> ModelVersion:
    with mutation(context) as unit:
        key = resolve(unit.tx, coerce_ref(ref))
        unit.tx.versions.set_description(key, description)
        unit.audit("version.describe", key.ref, {"description": description})
    return get_version(context, ModelRef(key.name, version=key.number))
