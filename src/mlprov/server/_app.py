"""The FastAPI application: one registry per process, every route under ``/api/v1``."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from mlprov._version import __version__
from mlprov.config import RegistryConfig
from mlprov.errors import ConfigError
from mlprov.registry import Dispatcher, open_registry
from mlprov.server import _deployments, _models, _pointers, _registry_wide, _transfer
from mlprov.server._errors import install_error_handlers
from mlprov.server._gatekeeper import API_PREFIX, Gatekeeper
from mlprov.server._limits import RateLimit, RateLimiter, ServerLimits
from mlprov.server._metrics import ServerMetrics
from mlprov.server._service import Service

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = ["SERVER_ACTOR", "app_from_environment", "create_app"]

#: The actor of the process's own registry. Every request acts as its token's principal
#: (Registry.acting_as); this name is what the registry would record if something ran
#: outside a request, so the operating-system user is never recorded.
SERVER_ACTOR = "mlprov-server"

_DEFAULTS = ServerLimits()
#: Seconds between webhook dispatcher passes in each server process (docs/webhooks.md).
DISPATCH_INTERVAL = 2.0
#: Seconds a server process reuses a token row it read (mlprov.registry.tokens.TokenCache):
#: the longest a revocation made elsewhere takes to reach it (docs/adr/0049).
TOKEN_CACHE_SECONDS = 5.0


def create_app(
    config: RegistryConfig,
    *,
    max_body_bytes: int = _DEFAULTS.max_body_bytes,
    max_blob_bytes: int = _DEFAULTS.max_blob_bytes,
    rate_limit: RateLimit | None = _DEFAULTS.rate_limit,
    dispatch_interval: float | None = DISPATCH_INTERVAL,
    resolution_signer: Signer | None = None,
    token_cache_seconds: float | None = TOKEN_CACHE_SECONDS,
) -> FastAPI:
    """The REST API over the registry ``config`` names (docs/server.md).

    The registry is opened here, once per process (the schema is migrated if needed), and
    closed when the application shuts down. Unless ``dispatch_interval`` is None, a
    webhook dispatcher runs in a background thread of the process for its lifetime:
    requests only write the outbox, the thread delivers after commit, and dispatchers
    of several workers and replicas claim each delivery by compare-and-set, so a slow or
    failing receiver never holds up a request.
    With ``resolution_signer`` (the registry's key) the server answers
    ``GET .../aliases/{alias}/resolution`` with signed resolutions (docs/client.md).
    A token row is reused for up to ``token_cache_seconds`` (None: read on every
    request), so a revocation made elsewhere is refused that much later at most.
    """
    limits = ServerLimits(
        max_body_bytes=max_body_bytes, max_blob_bytes=max_blob_bytes, rate_limit=rate_limit
    )
    registry = open_registry(config, actor=SERVER_ACTOR)
    if token_cache_seconds is not None:
        registry.cache_tokens(token_cache_seconds)
    service = Service(
        registry=registry,
        limits=limits,
        metrics=ServerMetrics(),
        limiter=RateLimiter(rate_limit) if rate_limit is not None else None,
        resolution_signer=resolution_signer,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        dispatcher: threading.Thread | None = None
        if dispatch_interval is not None:
            dispatcher = threading.Thread(
                target=Dispatcher(registry).run_forever,
                args=(stop, dispatch_interval),
                name="mlprov-webhooks",
                daemon=True,
            )
            dispatcher.start()
        try:
            yield
        finally:
            stop.set()
            if dispatcher is not None:
                # A POST in flight ends within the dispatcher's own timeout.
                dispatcher.join(timeout=30)
            registry.close()

    app = FastAPI(
        title="mlprov",
        version=__version__,
        description="A model registry where every version is hashed, signed and carries "
        "provenance. Authenticate with `Authorization: Bearer <token>` "
        "(`mlprov token create`).",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    app.include_router(_models.router)
    app.include_router(_pointers.router)
    app.include_router(_registry_wide.router)
    app.include_router(_deployments.router)
    app.include_router(_registry_wide.probes)
    app.include_router(_transfer.router)
    app.add_middleware(Gatekeeper, service=service)
    return app


def resolution_signer_from_environment() -> Signer | None:
    """The registry's key from ``MLPROV_SIGNING_KEY`` (a PEM file; its passphrase, if
    any, from the variable ``MLPROV_SIGNING_KEY_PASSPHRASE`` names), or None."""
    path = os.environ.get("MLPROV_SIGNING_KEY", "").strip()
    if not path:
        return None
    from pathlib import Path  # noqa: PLC0415

    from mlprov.errors import ConfigError  # noqa: PLC0415
    from mlprov.signing import KeySigner  # noqa: PLC0415

    try:
        pem = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"MLPROV_SIGNING_KEY {path}: cannot read: {e.strerror}") from None
    secret_name = os.environ.get("MLPROV_SIGNING_KEY_PASSPHRASE", "").strip()
    passphrase = os.environ.get(secret_name, "").encode() if secret_name else None
    return KeySigner.from_pem(pem, passphrase)


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` (``mlprov serve``, one call per worker process):
    the registry from the environment (``MLPROV_HOME``, ``MLPROV_REGISTRY``,
    ``MLPROV_ARTIFACTS``), limits from ``MLPROV_SERVER_MAX_BODY``,
    ``MLPROV_SERVER_MAX_BLOB`` (bytes) and ``MLPROV_SERVER_RATE`` (requests per second
    per token, ``0`` for none; the burst is twice the rate) and
    ``MLPROV_SERVER_DISPATCH`` (seconds between webhook dispatcher passes, ``0`` for no
    dispatcher in this process) and ``MLPROV_SERVER_TOKEN_CACHE`` (seconds a token row
    is reused, at most 60; ``0`` reads it on every request)."""
    return create_app(
        RegistryConfig.from_environment(),
        resolution_signer=resolution_signer_from_environment(),
        **server_settings_from_environment(),
    )


