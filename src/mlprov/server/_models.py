"""Routes of models, versions and their evidence: ``/api/v1/models/...``.

Each route authorises first (:meth:`Service.access`), then makes one registry call and
presents its result as JSON (or, for signatures and evidence, the exact stored bytes).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from mlprov.access import Action, allows
from mlprov.errors import InvalidInputError
from mlprov.manifest import Manifest
from mlprov.refs import ModelRef
from mlprov.server._bodies import (
    DescriptionBody,
    DocumentsBody,
    ModelCreateBody,
    TagChangesBody,
    VersionCreateBody,
    VersionNumber,
    decode_base64,
)
from mlprov.server._service import service_of

__all__ = ["BUNDLE_BODY", "manifest_json", "raw_body", "router"]

router = APIRouter(prefix="/api/v1/models", tags=["models"])

#: OpenAPI for routes whose body is a signed bundle sent as its exact bytes.
BUNDLE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
OCTETS = "application/octet-stream"


async def raw_body(request: Request) -> bytes:
    body = await request.body()
    if not body:
        raise InvalidInputError("the request body is empty: send the bundle's exact bytes")
    return body


def manifest_json(manifest: Manifest) -> dict[str, Any]:
    return {
        "algorithm": manifest.algorithm,
        "digest": str(manifest.digest),
        "files": [{"path": e.path, "size": e.size, "digest": str(e.digest)} for e in manifest],
    }


def _ref(name: str, number: VersionNumber) -> ModelRef:
    return ModelRef(name, version=number)


# -- models ----------------------------------------------------------------------------


@router.get("")
def list_models(
    request: Request, prefix: Annotated[str | None, Query(max_length=128)] = None
) -> list[dict[str, Any]]:
    """Models the caller may read (others are left out, not refused)."""
    service = service_of(request)
    registry = service.access_by_role(request, Action.READ)
    principal = service.principal(request)
    return [
        m.to_json()
        for m in registry.list_models(prefix=prefix)
        if allows(principal, Action.READ, m.name)
    ]


@router.post("", status_code=201)
def create_model(request: Request, body: ModelCreateBody) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.REGISTER, body.name)
    return registry.create_model(body.name, description=body.description, tags=body.tags).to_json()


@router.get("/{name}")
def get_model(request: Request, name: str) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.READ, name)
    return registry.get_model(name).to_json()


@router.patch("/{name}/tags")
def tag_model(request: Request, name: str, body: TagChangesBody) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.REGISTER, name)
    return registry.tag_model(name, body.tags, reason=body.reason).to_json()


@router.put("/{name}/description")
def describe_model(request: Request, name: str, body: DescriptionBody) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.REGISTER, name)
    return registry.describe_model(name, body.description).to_json()


# -- versions --------------------------------------------------------------------------


@router.get("/{name}/versions")
def list_versions(request: Request, name: str) -> list[dict[str, Any]]:
    registry = service_of(request).access(request, Action.READ, name)
    return [v.to_json() for v in registry.list_versions(name)]


@router.post("/{name}/versions", status_code=201, response_model=dict[str, Any])
def register_version(
    request: Request,
    name: str,
    body: VersionCreateBody,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    """Register the next version from uploaded blobs, or from files sent inline
    (``content``, base64). With ``Idempotency-Key`` a retried request returns the version
    the first one made and never makes a second."""
    service = service_of(request)
    registry = service.access(request, Action.REGISTER, name)
    signature = None
    if body.signature is not None:
        service.access(request, Action.SIGN, name)
        signature = decode_base64(body.signature, "signature")
    version = registry.register_uploaded(
        name,
        body.uploaded_files(),
        body.version_input(),
        artifact_name=body.artifact_name,
        signature=signature,
        idempotency_key=idempotency_key,
        contents=body.inline_contents(),
    )
    # Serialised here, once, as /resolve is: to_json() is already JSON values, and
    # FastAPI's generic encoding pass over them was a measurable part of the request.
    return JSONResponse(
        version.to_json(),
        status_code=201,
        headers={"Location": f"/api/v1/models/{name}/versions/{version.version}"},
    )


@router.get("/{name}/versions/{number}")
def get_version(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.READ, name)
    return registry.get_version(_ref(name, number)).to_json()


@router.patch("/{name}/versions/{number}/tags")
def tag_version(
    request: Request, name: str, number: VersionNumber, body: TagChangesBody
) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.REGISTER, name)
    return registry.tag_version(_ref(name, number), body.tags, reason=body.reason).to_json()


@router.put("/{name}/versions/{number}/description")
def describe_version(
    request: Request, name: str, number: VersionNumber, body: DescriptionBody
) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.REGISTER, name)
    return registry.describe_version(_ref(name, number), body.description).to_json()


@router.get("/{name}/versions/{number}/manifest")
def get_manifest(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.READ, name)
    return manifest_json(registry.manifest(_ref(name, number)))


@router.get("/{name}/versions/{number}/files")
def get_files(request: Request, name: str, number: VersionNumber) -> list[dict[str, Any]]:
    """Each file with the blob (``GET /api/v1/blobs/{sha256}``) holding its bytes."""
    registry = service_of(request).access(request, Action.READ, name)
    return [dataclasses.asdict(f) for f in registry.version_files(_ref(name, number))]


@router.get(
    "/{name}/versions/{number}/signature",
    response_class=Response,
    responses={200: {"content": {OCTETS: {}}}},
)
def get_signature(request: Request, name: str, number: VersionNumber) -> Response:
    """The version's OMS signature: the exact ``model.sig`` bytes stored."""
    registry = service_of(request).access(request, Action.READ, name)
    return Response(registry.signature_of(_ref(name, number)), media_type=OCTETS)


