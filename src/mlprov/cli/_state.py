"""Per-invocation CLI state: global options and the registry opened from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from mlprov.registry import Registry


@dataclass
class CliState:
    home: Path | None = None
    debug: bool = False
    _registry: Registry | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def registry(self) -> Registry:
        """Open the registry named by --home / MLPROV_HOME / MLPROV_REGISTRY (once)."""
        if self._registry is None:
            from mlprov.config import RegistryConfig  # noqa: PLC0415
            from mlprov.registry import open_registry  # noqa: PLC0415

            self._registry = open_registry(RegistryConfig.from_environment(self.home))
        return self._registry


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
