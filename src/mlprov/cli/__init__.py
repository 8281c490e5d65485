"""The ``mlprov`` command line: a thin layer that parses, calls the registry service, presents.

Each command group lives in its own module and registers itself on :data:`app` in
:func:`_register_commands`. Heavy imports (SQLAlchemy, cryptography, sigstore) stay
inside the command functions so that ``mlprov verify`` starts fast in serving containers.
Typer itself (and the pydantic it builds each parameter with) is imported only when
:data:`app` is first used: ``verify PATH --key ...`` and ``sign PATH --key ...`` run
without it (:func:`mlprov.cli._direct.run_simple_form`). A command named on the command
line builds only its own module's parsers (:data:`COMMAND_MODULES`); root help,
``--version``, completion and unknown names build them all.

Errors: every :class:`~mlprov.errors.MlprovError` becomes one line on stderr and its exit
code (0 ok, 1 verification or policy failure, 2 usage or bad input, 3 conflict,
4 not found, 5 storage or IO). Any other exception is a bug in mlprov: it too is one line,
``mlprov: internal error: ...``, with exit 70 (``EX_SOFTWARE`` of sysexits.h). A
traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mlprov.errors import EXIT_INVALID, EXIT_STORAGE, MlprovError

if TYPE_CHECKING:
    import typer

__all__ = ["COMMAND_MODULES", "EXIT_INTERNAL", "app", "invoked_module", "main"]

#: An exception mlprov did not expect (a bug): ``EX_SOFTWARE`` of sysexits.h.
EXIT_INTERNAL = 70

#: ``-h`` works wherever ``--help`` does; sub-commands inherit it from the root context.
_CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


#: Each command group's module, in the order ``mlprov --help`` lists them.
_MODULES = (
    "models",
    "versions",
    "register",
    "signing",
    "keys",
    "alias",
    "resolve",
    "stage",
    "download",
    "lineage",
    "evidence",
    "approvals",
    "diff",
    "revocation",
    "policy",
    "pull",
    "installed",
    "status",
    "gc",
    "audit",
    "tokens",
    "serve",
    "webhooks",
    "deployments",
    "transfer",
    "demo",
)

#: The module that installs each top-level command or group: running one builds only
#: that module's parsers, not every command's (ADR 0049). A test checks this table
#: against the full build.
COMMAND_MODULES = {
    "models": "models",
    "versions": "versions",
    "register": "register",
    "sign": "signing",
    "verify": "signing",
    "keys": "keys",
    "alias": "alias",
    "resolve": "resolve",
    "stage": "stage",
    "download": "download",
    "lineage": "lineage",
    "provenance": "evidence",
    "bom": "evidence",
    "card": "evidence",
    "attest": "evidence",
    "attach": "evidence",
    "evidence": "evidence",
    "approve": "approvals",
    "approvals": "approvals",
    "waive": "approvals",
    "waivers": "approvals",
    "diff": "diff",
    "rebuild-check": "diff",
    "revoke": "revocation",
    "revocations": "revocation",
    "policy": "policy",
    "pull": "pull",
    "check-installed": "installed",
    "status": "status",
    "gc": "gc",
    "audit": "audit",
    "token": "tokens",
    "serve": "serve",
    "webhook": "webhooks",
    "deployment": "deployments",
    "export": "transfer",
    "import": "transfer",
    "promote": "transfer",
    "demo": "demo",
}


def _build_app(modules: tuple[str, ...] = _MODULES) -> typer.Typer:
    import typer  # noqa: PLC0415

    from mlprov.cli._help import HelpGroup, use_help_classes  # noqa: PLC0415
    from mlprov.cli._state import root_options  # noqa: PLC0415

    app = typer.Typer(
        name="mlprov",
        cls=HelpGroup,
        help="A model registry where every version is hashed, signed and carries provenance.",
        no_args_is_help=True,
        add_completion=True,
        context_settings=_CONTEXT_SETTINGS,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(root_options)
    _register_commands(app, modules)
    use_help_classes(app)
    return app


def _register_commands(app: typer.Typer, modules: tuple[str, ...]) -> None:
    # Imported here, not at the top, so each module can import `app` helpers freely.
    import importlib  # noqa: PLC0415

    for name in modules:
        importlib.import_module(f"mlprov.cli.{name}").install(app)


def invoked_module(args: list[str]) -> str | None:
    """The module of the command ``args`` names right after the root options, or None
    (root help, ``--version``, an unknown name, shell completion): then the full app is
    built, so its listing and its errors are the usual ones."""
    import os  # noqa: PLC0415

    if "_MLPROV_COMPLETE" in os.environ:
        return None
    words = iter(args)
    for word in words:
        if word == "--debug" or word.startswith("--home="):
            continue
        if word == "--home":
            next(words, None)
            continue
        return COMMAND_MODULES.get(word)
    return None


def __getattr__(name: str) -> typer.Typer:
    # `app` is built on first use (PEP 562), then is an ordinary module attribute.
    if name == "app":
        app = _build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], ...]:
    """(exit, abort, usage error) classes of Typer and of every click it may raise from.

    Typer 0.29 ships its own click (``typer._click``) and raises its exceptions; older
    Typer raises the ``click`` package's. All are caught so a usage error is one line.
    """
    import importlib  # noqa: PLC0415

    import typer  # noqa: PLC0415 - Typer loads only for commands that need it

    exits: list[type[BaseException]] = [typer.Exit]
    aborts: list[type[BaseException]] = [typer.Abort]
    usage: list[type[BaseException]] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        exits.extend(c for c in (getattr(module, "Exit", None),) if c is not None)
        aborts.extend(c for c in (getattr(module, "Abort", None),) if c is not None)
        usage.extend(c for c in (getattr(module, "ClickException", None),) if c is not None)
    return tuple(exits), tuple(aborts), tuple(usage)


def _run_typer(args: list[str], app: typer.Typer | None = None) -> int:
    exits, aborts, usage_errors = _click_exceptions()
    if app is None:
        module = invoked_module(args)
        app = _build_app((module,)) if module is not None else __getattr__("app")
    try:
        result = app(args=args, prog_name="mlprov", standalone_mode=False)
    except exits as e:
        return int(getattr(e, "exit_code", 0))
    except SystemExit as e:
        # Typer's --show-completion / --install-completion and shell completion exit so.
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        raise
    except aborts:
        print("mlprov: aborted", file=sys.stderr)
        return 130
    except usage_errors as e:
        context = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and context is not None:
            print(context.get_help())  # a bare group: show what it offers
            return EXIT_INVALID
        # One line naming the problem and where to read more: no usage block, no traceback.
        formatter = getattr(e, "format_message", None)
        message = " ".join(str(formatter() if callable(formatter) else e).split())
        where = f"{context.command_path} --help" if context is not None else "mlprov --help"
        print(f"mlprov: error: {message} (see {where})", file=sys.stderr)
        return EXIT_INVALID
    return int(result) if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlprov`` console script; returns the process exit code."""
    from mlprov.cli._direct import run_simple_form  # noqa: PLC0415

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # `verify PATH --key ...` and `sign PATH --key ...` skip Typer (0.35 s of start-up).
        if run_simple_form(args):
            return 0
        return _run_typer(args)
    except MlprovError as e:
        if debug:
            raise
        print(f"mlprov: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("mlprov: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        # An IO failure the service did not translate is still a storage error, not a crash.
        if debug:
            raise
        print(f"mlprov: error: {e.strerror or e}", file=sys.stderr)
        return EXIT_STORAGE
    except Exception as e:
        # Every failure mlprov expects is an MlprovError; anything else is a bug. Still one
        # line (the README promises one-line errors), and --debug shows where it came from.
        if debug:
            raise
        lines = str(e).strip().splitlines()
        detail = f": {lines[0].strip()}" if lines else ""
        print(
            f"mlprov: internal error: {type(e).__name__}{detail} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
