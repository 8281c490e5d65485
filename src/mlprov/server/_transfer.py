"""``POST /api/v1/imports``: an archive of ``mlprov export`` uploaded and imported here
(``mlprov promote --to https://...``, ``mlprov import`` in client mode; docs/transfer.md).

The body is the archive's bytes, streamed to a temporary file in bounded batches (at most
``ServerLimits.max_blob_bytes``, refused with 413 past it by the gatekeeper's
``IMPORTS_PATH`` rule), then
imported by the registry exactly as a local ``mlprov import``: read with the bounded
reader, verified with this registry's trust before anything is written. The caller
needs a role that may register (publisher or above), and its token must allow every
model the archive would write to: that is checked as each record is read, before any of
its bytes, and a refusal is audited (403). A deployment archive is checked the same way
for every member model (and lineage ancestor) and, right after its signed listing is read,
for the deployment itself. The temporary file is removed in every case.

``GET /api/v1/exports/closure`` and ``POST /api/v1/exports`` serve ``mlprov export`` and
``mlprov promote`` run against this server (ADR 0054): what the archive of a reference
holds (its versions, ancestors first, and this registry's identity), and the audit entry
of the archive the client then wrote from the records, evidence and blobs it read here
(with an ``Idempotency-Key``, audited once however often the client repeats the POST).
Both need read access to every model of the closure (and to the deployment); a refusal
is audited (403). The client fetches and checks the contents through the ordinary read
routes, each authorised again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request

from mlprov.access import Action, authorize
from mlprov.errors import PermissionDeniedError
from mlprov.refs import ModelRef
from mlprov.registry import ExportClosure, Registry
from mlprov.server._bodies import ExportRecordBody
from mlprov.server._service import Service, service_of

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["transfer"])
#: Bytes gathered from the request before they are written on a worker thread.
_BATCH = 1024 * 1024


def _write(out: BinaryIO, data: bytes) -> None:
    out.write(data)


@router.post("/imports", status_code=200, tags=["transfer"])
async def import_archive(
    request: Request,
    rename: Annotated[str | None, Query(alias="as", max_length=128)] = None,
) -> dict[str, Any]:
    """Import an uploaded archive (its bytes as the body); a no-op when it was imported
    before. Answers what ``mlprov import --json`` prints."""
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access_by_role, request, Action.REGISTER)
    principal = service.principal(request)

    def allowed(model: str) -> None:
        try:
            authorize(principal, Action.REGISTER, model)
        except PermissionDeniedError as e:
            service.refuse(request, principal, Action.REGISTER, model, e)
            raise

    fd, name = tempfile.mkstemp(prefix="mlprov-import-", suffix=".tar")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            batch = bytearray()
            async for chunk in request.stream():
                batch += chunk
                if len(batch) >= _BATCH:
                    await anyio.to_thread.run_sync(_write, out, bytes(batch))
                    batch.clear()
            if batch:
                await anyio.to_thread.run_sync(_write, out, bytes(batch))

        def run() -> dict[str, Any]:
            return registry.import_archive(path, rename=rename, authorize=allowed).to_json()

        return await anyio.to_thread.run_sync(run)
    finally:
        path.unlink(missing_ok=True)


def _closure_for_reader(
    service: Service, request: Request, ref: str, with_ancestors: bool
) -> tuple[Registry, ExportClosure]:
    """The closure of ``ref``, once the caller may read its root and every model in it
    (each refusal audited, 403)."""
    parsed = ModelRef.parse(ref)
    registry = service.access(request, Action.READ, parsed.name)
    closure = registry.export_closure(parsed, with_ancestors=with_ancestors)
    for model in sorted({ModelRef.parse(v).name for v in closure.versions} - {parsed.name}):
        service.access(request, Action.READ, model)
    return registry, closure


@router.get("/exports/closure", tags=["transfer"])
def export_closure(
    request: Request,
    ref: Annotated[str, Query(max_length=300)],
    with_ancestors: bool = False,
) -> dict[str, Any]:
    """What an archive of ``ref`` holds: its kind, the resolved root and its digest, the
    versions (ancestors first), those whose bytes it carries, and this registry's id."""
    _registry, closure = _closure_for_reader(service_of(request), request, ref, with_ancestors)
    return closure.to_json()


@router.post("/exports", status_code=201, tags=["transfer"])
def record_export(
    request: Request,
    body: ExportRecordBody,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> dict[str, Any]:
    """Audit an archive the caller wrote from what it read here (``version.export`` or
    ``deployment.export`` with its digest, as a local export is audited). With
    ``Idempotency-Key`` a retried request gets the first one's answer and audits nothing
    more; the same key with another body is 409."""
    registry, checked = _closure_for_reader(
        service_of(request), request, body.ref, body.with_ancestors
    )
    # The closure whose models were checked is the one audited (an alias in ``ref``
    # is resolved once).
    closure = registry.record_export(
        body.ref,
        body.archive_digest,
        with_ancestors=body.with_ancestors,
        idempotency_key=idempotency_key,
        closure=checked,
    )
    return {**closure.to_json(), "archive_digest": body.archive_digest}
