"""``mlprov serve``: the registry as a versioned REST API (FastAPI), docs/server.md.

A thin interface like the CLI: each route authenticates (bearer token), authorises
(role and model patterns) before any work, makes one registry call and presents the
result. Every mutation goes through the same registry service and gate as the CLI.

Stable API: :func:`create_app`, :func:`app_from_environment`,
:func:`resolution_signer_from_environment`, :func:`server_settings_from_environment`,
:class:`RateLimit`,
:class:`ServerLimits`.
"""

from __future__ import annotations

from mlprov.server._app import (
    SERVER_ACTOR,
    app_from_environment,
    create_app,
    resolution_signer_from_environment,
    server_settings_from_environment,
)
from mlprov.server._limits import RateLimit, ServerLimits

__all__ = [
    "SERVER_ACTOR",
    "RateLimit",
    "ServerLimits",
    "app_from_environment",
    "create_app",
    "resolution_signer_from_environment",
    "server_settings_from_environment",
]
