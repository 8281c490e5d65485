"""Read commands over HTTP whose answers are checked here, never taken on the server's word.

``verify REF``, ``evidence REF``, ``provenance|bom|card REF`` and ``lineage REF`` against
a ``mlprov serve``: the client fetches the version's record, files, signature and
evidence bundles (exact bytes), and runs the same checks the local registry runs
(:func:`mlprov.registry.signatures.verify_version_report`,
:func:`mlprov.registry.evidence.check_envelope`) on them here. Every bundle's bytes must
hash to the digest the server lists, every blob streamed for ``verify`` is hashed as it
arrives, and signatures are verified against the trust the caller gives: a server that
lies about a manifest, a blob or a document makes the check fail, never pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.config import Limits
from mlprov.errors import DigestMismatchError, MalformedDocumentError, NotFoundError
from mlprov.lineage import LineageEdgeView, LineageGraph, LineageNode
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.records import Evidence, ModelVersion
from mlprov.refs import ModelRef
from mlprov.registry.api import ProgressCallback
from mlprov.registry.types import EvidenceCheck, VerifiedDocument

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlprov.client._registry import HttpRegistry
    from mlprov.registry import RebuildCheck
    from mlprov.signing import Signer, Trust, VerificationReport

__all__ = [
    "graph_from_json",
    "rebuild_check",
    "stored_bundle",
    "verified_document",
    "verified_evidence",
    "verify_version",
]

_CHUNK = 1024 * 1024


def stored_bundle(client: HttpRegistry, record: ModelVersion, digest: str) -> bytes:
    """The exact bytes of one stored bundle, which must hash to the digest listed (the
    server is not trusted for them)."""
    content = client.evidence_content(record.ref, digest)
    if str(Digest.of_bytes(content)) != digest:
        raise DigestMismatchError(
            f"{record.ref}: the server sent evidence {digest[:19]}... whose bytes have "
            "another digest"
        )
    return content


def _blob_chunks(client: HttpRegistry, blob: str) -> Iterator[bytes]:
    # As a pull reads a blob (Transport.download: http.client's readinto, not httpx's
    # 64 KiB pieces); identity, so the bytes hashed are the blob's, never re-encoded.
    with client.transport.download(
        f"/api/v1/blobs/{blob}", headers={"Accept-Encoding": "identity"}
    ) as read_into:
        buffer = memoryview(bytearray(_CHUNK))
        while filled := read_into(buffer):
            yield bytes(buffer[:filled])


def verify_version(
    client: HttpRegistry,
    ref: ModelRef | str,
    trust: Trust,
    *,
    path: Path | None = None,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerificationReport:
    """``verify REF --key ...`` against a server, checked here: the stored signature
    against ``trust``, the server's manifest against the signed one, every stored file
    (streamed and hashed) or the local copy at ``path``, and the version's own
    provenance, ML-BOM and card against the same trust."""
    from mlprov.registry.signatures import verify_version_report  # noqa: PLC0415

    record = client.get_version(ref)
    signatures = [e for e in record.evidence if e.kind == "signature"]
    if not signatures:
        raise NotFoundError(f"{record.ref} has no stored signature")
    bundle = stored_bundle(client, record, signatures[-1].digest)
    files = client.version_files(record.ref)
    blobs = {f.path: f.blob for f in files}

    def registered() -> Manifest:
        return Manifest.of(
            record.hash_algorithm,
            (FileEntry(f.path, Digest.parse(f.digest), f.size) for f in files),
        )

    return verify_version_report(
        record,
        bundle,
        registered,
        trust,
        stored_chunks=lambda entry_path: _blob_chunks(client, blobs[entry_path]),
        evidence_bytes=lambda digest: stored_bundle(client, record, digest),
        path=path,
        limits=Limits(),
        now=now,
        progress=progress,
    )


def rebuild_check(
    client: HttpRegistry,
    ref: ModelRef | str,
    path: Path,
    trust: Trust,
    *,
    signer: Signer | None = None,
    ignore_paths: Sequence[str | Path] = (),
    allow_symlinks: bool = False,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
) -> RebuildCheck:
    """``rebuild-check REF PATH`` against a server: PATH is compared with the manifest
    the version's stored signature signs, verified here against ``trust`` (the server's
    file list is not used), and the server's recorded digest must be that manifest's.
    With ``signer`` the result is signed here and stored as an attestation
    (``POST .../attestations``), as a local ``--attest`` stores it."""
    from dataclasses import replace  # noqa: PLC0415

    from mlprov import signing  # noqa: PLC0415
    from mlprov.errors import InvalidInputError, VerificationError  # noqa: PLC0415
    from mlprov.registry.rebuild import REBUILD_PREDICATE_TYPE, compare_rebuild  # noqa: PLC0415

    record = client.get_version(ref)  # an unknown reference fails before any hashing
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise InvalidInputError(f"{path}: no such file or folder to compare with {record.ref}")
    signatures = [e for e in record.evidence if e.kind == "signature"]
    if not signatures:
        raise NotFoundError(
            f"{record.ref} has no stored signature: over HTTP nothing proves its manifest"
        )
    report = signing.verify_bundle_report(
        stored_bundle(client, record, signatures[-1].digest), trust, limits=Limits(), now=now
    )
    if not report.passed or report.signature is None:
        why = report.error.message if report.error is not None else "it does not verify"
        raise VerificationError(
            f"{record.ref}: its stored signature does not verify against the given trust, "
            f"so its manifest is unproven: {why}"
        )
    signed = report.signature.manifest
    if str(signed.digest) != record.digest:
        raise VerificationError(
            f"{record.ref}: the server records the digest {record.digest}, but its "
            f"signature signs {signed.digest}"
        )
    result = compare_rebuild(
        record.ref,
        record.digest,
        signed,
        path,
        ignore_paths=ignore_paths,
        allow_symlinks=allow_symlinks,
        progress=progress,
    )
    if signer is None:
        return result
    stored = client.attest(record.ref, REBUILD_PREDICATE_TYPE, result.predicate(), signer)
    return replace(result, attestation=stored)


def _checked(
    client: HttpRegistry,
    record: ModelVersion,
    items: list[Evidence],
    trust: Trust | None,
    now: datetime | None,
) -> list[VerifiedDocument]:
    from mlprov.registry.evidence import check_envelope  # noqa: PLC0415

    file_hexes: set[str] = set()
    if any(item.kind == "attestation" for item in items):
        file_hexes = {f.blob for f in client.version_files(record.ref)}
    return [
        check_envelope(
            record,
            item,
            stored_bundle(client, record, item.digest),
            file_hexes,
            trust,
            limits=Limits(),
            now=now,
        )
        for item in items
    ]


def verified_evidence(
    client: HttpRegistry,
    ref: ModelRef | str,
    trust: Trust | None = None,
    *,
    now: datetime | None = None,
) -> list[EvidenceCheck]:
    """Every signature and attestation of a version, each checked here as locally."""
    record = client.get_version(ref)
    return [d.check for d in _checked(client, record, list(record.evidence), trust, now)]


def verified_document(
    client: HttpRegistry,
    ref: ModelRef | str,
    kind: str,
    trust: Trust | None = None,
    *,
    now: datetime | None = None,
) -> VerifiedDocument:
    """The newest stored evidence of a kind, checked here before it is shown."""
    from mlprov.registry.evidence import DOCUMENT_KINDS  # noqa: PLC0415

    if kind not in DOCUMENT_KINDS:
        raise MalformedDocumentError(
            f"unknown evidence kind {kind!r}: use one of {', '.join(DOCUMENT_KINDS)}"
        )
    record = client.get_version(ref)
    found = [e for e in record.evidence if e.kind == kind]
    if not found:
        raise NotFoundError(f"{record.ref} has no {DOCUMENT_KINDS[kind]}")
    return _checked(client, record, [found[-1]], trust, now)[0]


def graph_from_json(data: Any) -> LineageGraph:
    """A lineage graph as ``GET .../lineage`` sends it (``LineageGraph.to_json``)."""
    try:
        nodes = {
            str(n["key"]): LineageNode(
                key=str(n["key"]),
                digest=str(n["digest"]),
                registered=bool(n["registered"]),
                datasets=tuple(
                    (str(d["name"]), str(d["uri"]), str(d["digest"])) for d in n["datasets"]
                ),
                code_repo=n.get("code_repo"),
                code_commit=n.get("code_commit"),
            )
            for n in data["nodes"]
        }
        edges = [
            LineageEdgeView(str(e["child"]), str(e["relation"]), str(e["parent"]))
            for e in data["edges"]
        ]
        return LineageGraph(
            root=str(data["root"]),
            direction=str(data["direction"]),
            nodes=nodes,
            edges=edges,
            truncated=bool(data["truncated"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MalformedDocumentError(f"the server's lineage graph does not parse: {e}") from None
