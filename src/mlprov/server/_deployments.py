"""Routes of deployments: ``/api/v1/deployments/...`` (docs/deployments.md, "Over HTTP").

Creating a deployment is ``register``, releasing a version ``sign`` (the publisher role);
reading is ``read``. Token model patterns apply to deployment names, which share one
namespace with model names. A release is signed by the client, never by the server
(ADR 0047): ``POST .../statement`` returns the exact statement bytes the next version
would carry, the client signs them, and ``POST .../versions`` stores the bundle only if
its payload is still exactly that statement. Deployment aliases move through the model
alias routes (``PUT /api/v1/models/{name}/aliases/{alias}``, the promoter role), which
take a deployment's name and go through the same gate. ``GET .../aliases/{alias}/judgement``
is the server's verification and gate decision for the version an alias holds, which a
client pulling that alias asks for before it verifies the bundle itself (docs/client.md).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mlprov.access import Action, allows
from mlprov.errors import ConflictError
from mlprov.refs import ModelRef
from mlprov.server._bodies import VersionNumber
from mlprov.server._models import BUNDLE_BODY, raw_body
from mlprov.server._service import service_of
from mlprov.store.deployments import DeploymentVersion

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])


class DeploymentCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=128)
    description: str = Field("", max_length=4096)


class StatementBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Role -> ``MODEL/VERSION``.
    members: dict[str, str] = Field(max_length=64)
    metadata: dict[str, str] = Field(default_factory=dict)


@router.get("")
def list_deployments(request: Request) -> list[dict[str, Any]]:
    """Deployments the caller may read (others are left out, not refused)."""
    service = service_of(request)
    registry = service.access_by_role(request, Action.READ)
    principal = service.principal(request)
    return [
        d.to_json() for d in registry.list_deployments() if allows(principal, Action.READ, d.name)
    ]


@router.post("", status_code=201)
def create_deployment(request: Request, body: DeploymentCreateBody) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.REGISTER, body.name)
    return registry.create_deployment(body.name, description=body.description).to_json()


@router.get("/{name}")
def get_deployment(request: Request, name: str) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.READ, name)
    found = registry.get_deployment(name)
    return {
        **found.to_json(),
        "versions": [v.to_json() for v in registry.deployment_versions(name)],
    }


@router.get("/{name}/versions/{number}")
def get_version(request: Request, name: str, number: VersionNumber) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.READ, name)
    return registry.deployment_version(ModelRef(name, version=number)).to_json()


@router.get(
    "/{name}/versions/{number}/bundle",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def get_bundle(request: Request, name: str, number: VersionNumber) -> Response:
    """The version's signed bundle statement, as the exact stored bytes."""
    registry = service_of(request).access(request, Action.READ, name)
    version = registry.deployment_version(ModelRef(name, version=number))
    return Response(version.bundle, media_type="application/json")


@router.post(
    "/{name}/statement",
    response_class=Response,
    responses={200: {"content": {"application/vnd.in-toto+json": {}}}},
)
def statement(request: Request, name: str, body: StatementBody) -> Response:
    """The exact statement bytes the next version of ``name`` would be released with."""
    registry = service_of(request).access(request, Action.SIGN, name)
    made = registry.deployment_statement(name, body.members, metadata=body.metadata)
    return Response(made, media_type="application/vnd.in-toto+json")


@router.post("/{name}/versions", status_code=201, openapi_extra=BUNDLE_BODY)
async def release(
    request: Request,
    response: Response,
    name: str,
    reason: Annotated[str, Query(max_length=4096)] = "",
) -> dict[str, Any]:
    """Store the next version from a bundle signing the statement ``POST .../statement``
    returned (exact bytes); 409 when another version was released meanwhile."""
    service = service_of(request)
    registry = await anyio.to_thread.run_sync(service.access, request, Action.SIGN, name)
    bundle = await raw_body(request)

    def store() -> DeploymentVersion:
        return registry.release_signed_deployment(name, bundle, reason=reason)

    made = await anyio.to_thread.run_sync(store)
    response.headers["Location"] = f"/api/v1/deployments/{name}/versions/{made.version}"
    return made.to_json()


@router.get("/{name}/aliases/{alias}/judgement")
def alias_judgement(request: Request, name: str, alias: str) -> dict[str, Any]:
    """The version ``name@alias`` holds, the registry's verification of it (its trust)
    and the alias's deployment policy's decision, as ``mlprov verify NAME@ALIAS`` reports
    them; changes nothing. 409 if the alias moved while it was judged."""
    from mlprov.verification.render import render_checks  # noqa: PLC0415

    registry = service_of(request).access(request, Action.READ, name)
    ref = ModelRef.parse(f"{name}@{alias}")
    before = registry.get_alias(name, alias)
    judgement = registry.verify(ref)
    after = registry.get_alias(name, alias)
    if (before.version, before.generation) != (after.version, after.generation):
        raise ConflictError(f"{ref} moved while it was judged; ask again")
    checks = list(judgement.report.checks)
    if judgement.decision is not None:
        checks.extend(judgement.decision.checks)
    return {
        "version": after.version,
        "generation": after.generation,
        "verified": judgement.report.passed,
        "allowed": judgement.allowed,
        "policy_digest": judgement.policy_digest,
        "message": judgement.decision.message if judgement.decision is not None else None,
        "report": json.loads(render_checks(checks, "json", subject=judgement.report.subject)),
    }
