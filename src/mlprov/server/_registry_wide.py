"""Routes that are not one model's: blobs, policy, audit, revocations, resolve, status,
and the probes (``/healthz``, ``/readyz``, ``/metrics``).

Blobs stream in bounded chunks both ways and are never held whole in memory. An upload
is written in one pass into the artefact store's temporary file while it is hashed; a
digest other than the one in the URL is refused before that file is made durable or
named, and the file is removed, so nothing is kept. A download streams through the
artefact store, which checks the blob's digest as it reads; the last piece is sent only
after that check passed, so a corrupt blob ends the response early (the client sees a
short body) instead of completing it. ``Range`` (one range) answers 206, an
unsatisfiable one 416.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from mlprov.access import Action, allows
from mlprov.errors import MlprovError, NotFoundError
from mlprov.refs import ModelRef
from mlprov.registry.blobs import check_blob_key
from mlprov.server._bodies import PolicyApplyBody, PolicyCheckBody, decode_base64
from mlprov.server._errors import error_body, error_response
from mlprov.server._models import BUNDLE_BODY, raw_body
from mlprov.server._service import service_of

__all__ = ["probes", "router"]

router = APIRouter(prefix="/api/v1", tags=["registry"])
probes = APIRouter(tags=["probes"])

#: Bytes gathered from the request before they are written and hashed on a worker thread.
_UPLOAD_BATCH = 1024 * 1024
_RANGE = re.compile(r"\Abytes=([0-9]*)-([0-9]*)\Z")
OCTETS = "application/octet-stream"


# -- blobs -----------------------------------------------------------------------------


async def _next_batch(body: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    """About ``_UPLOAD_BATCH`` bytes of a request body, and whether the body ended."""
    batch = bytearray()
    async for chunk in body:
        batch += chunk
        if len(batch) >= _UPLOAD_BATCH:
            return bytes(batch), False
    return bytes(batch), True


@router.put("/blobs/{sha256}", status_code=201, tags=["blobs"])
async def put_blob(request: Request, sha256: str) -> dict[str, Any]:
    """Upload a blob: its bytes as the body, streamed; refused (400, nothing kept) unless
    they hash to ``sha256``. Uploading a blob that is already stored is harmless."""
    service = service_of(request)
    check_blob_key(sha256)
    # The role check is CPU only; a refusal is audited (a write), on a worker thread.
    registry = service.allowed_by_role(request, Action.REGISTER)
    if registry is None:
        registry = await anyio.to_thread.run_sync(service.access_by_role, request, Action.REGISTER)
    body = request.stream().__aiter__()
    first, ended = await _next_batch(body)

    def chunks() -> Iterator[bytes]:
        # On the worker thread storing the blob: it asks the event loop for each further
        # batch of the body, so the body is never held whole in memory.
        batch, done = first, ended
        yield batch
        while not done:
            batch, done = anyio.from_thread.run(_next_batch, body)
            yield batch

    # One thread hop for a body that arrived whole in the first batch.
    stored = await anyio.to_thread.run_sync(registry.store_blob, chunks(), sha256)
    return {"sha256": sha256, "size": stored.size, "created": stored.created}


def _range_of(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single ``bytes=`` range; None for a whole-blob answer
    (no header, or one this server ignores as RFC 9110 allows: several ranges, other units).
    Raises ValueError when the range cannot be satisfied."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise ValueError
        return max(size - count, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError
    return start, end


def _pieces(chunks: Iterator[bytes], start: int, end: int) -> Iterator[bytes]:
    """The bytes ``start..end`` of a blob, holding the last piece back until the whole
    blob was read and its digest checked (the artefact store raises at the end)."""
    held: bytes | None = None
    position = 0
    for chunk in chunks:
        low = max(start - position, 0)
        high = min(end + 1 - position, len(chunk))
        position += len(chunk)
        if low < high:
            if held is not None:
                yield held
            held = chunk[low:high]
    if held is not None:
        yield held


_BLOB_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {OCTETS: {}}},
    206: {"content": {OCTETS: {}}},
    416: {"description": "the range is outside the blob"},
}


@router.get("/blobs/{sha256}", response_class=Response, responses=_BLOB_RESPONSES, tags=["blobs"])
def get_blob(
    request: Request, sha256: str, range: Annotated[str | None, Header(max_length=200)] = None
) -> Response:
    """Download a blob, streamed, digest-checked; one ``Range`` supported (206/416)."""
    return _blob_response(request, sha256, range)


@router.head("/blobs/{sha256}", response_class=Response, responses=_BLOB_RESPONSES, tags=["blobs"])
def head_blob(
    request: Request, sha256: str, range: Annotated[str | None, Header(max_length=200)] = None
) -> Response:
    """Whether a blob is stored, and its size (``Content-Length``), without its bytes."""
    return _blob_response(request, sha256, range)


def _blob_response(request: Request, sha256: str, range: str | None) -> Response:
    service = service_of(request)
    check_blob_key(sha256)
    if request.method == "HEAD":
        # Whether a blob is stored (before uploading it again) and its size: any reader.
        registry = service.access_by_role(request, Action.READ)
    else:
        registry = service.access_blob(request, sha256)
    if not registry.blob_exists(sha256):
        raise NotFoundError(f"blob {sha256} is not stored")
    size = registry.blob_size(sha256)
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{sha256}"'}
    try:
        wanted = _range_of(range, size)
    except ValueError:
        return JSONResponse(
            error_body("RangeNotSatisfiable", f"the blob has {size} bytes"),
            status_code=416,
            headers={"Content-Range": f"bytes */{size}"},
        )
    start, end = wanted if wanted is not None else (0, size - 1)
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    status = 200
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        status = 206
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=OCTETS)
    return StreamingResponse(
        _pieces(registry.blob_chunks(sha256), start, end),
        status_code=status,
        headers=headers,
        media_type=OCTETS,
    )


# -- policy, audit, revocations, resolve, status ----------------------------------------


def _policy_files(encoded: dict[str, str]) -> dict[str, bytes]:
    return {
        name: decode_base64(text, f"policy file {name[:80]!r}") for name, text in encoded.items()
    }


@router.get("/policy", tags=["policy"])
def show_policy(
    request: Request, version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
) -> dict[str, Any]:
    """The active policy set (or an earlier version) with its files' text."""
    registry = service_of(request).access_by_role(request, Action.READ)
    stored = registry.policy(version)
    if stored is None:
        raise NotFoundError(
            "no policy set has been applied"
            if version is None
            else f"policy set version {version} not found"
        )
    return {
        "version": stored.version,
        "digest": stored.digest,
        "applied_at": stored.applied_at,
        "applied_by": stored.applied_by,
        "reason": stored.reason,
        "files": {name: data.decode("utf-8", "replace") for name, data in stored.files.items()},
    }


