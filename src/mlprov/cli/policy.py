"""``mlprov policy apply|show|lint|check``: the registry's policy set, for release pipelines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import state

if TYPE_CHECKING:
    from mlprov.registry import Judgement

policy_app = typer.Typer(
    help="Policies as code: the registry's active policy set and checks against it.",
    no_args_is_help=True,
)

FolderArgument = Annotated[
    Path, typer.Argument(metavar="DIR", help="Policy folder (*.yaml and the key files they name).")
]


def _read(folder: Path) -> dict[str, bytes]:
    from mlprov.config import DEFAULT_LIMITS  # noqa: PLC0415
    from mlprov.fs import read_folder  # noqa: PLC0415

    return read_folder(folder, max_files=1000, max_file_bytes=DEFAULT_LIMITS.max_document_bytes)


@policy_app.command("lint")
def lint(ctx: typer.Context, folder: FolderArgument, as_json: JsonOption = False) -> None:
    """Check a policy folder strictly (every problem, each naming its file, line and key);
    exit 2 if there is any. Changes nothing."""
    from mlprov.errors import InvalidInputError  # noqa: PLC0415
    from mlprov.policy import lint_policy_set  # noqa: PLC0415

    problems = lint_policy_set(_read(folder))
    if as_json:
        print_json({"ok": not problems, "problems": [str(p) for p in problems]})
    else:
        for problem in problems[1:]:
            print(f"mlprov: {problem}", file=sys.stderr)
    if problems:
        raise InvalidInputError(f"{problems[0]} ({len(problems)} problem(s) in {folder})")
    if not as_json:
        say(f"{folder}: policy set is valid")


@policy_app.command("apply")
def apply(
    ctx: typer.Context,
    folder: FolderArgument,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why; recorded in the audit log.")
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Make a policy folder the registry's active policy set (a new version, audited;
    every later decision records its digest)."""
    stored = state(ctx).registry().apply_policy(_read(folder), reason=reason)
    if as_json:
        print_json(
            {"version": stored.version, "digest": stored.digest, "files": sorted(stored.files)}
        )
    else:
        say(f"policy set version {stored.version} is active: {stored.digest}")


@policy_app.command("show")
def show(
    ctx: typer.Context,
    version: Annotated[
        int | None, typer.Option("--version", metavar="N", help="An earlier version.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The active policy set (or version N): its digest, who applied it and its files."""
    from mlprov.errors import NotFoundError  # noqa: PLC0415

    stored = state(ctx).registry().policy(version)
    if stored is None:
        raise NotFoundError(
            "no policy set has been applied"
            if version is None
            else f"policy set version {version} not found"
        )
    if as_json:
        print_json(
            {
                "version": stored.version,
                "digest": stored.digest,
                "applied_at": stored.applied_at,
                "applied_by": stored.applied_by,
                "reason": stored.reason,
                "files": {
                    name: data.decode("utf-8", "replace") for name, data in stored.files.items()
                },
            }
        )
        return
    say(f"policy set version {stored.version}: {stored.digest}")
    say(
        f"applied {stored.applied_at} by {stored.applied_by}"
        + (f": {stored.reason}" if stored.reason else "")
    )
    for name in sorted(stored.files):
        say(f"  {name} ({len(stored.files[name])} bytes)")


@policy_app.command("check")
def check(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="The candidate version.")],
    target: Annotated[
        str,
        typer.Option("--target", metavar="ALIAS", help="The alias (or stage:NAME) it would move."),
    ],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", metavar="DIR", help="Judge by this folder, not the active set."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="text, json, sarif or junit.")
    ] = "text",
    output: Annotated[
        Path | None,
        typer.Option("--output", metavar="FILE", help="Write the report there (default stdout)."),
    ] = None,
) -> None:
    """Would moving TARGET to REF pass? Exit 0 if it would, 1 if not; changes nothing."""
    files = _read(policy) if policy is not None else None
    cli = state(ctx)
    if cli.client_mode:
        judged = cli.server("policy check").check_policy_remote(ref, target, policy_files=files)
        present_remote_judgement(judged, fmt, output)
        return
    judgement = cli.local_registry("policy check").check_policy(ref, target, policy_files=files)
    present_judgement(judgement, fmt, output)


def present_remote_judgement(judged: dict[str, Any], fmt: str, output: Path | None = None) -> None:
    """A server's judgement (``POST /api/v1/policy/check``) in any format a local check
    has (text, json, sarif, junit), rendered here from the checks the server reports,
    then PolicyDenied (exit 1) when the move would be denied, as for a local check."""
    from mlprov.errors import InvalidInputError, PolicyDenied, StorageError  # noqa: PLC0415
    from mlprov.fs import write_file_atomically  # noqa: PLC0415
    from mlprov.verification import CheckResult, CheckStatus  # noqa: PLC0415
    from mlprov.verification.render import REPORT_FORMATS, render_checks  # noqa: PLC0415

    if fmt not in REPORT_FORMATS:
        raise InvalidInputError(
            f"unknown format {fmt[:40]!r}: use one of {', '.join(REPORT_FORMATS)}"
        )
    report = judged.get("report")
    unreadable = StorageError("the server's policy check report does not parse")
    if not isinstance(report, dict):
        raise unreadable
    try:
        subject = str(report["subject"])
        checks = [
            CheckResult(
                str(c["id"]), CheckStatus(c["status"]), str(c["message"]), str(c["subject"])
            )
            for c in report["checks"]
        ]
    except (KeyError, TypeError, ValueError):
        raise unreadable from None
    text = render_checks(checks, fmt, subject=subject, name="policy check")
    if output is not None:
        write_file_atomically(output, text.encode("utf-8"), what="report")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if not judged.get("allowed"):
        raise PolicyDenied(str(judged.get("message") or "denied"))


def present_judgement(judgement: Judgement, fmt: str, output: Path | None = None) -> None:
    """Print a judgement (verification checks, then the policy's requirements) and raise
    PolicyDenied (exit 1) when the move would be denied."""
    from mlprov.errors import InvalidInputError, PolicyDenied  # noqa: PLC0415
    from mlprov.fs import write_file_atomically  # noqa: PLC0415
    from mlprov.verification.render import REPORT_FORMATS, render_checks  # noqa: PLC0415

    if fmt not in REPORT_FORMATS:
        raise InvalidInputError(
            f"unknown format {fmt[:40]!r}: use one of {', '.join(REPORT_FORMATS)}"
        )
    checks = list(judgement.report.checks)
    if judgement.decision is not None:
        checks.extend(judgement.decision.checks)
    text = render_checks(checks, fmt, subject=judgement.report.subject, name="policy check")
    if output is not None:
        write_file_atomically(output, text.encode("utf-8"), what="report")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if not judgement.allowed:
        decision = judgement.decision
        raise PolicyDenied(decision.message if decision is not None else "denied")


def install(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
