"""What every route shares: the process's one registry, its limits and metrics, and the
authorisation step each route takes before any work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from mlprov.access import ROLE_ACTIONS, Action, Principal, allows, authorize
from mlprov.errors import AuthenticationError, PermissionDeniedError
from mlprov.registry import Registry
from mlprov.server._limits import RateLimiter, ServerLimits
from mlprov.server._metrics import ServerMetrics

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = ["Service", "service_of"]


@dataclass
class Service:
    """One per server process: the registry (opened once, shared by every request, its
    actor the server itself, never the operating-system user), limits and metrics."""

    registry: Registry
    limits: ServerLimits
    metrics: ServerMetrics
    limiter: RateLimiter | None
    #: Signs alias resolutions (``mlprov serve --signing-key``); None: not offered.
    resolution_signer: Signer | None = None

    def principal(self, request: Request) -> Principal:
        """Who the authentication step found (it ran before the route: see _gatekeeper)."""
        found = getattr(request.state, "principal", None)
        if not isinstance(found, Principal):  # pragma: no cover - the gatekeeper sets it
            raise AuthenticationError("no credentials: send Authorization: Bearer <token>")
        return found

    def access(self, request: Request, action: Action, model: str | None = None) -> Registry:
        """Authorise ``action`` (on ``model``) for the request's principal, before any
        work; a refusal is audited in its own transaction and raised (403). Returns the
        registry acting as the principal, so the audit log names it."""
        principal = self.principal(request)
        try:
            authorize(principal, action, model)
        except PermissionDeniedError as e:
            self.refuse(request, principal, action, model, e)
            raise
        return self.registry.acting_as(principal)

    def access_by_role(self, request: Request, action: Action) -> Registry:
        """Authorise an action that concerns no model yet (a blob upload): the role must
        allow it; the model a blob ends up in is authorised when a version names it."""
        principal = self.principal(request)
        if action not in ROLE_ACTIONS[principal.role]:
            error = PermissionDeniedError(
                f"{principal.actor} with role {principal.role} may not {action}"
            )
            self.refuse(request, principal, action, None, error)
            raise error
        return self.registry.acting_as(principal)

    def allowed_by_role(self, request: Request, action: Action) -> Registry | None:
        """The registry acting as the request's principal when its role allows ``action``
        (CPU only: fit for the event loop), None when it does not; then
        :meth:`access_by_role` refuses it, on a worker thread (the refusal is audited)."""
        principal = self.principal(request)
        if action not in ROLE_ACTIONS[principal.role]:
            return None
        return self.registry.acting_as(principal)

    def access_blob(self, request: Request, sha256: str) -> Registry:
        """Authorise reading a blob's bytes: a principal for every model may read any
        blob; one limited by model patterns only a blob that a version of a model it may
        read uses (a blob no version uses yet is no model's, so not theirs)."""
        registry = self.access_by_role(request, Action.READ)
        principal = self.principal(request)
        if allows(principal, Action.READ, None):
            return registry
        used_by = registry.blob_models(sha256)
        if any(allows(principal, Action.READ, model) for model in used_by):
            return registry
        error = PermissionDeniedError(
            f"{principal.actor} may not read blob {sha256[:16]}...: no version of a model "
            f"matching {', '.join(principal.models)} uses it"
        )
        self.refuse(request, principal, Action.READ, None, error)
        raise error

    def refuse(
        self,
        request: Request,
        principal: Principal,
        action: Action,
        model: str | None,
        error: PermissionDeniedError,
    ) -> None:
        self.metrics.access_denials.labels(status="403").inc()
        self.registry.record_access_denied(
            actor=principal.actor,
            action=f"{action} {request.method} {request.url.path}",
            subject=model or "registry",
            status=403,
            reason=error.message,
        )


def service_of(request: Request) -> Service:
    service = request.app.state.service
    assert isinstance(service, Service)
    return service
