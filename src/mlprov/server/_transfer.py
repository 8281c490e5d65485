"""``POST /api/v1/imports``: an archive of ``mlprov export`` uploaded and imported here
(``mlprov promote --to https://...``, ``mlprov import`` in client mode; docs/transfer.md).

The body is the archive's bytes, streamed to a temporary file in bounded batches (at most
``ServerLimits.max_blob_bytes``, refused with 413 past it by the gatekeeper's
``IMPORTS_PATH`` rule), then
imported by the registry exactly as a local ``mlprov import``: read with the bounded
reader, verified with this registry's trust before anything is written. The caller
needs a role that may register (publisher or above), and its token must allow every
model the archive would write to: that is checked as each record is read, before any of
its bytes, and a refusal is audited (403). The temporary file is removed in every case.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import anyio.to_thread
from fastapi import APIRouter, Query, Request

from mlprov.access import Action, authorize
from mlprov.errors import PermissionDeniedError
from mlprov.server._service import service_of

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
