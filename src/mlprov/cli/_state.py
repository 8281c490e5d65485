"""Per-invocation CLI state: global options and the registry opened from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.errors import InvalidInputError

if TYPE_CHECKING:
    from mlprov.client import HttpRegistry
    from mlprov.registry import Registry, RegistryApi


def _server_uri() -> str | None:
    """``MLPROV_REGISTRY`` when it names a server (client mode), else None."""
    from mlprov.config import is_server_uri  # noqa: PLC0415

    uri = os.environ.get("MLPROV_REGISTRY")
    return uri if is_server_uri(uri) else None


@dataclass
class CliState:
    home: Path | None = None
    debug: bool = False
    _registry: RegistryApi | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    @property
    def client_mode(self) -> bool:
        """Whether MLPROV_REGISTRY names a server (http:// or https://)."""
        return _server_uri() is not None

    def registry(self) -> RegistryApi:
        """The registry named by --home / MLPROV_HOME / MLPROV_REGISTRY (opened once): a
        server's HTTP client when MLPROV_REGISTRY is http(s)://, else the local stores."""
        if self._registry is None:
            if self.client_mode:
                from mlprov.client import connect  # noqa: PLC0415

                self._registry = connect()
            else:
                self._registry = self._open_local()
        return self._registry

    def server(self, command: str) -> HttpRegistry:
        """The server's HTTP client, for a command whose client-mode path differs."""
        from mlprov.client import HttpRegistry  # noqa: PLC0415

        found = self.registry()
        if not isinstance(found, HttpRegistry):  # pragma: no cover - callers check first
            raise InvalidInputError(f"mlprov {command} needs MLPROV_REGISTRY=http(s)://...")
        return found

    def local_registry(self, command: str, why: str = "") -> Registry:
        """The local registry, for a command that has no HTTP implementation yet: in
        client mode it fails in one line (exit 2) before anything is done."""
        from mlprov.registry import Registry  # noqa: PLC0415

        if self.client_mode:
            raise InvalidInputError(
                f"mlprov {command} is not available against a server yet: "
                + (why or "run it where the registry's database is (docs/client.md)")
            )
        found = self.registry()
        assert isinstance(found, Registry)
        return found

    def _open_local(self) -> Registry:
        from mlprov.config import RegistryConfig  # noqa: PLC0415
        from mlprov.registry import open_registry  # noqa: PLC0415

        return open_registry(RegistryConfig.from_environment(self.home))


def _print_version(value: bool) -> None:
    if value:
        from mlprov._version import __version__  # noqa: PLC0415

        print(f"mlprov {__version__}")
        raise typer.Exit


def root_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="MLPROV_HOME",
            metavar="DIR",
            help="Registry folder (default ~/.mlprov).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            expose_value=False,
            callback=_print_version,
            help="Print mlprov's version and exit.",
        ),
    ] = False,
) -> None:
    # The callback of the root command (no docstring: the app's help is the root's help).
    ctx.obj = CliState(home=home, debug=debug)
    # Close database connections when the command ends, whether it succeeded or failed.
    ctx.call_on_close(ctx.obj.close)


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # pragma: no cover - only when called outside main()
        obj = CliState()
        ctx.find_root().obj = obj
    return obj