@router.post("/{name}/versions/{number}/signature", status_code=201, openapi_extra=BUNDLE_BODY)
async def attach_signature(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    """Attach an OMS signature made elsewhere, verified against the registry's trust."""
    return await _attach(request, name, number, Action.SIGN)


@router.post("/{name}/versions/{number}/documents", status_code=201)
def add_documents(
    request: Request, name: str, number: VersionNumber, body: DocumentsBody
) -> list[dict[str, Any]]:
    """Store the version's provenance, ML-BOM and model card, signed on the client by
    the model's signer once the version exists (``mlprov sign DIR --name N``). Each must
    be exactly the statement the registry builds from its record; a repeat of the same
    request returns what the first stored (safe to retry)."""
    registry = service_of(request).access(request, Action.SIGN, name)
    stored = registry.add_signed_documents(_ref(name, number), body.bundles())
    return [e.to_json() for e in stored]


@router.put("/{name}/versions/{number}/signature", status_code=201, openapi_extra=BUNDLE_BODY)
async def put_signature(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    """Store the OMS signature of a version registered without one, made by the client
    over its recorded manifest (``mlprov sign REF``; exact bundle bytes). Its signer's
    trust is the gate's question, as for a registration with a signature."""
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access, request, Action.SIGN, name)
    bundle = await raw_body(request)
    stored = await anyio.to_thread.run_sync(
        registry.add_signed_signature, _ref(name, number), bundle
    )
    return stored.to_json()


@router.post("/{name}/versions/{number}/attestations", status_code=201, openapi_extra=BUNDLE_BODY)
async def add_attestation(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    """Store an attestation signed on the client (``mlprov attest``; exact bundle bytes):
    exactly the statement ``attest`` makes about this version. Whose attestation counts
    is the gate's question."""
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access, request, Action.ATTEST, name)
    bundle = await raw_body(request)
    stored = await anyio.to_thread.run_sync(
        registry.add_signed_attestation, _ref(name, number), bundle
    )
    return stored.to_json()


# -- evidence --------------------------------------------------------------------------


@router.get("/{name}/versions/{number}/evidence")
def list_evidence(
    request: Request,
    name: str,
    number: VersionNumber,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    registry = service_of(request).access(request, Action.READ, name)
    return [e.to_json() for e in registry.evidence(_ref(name, number), kind=kind)]


@router.get(
    "/{name}/versions/{number}/evidence/{digest}",
    response_class=Response,
    responses={200: {"content": {OCTETS: {}}}},
)
def get_evidence(request: Request, name: str, number: VersionNumber, digest: str) -> Response:
    """One piece of evidence as the exact bytes stored (``digest`` is ``sha256:HEX``)."""
    registry = service_of(request).access(request, Action.READ, name)
    return Response(registry.evidence_content(_ref(name, number), digest), media_type=OCTETS)


@router.post("/{name}/versions/{number}/evidence", status_code=201, openapi_extra=BUNDLE_BODY)
async def attach_evidence(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    """Attach an attestation signed elsewhere (exact bundle bytes), verified against the
    registry's trust (its active policy set's signers)."""
    return await _attach(request, name, number, Action.ATTEST)


async def _attach(
    request: Request, name: str, number: VersionNumber, action: Action
) -> dict[str, Any]:
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access, request, action, name)
    bundle = await raw_body(request)
    evidence = await anyio.to_thread.run_sync(registry.attach_trusted, _ref(name, number), bundle)
    return evidence.to_json()


@router.get("/{name}/versions/{number}/approvals")
def list_approvals(
    request: Request,
    name: str,
    number: VersionNumber,
    target: Annotated[str | None, Query(max_length=300)] = None,
) -> list[dict[str, Any]]:
    registry = service_of(request).access(request, Action.READ, name)
    return [a.to_json() for a in registry.approvals(_ref(name, number), target=target)]


@router.post("/{name}/versions/{number}/approvals", status_code=201, openapi_extra=BUNDLE_BODY)
async def add_approval(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    """Store an approval its approver signed (exact bundle bytes; predicate
    ``https://mlprov.dev/approval/v1``). The gate decides whether the signer counts."""
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access, request, Action.APPROVE, name)
    bundle = await raw_body(request)
    stored = await anyio.to_thread.run_sync(
        registry.add_signed_approval, _ref(name, number), bundle
    )
    return stored.to_json()


@router.get("/{name}/versions/{number}/waivers")
def list_waivers(request: Request, name: str, number: VersionNumber) -> list[dict[str, Any]]:
    registry = service_of(request).access(request, Action.READ, name)
    return [w.to_json() for w in registry.waivers(_ref(name, number))]


@router.post("/{name}/versions/{number}/waivers", status_code=201, openapi_extra=BUNDLE_BODY)
async def add_waiver(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    """Store one holder's waiver (exact bundle bytes; predicate
    ``https://mlprov.dev/waiver/v1``). The gate decides whether it counts."""
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access, request, Action.WAIVE, name)
    bundle = await raw_body(request)
    stored = await anyio.to_thread.run_sync(registry.add_signed_waiver, _ref(name, number), bundle)
    return stored.to_json()


@router.get("/{name}/versions/{number}/lineage")
def get_lineage(
    request: Request,
    name: str,
    number: VersionNumber,
    descendants: bool = False,
    max_depth: Annotated[int | None, Query(ge=1, le=1024)] = None,
) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.READ, name)
    graph = registry.lineage(_ref(name, number), descendants=descendants, max_depth=max_depth)
    result: dict[str, Any] = graph.to_json()
    return result