@router.put("/policy", tags=["policy"])
def apply_policy(request: Request, body: PolicyApplyBody) -> dict[str, Any]:
    """Make the uploaded files (base64 each) the active policy set (audited)."""
    registry = service_of(request).access(request, Action.POLICY)
    stored = registry.apply_policy(_policy_files(body.files), reason=body.reason)
    return {"version": stored.version, "digest": stored.digest, "files": sorted(stored.files)}


@router.post("/policy/check", tags=["policy"])
def check_policy(request: Request, body: PolicyCheckBody) -> dict[str, Any]:
    """Would moving ``target`` to ``ref`` pass? Changes nothing; ``allowed`` says."""
    from mlprov.verification.render import render_checks  # noqa: PLC0415

    ref = ModelRef.parse(body.ref)
    registry = service_of(request).access(request, Action.READ, ref.name)
    files = _policy_files(body.files) if body.files is not None else None
    judgement = registry.check_policy(ref, body.target, policy_files=files)
    checks = list(judgement.report.checks)
    if judgement.decision is not None:
        checks.extend(judgement.decision.checks)
    report = json.loads(render_checks(checks, "json", subject=judgement.report.subject))
    return {
        "allowed": judgement.allowed,
        "policy_digest": judgement.policy_digest,
        "message": judgement.decision.message if judgement.decision is not None else None,
        "report": report,
    }


