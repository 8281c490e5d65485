"""``mlprov export`` and ``mlprov promote`` from a server (docs/transfer.md, "From a
server"; ADR 0054).

The archive is built here, from what the server sends, by the same writer as a local
export (:mod:`mlprov.registry.archive_writing`), and its listing is signed here with the
caller's key. The server is asked what the archive holds (``GET
/api/v1/exports/closure``), then each version's record, stored files and evidence, the
deployment release and its bundle are read through the ordinary read routes, and the
blobs are streamed into the tar. The importing registry verifies everything with its own
trust, so the server is not trusted; still nothing is written whose bytes do not match
their digests: every piece of evidence must hash to its digest, the bundle to the
release's, each blob to its SHA-256 key and size as it streams (a mismatch aborts the
export and leaves no file). Once every member is written, and before the archive is
renamed into place, the server audits the export with its digest (``POST
/api/v1/exports``, with an ``Idempotency-Key`` made for this export, so a POST whose
answer was lost is repeated and still audited once), so both registries' audit logs
carry the same digest.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.errors import DigestMismatchError, MalformedDocumentError, StorageError
from mlprov.manifest import Digest, new_hasher
from mlprov.refs import ModelRef
from mlprov.registry.api import ProgressCallback
from mlprov.registry.archive_writing import (
    ArchivedRelease,
    ArchivedVersion,
    ExportClosure,
    ExportedArchive,
    ExportPlan,
    check_destination,
    write_export,
)

if TYPE_CHECKING:
    from mlprov.client._registry import HttpRegistry
    from mlprov.signing import Signer

__all__ = ["export_from_server"]


def _checked(content: bytes, digest: str, what: str) -> bytes:
    expected = Digest.parse(digest)
    hasher = new_hasher(expected.algorithm)
    hasher.update(content)
    if hasher.hexdigest() != expected.hex:
        raise DigestMismatchError(f"{what}: the server's bytes do not hash to {digest}")
    return content


def _version(registry: HttpRegistry, ref: str, with_bytes: bool) -> ArchivedVersion:
    record = registry.get_version(ref)
    if f"{record.name}/{record.version}" != ref:
        raise MalformedDocumentError(
            f"the server answered {ref} with {record.name}/{record.version}"
        )
    evidence = {
        e.digest: _checked(registry.evidence_content(ref, e.digest), e.digest, f"{ref} evidence")
        for e in record.evidence
    }
    return ArchivedVersion(record, registry.version_files(ref), evidence, with_bytes)


#: Bytes read from a blob's body at a time.
_PIECE = 4 * 1024 * 1024


def _blob_chunks(registry: HttpRegistry, progress: ProgressCallback | None) -> Any:
    def chunks(sha256: str, size: int) -> Iterator[bytes]:
        """The blob's bytes as they arrive, hashed; the last check raises before the
        writer completes the member, so a wrong blob never ends up in an archive."""
        hasher = hashlib.sha256()
        received = 0
        try:
            # Read straight from the socket where httpx would connect directly (as pull
            # does: mlprov.client._download), into one buffer; each piece is copied out
            # once for the tar writer.
            with registry.transport.download(
                f"/api/v1/blobs/{sha256}", headers={"Accept-Encoding": "identity"}
            ) as read_into:
                buffer = memoryview(bytearray(_PIECE))
                while got := read_into(buffer):
                    piece = bytes(buffer[:got])
                    received += len(piece)
                    if received > size:
                        raise DigestMismatchError(
                            f"blob {sha256[:16]}...: the server sent more than its {size} bytes"
                        )
                    hasher.update(piece)
                    if progress is not None:
                        progress(len(piece))
                    yield piece
        except StorageError as e:
            # The server ends a blob early when its own store finds the bytes corrupt
            # (docs/server.md, blobs); a dropped connection looks the same from here.
            raise StorageError(
                f"blob {sha256[:16]}...: the server stopped after {received} of {size} bytes "
                f"(a blob corrupt in its store, or a dropped connection): {e.message}"
            ) from None
        if received != size:
            raise StorageError(
                f"blob {sha256[:16]}...: the server sent {received} of its {size} bytes "
                "(a blob corrupt in its store is cut short)"
            )
        if hasher.hexdigest() != sha256:
            raise DigestMismatchError(
                f"blob {sha256[:16]}...: the server's bytes hash to "
                f"{hasher.hexdigest()[:16]}..., not to the blob's key"
            )

    return chunks


def export_from_server(
    registry: HttpRegistry,
    ref: ModelRef | str,
    to: Path,
    signer: Signer,
    *,
    with_ancestors: bool = False,
    progress: ProgressCallback | None = None,
) -> ExportedArchive:
    """Write the archive of ``ref`` (a version or a deployment version, resolved once by
    the server) to ``to`` from what the server sends (module docstring)."""
    to = check_destination(to)
    closure = ExportClosure.from_json(
        registry.transport.json(
            "GET",
            "/api/v1/exports/closure",
            params={"ref": str(ref), "with_ancestors": "true" if with_ancestors else "false"},
        ),
        "the server's export closure",
    )
    carried = set(closure.with_bytes)
    versions = [_version(registry, v, v in carried) for v in closure.versions]
    release = None
    if closure.kind == "deployment":
        version = registry.deployment_version(closure.root)  # its bundle's bytes checked
        description = registry.get_deployment(version.deployment).description
        release = ArchivedRelease(version, description)
    plan = ExportPlan(versions, release, with_ancestors, closure.origin_id, closure.origin_uri)
    if plan.root != closure.root or plan.root_digest != closure.root_digest:
        raise DigestMismatchError(
            f"{closure.root}: the server's closure names {closure.root_digest}, "
            f"its records {plan.root}, {plan.root_digest}"
        )

    # One key for this export, so the transport may repeat a POST whose answer was lost:
    # the server answers a repeat as it answered the first and audits the export once.
    key = f"mlprov-{uuid.uuid4()}"

    def record(archive_digest: str) -> None:
        registry.transport.json(
            "POST",
            "/api/v1/exports",
            json={
                "ref": closure.root,
                "archive_digest": archive_digest,
                "with_ancestors": with_ancestors,
            },
            retry=True,
            headers={"Idempotency-Key": key},
        )

    # The registry's one time format (registry._context.utc_text), which a client
    # cannot import without the stores.
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return write_export(
        plan,
        to,
        signer,
        now=now,
        blob_chunks=_blob_chunks(registry, progress),
        record=record,
    )