def server_settings_from_environment() -> dict[str, Any]:
    """The ``create_app`` settings the ``MLPROV_SERVER_*`` variables give (see
    :func:`app_from_environment`); a bad value is one ConfigError naming it (exit 2).
    ``mlprov serve`` checks them once before it starts any worker."""

    def number(name: str, default: float, what: str) -> float:
        text = os.environ.get(name, "").strip()
        if not text:
            return default
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value >= 0:  # also NaN and negative
            raise ConfigError(f"{name}={text[:40]!r} is not {what}")
        return value

    rate_value = number("MLPROV_SERVER_RATE", -1.0, "a number of requests per second")
    rate: RateLimit | None = _DEFAULTS.rate_limit
    if rate_value >= 0:
        rate = RateLimit(rate_value, max(1, int(rate_value * 2))) if rate_value > 0 else None
    dispatch = number("MLPROV_SERVER_DISPATCH", DISPATCH_INTERVAL, "a number of seconds")
    cache_text = os.environ.get("MLPROV_SERVER_TOKEN_CACHE", "").strip()
    try:
        cache = float(cache_text) if cache_text else TOKEN_CACHE_SECONDS
    except ValueError:
        cache = -1.0
    if not 0 <= cache <= 60:
        raise ConfigError(
            f"MLPROV_SERVER_TOKEN_CACHE={cache_text[:40]!r}: give 0 (off) to 60 seconds"
        )
    limits = {}
    for name, key, default in (
        ("MLPROV_SERVER_MAX_BODY", "max_body_bytes", _DEFAULTS.max_body_bytes),
        ("MLPROV_SERVER_MAX_BLOB", "max_blob_bytes", _DEFAULTS.max_blob_bytes),
    ):
        text = os.environ.get(name, "").strip()
        if not text:
            limits[key] = default
        elif text.isdigit() and int(text) > 0:
            limits[key] = int(text)
        else:
            raise ConfigError(f"{name}={text[:40]!r} is not a positive number of bytes")
    return {
        "token_cache_seconds": cache if cache > 0 else None,
        "dispatch_interval": dispatch if dispatch > 0 else None,
        "rate_limit": rate,
        **limits,
    }
