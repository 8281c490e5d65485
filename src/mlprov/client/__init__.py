"""Client mode: the registry's API over HTTP against ``mlprov serve`` (docs/client.md).

With ``MLPROV_REGISTRY=http(s)://host:port`` and ``MLPROV_TOKEN`` the CLI and
:func:`mlprov.connect` use :class:`HttpRegistry`, which implements
:class:`mlprov.registry.RegistryApi` like the local :class:`~mlprov.registry.Registry`.
Signing and verification stay on the client: keys never travel, and downloaded bytes
are hashed and checked here (ADR 0047).

Stable API: :class:`HttpRegistry`, :class:`RemotePull`, :class:`RemoteDeploymentPull`,
:class:`DeploymentReport`, :func:`is_server_uri`, :func:`connect`.
"""

from __future__ import annotations

import os

from mlprov.client._registry import (
    DeploymentReport,
    HttpRegistry,
    RemoteDeploymentPull,
    RemotePull,
    ResolutionCheck,
    is_server_uri,
)
from mlprov.registry.api import RegistryApi

__all__ = [
    "DeploymentReport",
    "HttpRegistry",
    "RemoteDeploymentPull",
    "RemotePull",
    "ResolutionCheck",
    "connect",
    "is_server_uri",
]

#: mypy checks here that the HTTP client satisfies the API the local registry implements.
_HTTP_API: type[RegistryApi] = HttpRegistry


def connect(
    uri: str | None = None,
    *,
    token: str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> HttpRegistry:
    """An :class:`HttpRegistry` for ``uri`` (default ``$MLPROV_REGISTRY``) with ``token``
    (default ``$MLPROV_TOKEN``); ``timeout`` (seconds, default ``$MLPROV_TIMEOUT`` or 60)
    and ``retries`` (default ``$MLPROV_RETRIES`` or 3)."""
    from mlprov.errors import ConfigError  # noqa: PLC0415

    where = uri if uri is not None else os.environ.get("MLPROV_REGISTRY", "")
    if not is_server_uri(where):
        raise ConfigError(f"{where[:100]!r} is not a server URL (http:// or https://)")
    try:
        wait = timeout if timeout is not None else float(os.environ.get("MLPROV_TIMEOUT") or 60)
        tries = retries if retries is not None else int(os.environ.get("MLPROV_RETRIES") or 3)
    except ValueError:
        raise ConfigError("MLPROV_TIMEOUT must be seconds and MLPROV_RETRIES a count") from None
    secret = token if token is not None else os.environ.get("MLPROV_TOKEN") or None
    return HttpRegistry(where, secret, timeout=wait, retries=tries)
