"""``mlprov serve``: the registry as a REST API (docs/server.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlprov.cli._state import state


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="TCP port.")] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", metavar="N", help="Server processes (one registry each).")
    ] = 1,
    webhook_interval: Annotated[
        float,
        typer.Option(
            "--webhook-interval",
            metavar="SECONDS",
            help="Seconds between webhook delivery passes per process; 0: no dispatcher.",
        ),
    ] = 2.0,
    log_level: Annotated[
        str, typer.Option("--log-level", metavar="LEVEL", help="uvicorn's log level.")
    ] = "info",
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            envvar="MLPROV_SIGNING_KEY",
            metavar="KEY",
            help="The registry's private key (PEM): sign alias resolutions for clients "
            "(GET .../aliases/ALIAS/resolution).",
        ),
    ] = None,
) -> None:
    """Serve the registry over HTTP until interrupted: /api/v1 (bearer tokens from
    `mlprov token create`), /healthz, /readyz, /metrics. The registry is the one
    MLPROV_HOME / MLPROV_REGISTRY / MLPROV_ARTIFACTS name; run several replicas on one
    PostgreSQL behind a load balancer to scale out."""
    import uvicorn  # noqa: PLC0415

    from mlprov.config import RegistryConfig  # noqa: PLC0415
    from mlprov.errors import ConfigError, InvalidInputError  # noqa: PLC0415

    if not 0 < port < 65536:
        raise InvalidInputError(f"--port {port} is not a TCP port (1 to 65535)")
    if not 1 <= workers <= 64:
        raise InvalidInputError(f"--workers {workers}: give 1 to 64 server processes")
    if not 0 <= webhook_interval <= 3600:
        raise InvalidInputError(
            f"--webhook-interval {webhook_interval}: give 0 (off) to 3600 seconds"
        )
    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise InvalidInputError(f"unknown --log-level {log_level[:20]!r}")
    cli = state(ctx)
    config = RegistryConfig.from_environment(cli.home)
    uri = config.resolved_metadata_uri
    if uri.startswith("sqlite") and (
        ":memory:" in uri or uri.rstrip("/") in ("sqlite:", "sqlite:/")
    ):
        raise ConfigError(
            f"metadata store {uri!r} lives in one process's memory: every request would see "
            "another registry; use sqlite:///PATH or postgresql://..."
        )
    if uri.startswith("sqlite") and workers > 1:
        sys.stderr.write(
            "mlprov: warning: SQLite serialises writers: the workers share one database file "
            "on this machine; use PostgreSQL for replicas on several machines\n"
        )
    # Opened once before the workers start: the schema is migrated here, the stores are
    # known to be reachable, and a misconfiguration is one line and exit 2 or 5.
    cli.local_registry(
        "serve", "it serves a database: set MLPROV_REGISTRY to sqlite:///... or postgresql://..."
    ).check_ready()
    cli.close()
    # Each worker builds its app from the environment (uvicorn's factory), so --home
    # and --signing-key must reach it there.
    if cli.home is not None:
        os.environ["MLPROV_HOME"] = str(cli.home)
    os.environ["MLPROV_SERVER_DISPATCH"] = str(webhook_interval)
    from mlprov.server import server_settings_from_environment  # noqa: PLC0415

    server_settings_from_environment()  # a bad MLPROV_SERVER_* is one line now, not per worker
    if signing_key is not None:
        from mlprov.server import resolution_signer_from_environment  # noqa: PLC0415

        os.environ["MLPROV_SIGNING_KEY"] = str(signing_key.absolute())
        resolution_signer_from_environment()  # a bad key is one line now, not per worker
    options: dict[str, Any] = {
        "log_level": log_level,
        "proxy_headers": False,
        "server_header": False,
    }
    from mlprov.server import _workers  # noqa: PLC0415

    if workers == 1:
        _workers.serve_one(host, port, options)
    elif _workers.reuse_port_supported():
        # A socket per worker, so the kernel spreads connections evenly (the module's
        # docstring); elsewhere uvicorn's workers share one socket.
        status = _workers.serve_workers(host, port, workers, options)
        if status:
            raise typer.Exit(status)
    else:
        uvicorn.run(_workers.APP, factory=True, host=host, port=port, workers=workers, **options)


def install(app: typer.Typer) -> None:
    app.command("serve")(serve)
