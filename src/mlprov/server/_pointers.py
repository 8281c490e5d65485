"""Routes of aliases and stages: every move goes through the registry's gate.

``PUT /api/v1/models/{name}/aliases/{alias}`` with ``If-Match: "<generation>"`` moves the
alias only if it is still at that generation: a different generation when the request
arrives is 412 (re-read and retry), a move lost to a concurrent one after that is 409.
The alias's current generation is its ``ETag``. A move the gate refuses is 403 with the
failed requirements in the body (and audited by the registry).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from mlprov.access import Action
from mlprov.errors import InvalidInputError, NotFoundError, PolicyDenied, PreconditionFailedError
from mlprov.registry import Registry
from mlprov.server._bodies import AliasMoveBody, StageMoveBody, VersionNumber
from mlprov.server._service import Service, service_of

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/models", tags=["aliases and stages"])

_ETAG = re.compile(r'\A(?:W/)?"?([0-9]{1,18})"?\Z')


def _expected_generation(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise InvalidInputError('If-Match must be an alias generation, e.g. If-Match: "3"')
    return int(match.group(1))


def _generation(registry: Registry, name: str, alias: str) -> int:
    try:
        return registry.get_alias(name, alias).generation
    except NotFoundError:
        if not registry.is_deployment(name):  # a deployment's new alias is generation 0
            registry.get_model(name)  # an unknown model stays 404
        return 0


def _gated(service: Service, pointer: str, move: Any) -> Any:
    """Run a move, counting the gate's decision."""
    try:
        result = move()
    except PolicyDenied:
        service.metrics.gate_decisions.labels(pointer=pointer, decision="denied").inc()
        raise
    service.metrics.gate_decisions.labels(pointer=pointer, decision="allowed").inc()
    return result


@router.get("/{name}/aliases")
def list_aliases(request: Request, name: str) -> dict[str, int]:
    registry = service_of(request).access(request, Action.READ, name)
    return dict(sorted(registry.get_model(name).aliases.items()))


@router.get("/{name}/aliases/{alias}")
def get_alias(request: Request, response: Response, name: str, alias: str) -> dict[str, Any]:
    registry = service_of(request).access(request, Action.READ, name)
    state = registry.get_alias(name, alias)
    response.headers["ETag"] = f'"{state.generation}"'
    return state.to_json()


@router.get(
    "/{name}/aliases/{alias}/resolution",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def alias_resolution(
    request: Request,
    name: str,
    alias: str,
    ttl: Annotated[int, Query(ge=1, le=86400)] = 300,
) -> Response:
    """The registry's signed answer to what ``name@alias`` names now (version, manifest
    digest, generation), valid for ``ttl`` seconds: a Sigstore bundle signed with the
    server's registry key (``mlprov serve --signing-key``). Clients verify it with the
    registry's public key and refuse older generations (``mlprov pull --registry-key``)."""
    service = service_of(request)
    registry = service.access(request, Action.READ, name)
    if service.resolution_signer is None:
        raise NotFoundError(
            "this server signs no resolutions: start it with mlprov serve --signing-key KEY"
        )
    bundle = registry.signed_resolution(
        name, alias, service.resolution_signer, ttl=timedelta(seconds=ttl)
    )
    return Response(bundle, media_type="application/json")


@router.get("/{name}/aliases/{alias}/history")
def alias_history(request: Request, name: str, alias: str) -> list[dict[str, Any]]:
    registry = service_of(request).access(request, Action.READ, name)
    return [e.to_json() for e in registry.alias_history(name, alias)]


@router.put("/{name}/aliases/{alias}")
def set_alias(
    request: Request,
    response: Response,
    name: str,
    alias: str,
    body: AliasMoveBody,
    if_match: Annotated[str | None, Header(max_length=64)] = None,
) -> dict[str, Any]:
    """Point the alias at ``version`` through the gate (``moved`` is false when it
    already pointed there)."""
    service = service_of(request)
    registry = service.access(request, Action.MOVE, name)
    expected = _expected_generation(if_match)
    if expected is not None:
        current = _generation(registry, name, alias)
        if current != expected:
            raise PreconditionFailedError(
                f"alias {name}@{alias} is at generation {current}, not {expected}; "
                "re-read it and retry"
            )
    event = _gated(
        service,
        "alias",
        lambda: registry.set_alias(
            name, alias, body.version, reason=body.reason, expected_generation=expected
        ),
    )
    state = registry.get_alias(name, alias)
    response.headers["ETag"] = f'"{state.generation}"'
    return {
        "moved": event is not None,
        "event": event.to_json() if event is not None else None,
        "alias": state.to_json(),
    }


@router.delete("/{name}/aliases/{alias}")
def delete_alias(
    request: Request,
    name: str,
    alias: str,
    reason: str = "",
    if_match: Annotated[str | None, Header(max_length=64)] = None,
) -> dict[str, Any]:
    service = service_of(request)
    registry = service.access(request, Action.MOVE, name)
    expected = _expected_generation(if_match)
    if expected is not None:
        current = _generation(registry, name, alias)
        if current != expected:
            raise PreconditionFailedError(
                f"alias {name}@{alias} is at generation {current}, not {expected}; "
                "re-read it and retry"
            )
    event = _gated(
        service,
        "alias",
        lambda: registry.delete_alias(name, alias, reason=reason, expected_generation=expected),
    )
    result: dict[str, Any] = event.to_json()
    return result


@router.put("/{name}/versions/{number}/stage")
def set_stage(
    request: Request, name: str, number: VersionNumber, body: StageMoveBody
) -> list[dict[str, Any]]:
    """Move a version to a stage through the gate; returns the stage events it made."""
    service = service_of(request)
    registry = service.access(request, Action.MOVE, name)
    events = _gated(
        service, "stage", lambda: registry.set_stage(name, number, body.stage, reason=body.reason)
    )
    return [e.to_json() for e in events]


@router.get("/{name}/stages/history")
def stage_history(request: Request, name: str) -> list[dict[str, Any]]:
    registry = service_of(request).access(request, Action.READ, name)
    return [e.to_json() for e in registry.stage_history(name)]
