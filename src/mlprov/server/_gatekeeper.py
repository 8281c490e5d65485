"""What every request passes before a route runs, as one ASGI middleware.

In this order, each refusal changing nothing but the audit log (for 401) and metrics:

1. a path with a ``..`` segment, a backslash or NUL is refused (400): names never have them;
2. a body larger than the limit is refused (413): by ``Content-Length`` before reading,
   or while it streams in when the length is not given;
3. unless the path is public (health, readiness, metrics, the OpenAPI document), the
   caller is rate-limited by address, then authenticated from ``Authorization: Bearer``
   (401, audited, with no fallback to any other identity), then rate-limited per token
   (429). The principal is left in ``request.state`` for the route to authorise (403).

Requests and latencies are counted by route template once the response has started.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mlprov.errors import AuthenticationError, InvalidInputError, MlprovError
from mlprov.server._errors import error_body, error_response
from mlprov.server._service import Service

__all__ = ["API_PREFIX", "Gatekeeper"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/v1"
BLOBS_PREFIX = f"{API_PREFIX}/blobs/"
IMPORTS_PATH = f"{API_PREFIX}/imports"
#: Answered without credentials: probes, scrapers and the API's own description.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/docs"}
)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` as the body grows past the limit. An HTTPException, so
    FastAPI's body reading passes it on (it turns other errors into 400) and the error
    handlers answer 413 in the one error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class Gatekeeper:
    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                self._count(scope, status[0], started)
            await send(message)

        refusal = await self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_counted)
            return
        limit = self._body_limit(scope)
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, receive_limited, send_counted)
        except _BodyTooLarge:
            if status:  # the response had started: nothing better than closing
                raise
            await _too_large(limit)(scope, receive, send_counted)

    def _body_limit(self, scope: Scope) -> int:
        limits = self.service.limits
        path = str(scope.get("path", ""))
        if path.startswith(BLOBS_PREFIX) and scope.get("method") == "PUT":
            return limits.max_blob_bytes
        if path == IMPORTS_PATH and scope.get("method") == "POST":
            return limits.max_blob_bytes  # an archive upload (server/_transfer.py)
        return limits.max_body_bytes

    async def _refusal(self, scope: Scope) -> ASGIApp | None:
        """The response refusing the request before any route runs, or None."""
        path = str(scope.get("path", ""))
        if "\\" in path or "\x00" in path or any(p in (".", "..") for p in path.split("/")):
            return error_response(InvalidInputError("unsafe path: '.', '..', '\\' or NUL"))
        length = _header(scope, b"content-length")
        limit = self._body_limit(scope)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _too_large(limit)
        if path in PUBLIC_PATHS or not path.startswith(API_PREFIX):
            return None
        limiter = self.service.limiter
        client = scope.get("client") or ("unknown", 0)
        authorization = _header(scope, b"authorization")
        if authorization is None or not authorization.startswith("Bearer "):
            if limiter is not None and (wait := limiter.take(f"address:{client[0]}")):
                return self._rate_limited(wait)
            return await self._unauthenticated(
                scope,
                AuthenticationError("no credentials: send Authorization: Bearer <token>"),
            )
        secret = authorization[len("Bearer ") :].strip()
        registry = self.service.registry
        try:
            # A cached token row is checked right here (CPU only: a digest comparison);
            # only a row to read from the store goes to a worker thread.
            principal = registry.authenticate_cached(secret)
            if principal is None:
                principal = await anyio.to_thread.run_sync(registry.authenticate, secret)
        except AuthenticationError as e:
            if limiter is not None and (wait := limiter.take(f"address:{client[0]}")):
                return self._rate_limited(wait)
            return await self._unauthenticated(scope, e)
        except MlprovError as e:
            return error_response(e)
        if limiter is not None and (wait := limiter.take(f"token:{principal.token_id}")):
            return self._rate_limited(wait)
        scope.setdefault("state", {})["principal"] = principal
        return None

    async def _unauthenticated(self, scope: Scope, error: AuthenticationError) -> ASGIApp:
        self.service.metrics.access_denials.labels(status="401").inc()
        method, path = str(scope.get("method", "")), str(scope.get("path", ""))
        try:
            await anyio.to_thread.run_sync(
                lambda: self.service.registry.record_access_denied(
                    actor=None,
                    action=f"{method} {path}",
                    subject=path,
                    status=401,
                    reason=error.message,
                )
            )
        except MlprovError as e:
            return error_response(e)
        return error_response(error)

    def _rate_limited(self, wait: float) -> ASGIApp:
        self.service.metrics.access_denials.labels(status="429").inc()
        return JSONResponse(
            error_body("TooManyRequests", "rate limit exceeded: slow down and retry"),
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    def _count(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = str(scope.get("method", ""))
        metrics = self.service.metrics
        metrics.requests.labels(route=template, method=method, status=str(status)).inc()
        metrics.latency.labels(route=template, method=method).observe(time.perf_counter() - started)


def _too_large(limit: int) -> ASGIApp:
    return JSONResponse(
        error_body("PayloadTooLarge", f"request body larger than {limit} bytes"),
        status_code=413,
        headers={"Connection": "close"},
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
