"""``mlprov approve``, ``mlprov approvals``, ``mlprov waive`` and ``mlprov waivers``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlprov.cli._options import (
    IdentityTokenOption,
    JsonOption,
    PassphraseEnvOption,
    SigstoreFlag,
)
from mlprov.cli._output import print_json, print_table, say
from mlprov.cli._state import state


def approve(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="The version approved.")],
    target: Annotated[
        str,
        typer.Option(
            "--for", metavar="ALIAS", help="The alias (or stage:NAME) it is approved for."
        ),
    ],
    comment: Annotated[
        str, typer.Option("--comment", metavar="TEXT", help="What the approver checked.")
    ] = "",
    key: Annotated[
        Path | None, typer.Option("--key", metavar="FILE", help="The approver's key (PEM).")
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", metavar="FILE", help="Signing certificate (PEM) for --key."),
    ] = None,
    sigstore: SigstoreFlag = False,
    identity_token: IdentityTokenOption = None,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign an approval of a version for an alias and store it as evidence."""
    from mlprov.cli._direct import signer_from_options  # noqa: PLC0415

    signer = signer_from_options(
        key=key,
        certificate=certificate,
        certificate_chain=None,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    stored = state(ctx).registry().approve(ref, target, signer, comment=comment)
    if as_json:
        print_json(stored.to_json())
    else:
        say(f"approved {ref} for {target} as {stored.signer} ({stored.digest})")


def approvals(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="The version.")],
    target: Annotated[
        str | None,
        typer.Option("--for", metavar="ALIAS", help="Only approvals for this alias."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the approvals stored with a version (the gate verifies and counts them)."""
    found = state(ctx).registry().approvals(ref, target=target)
    if as_json:
        print_json([a.to_json() for a in found])
        return
    print_table(
        "Approvals",
        ["for", "signer", "when", "comment"],
        ((a.target, a.evidence.signer, a.time, a.comment) for a in found),
    )


def waive(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="The version.")],
    target: Annotated[
        str,
        typer.Option("--for", metavar="ALIAS", help="The alias (or stage:NAME) it is for."),
    ],
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why; signed.")],
    expires: Annotated[
        str, typer.Option("--expires", metavar="DURATION", help="How long: 90m, 24h, 7d.")
    ],
    requirement: Annotated[
        list[str] | None,
        typer.Option(
            "--requirement",
            metavar="ID",
            help="A requirement waived (repeatable; default: every failed one).",
        ),
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", metavar="FILE", help="Your key (PEM).")
    ] = None,
    sigstore: SigstoreFlag = False,
    identity_token: IdentityTokenOption = None,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign one holder's time-limited waiver for moving a version to an alias; the gate
    honours it only when two distinct holders of the policy's waiving role signed it."""
    from mlprov.cli._direct import signer_from_options  # noqa: PLC0415
    from mlprov.registry.waivers import parse_waiver_duration  # noqa: PLC0415

    duration = parse_waiver_duration(expires)
    signer = signer_from_options(
        key=key,
        certificate=None,
        certificate_chain=None,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    stored = (
        state(ctx)
        .registry()
        .waive(
            ref,
            target,
            signer,
            reason=reason,
            expires_in=duration,
            requirements=tuple(requirement or ()),
        )
    )
    if as_json:
        print_json(stored.to_json())
    else:
        say(f"waiver for {ref} -> {target} signed by {stored.signer}, expires in {expires}")


def waivers(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="The version.")],
    as_json: JsonOption = False,
) -> None:
    """List the waivers stored with a version (expired ones too)."""
    found = state(ctx).registry().waivers(ref)
    if as_json:
        print_json([w.to_json() for w in found])
        return
    print_table(
        "Waivers",
        ["for", "requirements", "signer", "expires", "reason"],
        (
            (
                w.target,
                ", ".join(w.requirements) or "(failed)",
                w.evidence.signer,
                w.expires,
                w.reason,
            )
            for w in found
        ),
    )


def install(app: typer.Typer) -> None:
    app.command("approve")(approve)
    app.command("approvals")(approvals)
    app.command("waive")(waive)
    app.command("waivers")(waivers)