@router.get("/audit", tags=["audit"])
def audit_log(
    request: Request,
    subject: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> list[dict[str, Any]]:
    """The audit log (the whole registry's: needs a principal for every model)."""
    registry = service_of(request).access(request, Action.READ)
    return [e.to_json() for e in registry.audit_log(subject=subject, limit=limit)]


#: Entries in one page of ``GET /audit/chain`` unless the client asks for fewer.
AUDIT_CHAIN_PAGE = 5000


@router.get("/audit/chain", tags=["audit"])
def audit_chain(
    request: Request,
    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # the column is an INTEGER
    limit: Annotated[int, Query(ge=1, le=AUDIT_CHAIN_PAGE)] = AUDIT_CHAIN_PAGE,
) -> dict[str, Any]:
    """The chain head and one page of entries, those after sequence ``after`` (at most
    ``limit``), each with the exact details text its hash covers (``details`` a string
    here, unlike ``GET /audit``), so that a client recomputes the chain itself (``audit
    checkpoint`` and ``audit verify --checkpoint``, ADR 0055). ``next`` is the
    ``after`` of the following page, null on the last one; the head is read with each
    page, so the last page's head covers every entry sent. The whole registry's: needs a
    principal for every model, as ``GET /audit``."""
    registry = service_of(request).access(request, Action.READ)
    sequence, head, entries = registry.audit_chain_page(after=after, limit=limit)
    return {
        "head": {"sequence": sequence, "hash": head},
        "next": entries[-1].seq if len(entries) == limit else None,
        "entries": [
            {
                "seq": e.seq,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "details": e.details,
                "reason": e.reason,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in entries
        ],
    }


@router.post("/audit/checkpoints", status_code=201, tags=["audit"], openapi_extra=BUNDLE_BODY)
async def add_checkpoint(request: Request) -> dict[str, Any]:
    """Audit a checkpoint the caller signed of a head this server sent (exact bundle
    bytes: the statement ``audit checkpoint`` signs, ADR 0055 amendment). The signature
    must verify with the key or certificate it carries, and the entry it names must be
    in this chain with that hash (400 otherwise, nothing written); the answer is the
    ``audit.checkpoint`` entry, whose actor is the token. Needs ``audit`` on every
    model, as a local checkpoint."""
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access, request, Action.AUDIT)
    bundle = await raw_body(request)
    entry = await anyio.to_thread.run_sync(registry.add_signed_checkpoint, bundle)
    return entry.to_json()


@router.get("/audit/verify", tags=["audit"])
def verify_audit(request: Request) -> dict[str, Any]:
    """Recompute the audit chain; a broken one is 400 naming the first bad entry."""
    registry = service_of(request).access(request, Action.READ)
    return {"ok": True, "entries": registry.verify_audit()}


@router.get("/revocations", tags=["revocations"])
def revocations(request: Request) -> list[dict[str, Any]]:
    registry = service_of(request).access_by_role(request, Action.READ)
    return [r.to_json() for r in registry.revocations()]


@router.post("/revocations", status_code=201, tags=["revocations"], openapi_extra=BUNDLE_BODY)
async def add_revocation(request: Request) -> dict[str, Any]:
    """Store a revocation signed by its revoker (exact bundle bytes; the statement
    ``mlprov revoke`` signs). A version's revocation needs ``revoke`` on its model; a
    key's or an identity's on the whole registry."""
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access_by_role, request, Action.REVOKE)
    bundle = await raw_body(request)
    kind, value = await anyio.to_thread.run_sync(registry.revocation_claim, bundle)
    model = ModelRef.parse(value).name if kind == "version" else None
    registry = await anyio.to_thread.run_sync(service.access, request, Action.REVOKE, model)
    stored = await anyio.to_thread.run_sync(registry.add_signed_revocation, bundle)
    return stored.to_json()


@router.get("/resolve", tags=["resolve"], response_model=dict[str, Any])
def resolve(request: Request, ref: Annotated[str, Query(max_length=300)]) -> Response:
    """The version ``ref`` names now (``name/3``, ``name@alias``, ``models:/name@alias``)."""
    parsed = ModelRef.parse(ref)
    registry = service_of(request).access(request, Action.READ, parsed.name)
    version = registry.get_version(parsed)
    # Serialised here, once: the record's to_json() is already JSON values, so FastAPI's
    # generic encoding pass over it would only cost time on the hottest route.
    return JSONResponse({"ref": str(parsed), "version": version.to_json()})


@router.get("/status", tags=["status"])
def status(request: Request) -> list[dict[str, Any]]:
    """Every alias the caller may read, and whether its version verifies and passes."""
    service = service_of(request)
    registry = service.access_by_role(request, Action.READ)
    principal = service.principal(request)
    return [s.to_json() for s in registry.status() if allows(principal, Action.READ, s.model)]


# -- probes ----------------------------------------------------------------------------


@probes.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive (it answers)."""
    return {"status": "ok"}


@probes.get("/readyz", responses={503: {"description": "a store is unreachable"}})
def readyz(request: Request) -> Response:
    """Both stores answer: the metadata store a query, the artefact store a lookup."""
    try:
        service_of(request).registry.check_ready()
    except MlprovError as e:
        return error_response(e)
    return JSONResponse({"status": "ready"})


@probes.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's counters and histograms."""
    return Response(service_of(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
