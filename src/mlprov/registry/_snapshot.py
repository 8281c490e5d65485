"""Loading what the verification engine judges: a version, its evidence as the exact
stored bytes, and its lineage ancestors, in one read transaction."""

from __future__ import annotations

from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.refs import ModelRef
from mlprov.store import StoreTransaction
from mlprov.store.versions import VersionKey
from mlprov.verification import StoredEvidence, VersionSnapshot

__all__ = ["load_snapshot"]


def load_snapshot(tx: StoreTransaction, key: VersionKey, depth: int) -> VersionSnapshot:
    """The snapshot of ``key``, its registered ancestors loaded ``depth`` levels deep
    (an ancestor beyond that maps to None). Each version is loaded once per call."""
    loaded: dict[int, VersionSnapshot] = {}

    def load(current: VersionKey, remaining: int) -> VersionSnapshot:
        if current.id in loaded:
            return loaded[current.id]
        record = tx.versions.record(current)
        files = tx.versions.files(current)
        manifest = Manifest.of(
            current.hash_algorithm,
            (FileEntry(f.path, Digest.parse(f.digest), f.size) for f in files),
        )
        evidence = []
        contents = tx.evidence.contents(current.id)
        for item in record.evidence:
            content = contents.get(item.digest)
            if content is not None:
                evidence.append(StoredEvidence(item, content))
        ancestors: dict[str, VersionSnapshot | None] = {}
        for edge in record.lineage:
            if not edge.registered:
                continue
            if remaining <= 0:
                ancestors[edge.target] = None
                continue
            target = ModelRef.parse(edge.target)
            model = tx.models.find(target.name)
            target_key = tx.versions.find(model, target.version or 0) if model is not None else None
            ancestors[edge.target] = (
                load(target_key, remaining - 1) if target_key is not None else None
            )
        snapshot = VersionSnapshot(record, manifest, tuple(evidence), ancestors)
        loaded[current.id] = snapshot
        return snapshot

    return load(key, depth)
