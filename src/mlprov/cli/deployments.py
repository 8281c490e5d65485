"""``mlprov deployment create|release|show|list``: named bundles of pinned model versions.

Aliases of deployments move with ``mlprov alias set NAME ALIAS VERSION``, and ``verify``
and ``pull`` take deployment references (``search-stack/1``, ``search-stack@production``):
a name is a model or a deployment, never both (docs/deployments.md). Every command
works against a server too (MLPROV_REGISTRY=http(s)://..., docs/client.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli._options import (
    IdentityTokenOption,
    JsonOption,
    PassphraseEnvOption,
    ReasonOption,
    SigstoreFlag,
    WideOption,
    parse_pairs,
)
from mlprov.cli._output import print_json, print_table, say, short_digest, short_time
from mlprov.cli._state import state
from mlprov.errors import InvalidInputError

if TYPE_CHECKING:
    from mlprov.client import RemoteDeploymentPull
    from mlprov.refs import ModelRef
    from mlprov.signing import Trust

deployment_app = typer.Typer(
    help="Deployments: numbered, signed bundles of pinned model versions by role.",
    no_args_is_help=True,
)


@deployment_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The deployment's name.")],
    description: Annotated[
        str, typer.Option("--description", metavar="TEXT", help="What it serves.")
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a deployment (exit 3 if NAME is taken by a model or a deployment)."""
    made = state(ctx).registry().create_deployment(name, description=description)
    if as_json:
        print_json(made.to_json())
    else:
        say(f"created deployment {made.name}")


@deployment_app.command("release")
def release(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The deployment.")],
    members: Annotated[
        list[str],
        typer.Argument(metavar="MEMBER...", help="The members, ROLE=MODEL/VERSION, one per role."),
    ],
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", metavar="KEY=VALUE", help="Free metadata (repeatable)."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", metavar="FILE", help="The signer's private key (PEM)."),
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", metavar="FILE", help="Signing certificate (PEM) for --key."),
    ] = None,
    sigstore: SigstoreFlag = False,
    identity_token: IdentityTokenOption = None,
    passphrase_env: PassphraseEnvOption = None,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Release the next version of NAME: the members pinned by their manifest digests,
    listed in a signed bundle statement (in-toto), and the metadata.

    Against a server the statement is made by the server, checked and signed here, and
    stored by the server only if it is still exactly that statement."""
    from mlprov.cli._direct import signer_from_options  # noqa: PLC0415
    from mlprov.registry.deployments import parse_members  # noqa: PLC0415

    pinned = parse_members(members)
    metadata = parse_pairs(meta, "metadata", typed=False)
    registry = state(ctx).registry()
    signer = signer_from_options(
        key=key,
        certificate=certificate,
        certificate_chain=None,
        sigstore=sigstore,
        identity_token=identity_token,
        passphrase_env=passphrase_env,
    )
    made = registry.release_deployment(name, pinned, signer, metadata=metadata, reason=reason)
    if as_json:
        print_json(made.to_json())
    else:
        roles = ", ".join(f"{m.role}={m.ref}" for m in made.members)
        say(f"released {made.ref}: {roles} (signed by {made.signer})")


@deployment_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="NAME, NAME/VERSION or NAME@ALIAS.")],
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """A deployment (its aliases and versions), or one version's members and metadata."""
    registry = state(ctx).registry()
    if "/" not in ref and "@" not in ref:
        found = registry.get_deployment(ref)
        versions = registry.deployment_versions(ref)
        if as_json:
            print_json({**found.to_json(), "versions": [v.to_json() for v in versions]})
            return
        say(f"deployment {found.name}: {found.description or '(no description)'}")
        if found.aliases:
            say("aliases: " + ", ".join(f"{a}={n}" for a, n in sorted(found.aliases.items())))
        print_table(
            "Versions",
            ["version", "members", "created", "by"],
            (
                (
                    v.version,
                    [f"{m.role}={m.ref}" for m in v.members],
                    short_time(v.created_at, wide=wide),
                    v.created_by,
                )
                for v in versions
            ),
            wide=wide,
        )
        return
    version = registry.deployment_version(ref)
    if as_json:
        print_json(version.to_json())
        return
    say(f"{version.ref}: signed by {version.signer}, bundle {version.bundle_digest}")
    print_table(
        "Members",
        ["role", "version", "digest"],
        ((m.role, m.ref, short_digest(m.digest, wide=wide)) for m in version.members),
        wide=wide,
    )
    if version.meta:
        print_table("Metadata", ["key", "value"], sorted(version.meta.items()), wide=wide)


@deployment_app.command("list")
def list_deployments(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every deployment with its latest version and aliases."""
    found = state(ctx).registry().list_deployments()
    if as_json:
        print_json([d.to_json() for d in found])
        return
    print_table(
        "Deployments",
        ["name", "latest", "aliases"],
        (
            (
                d.name,
                d.latest_version if d.latest_version is not None else "-",
                ", ".join(f"{a}={n}" for a, n in sorted(d.aliases.items())),
            )
            for d in found
        ),
    )


def verify_on_server(
    ctx: typer.Context, ref: ModelRef, trust: Trust, *, local_copy: Path | None, as_json: bool
) -> None:
    """``mlprov verify DEPLOYMENT/N --key ...`` against a server: the checks run here
    (:meth:`mlprov.client.HttpRegistry.verify_deployment`), rendered as a local
    ``verify`` of a deployment renders them; exit 1 if one failed."""
    from mlprov.errors import VerificationError  # noqa: PLC0415
    from mlprov.verification.render import render_checks  # noqa: PLC0415

    if local_copy is not None:
        raise InvalidInputError(
            f"{ref} is a deployment: --path verifies a local copy of one model version"
        )
    report = state(ctx).server("verify").verify_deployment(ref, trust).report
    text = render_checks(report.checks, "json" if as_json else "text", subject=str(ref))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    failures = report.failures
    if failures:
        raise VerificationError(
            f"{report.subject}: {failures[0].id} ({failures[0].subject}): {failures[0].message}"
        )


def present_remote_pull(pulled: RemoteDeploymentPull, ref: str, as_json: bool) -> None:
    """What ``mlprov pull DEPLOYMENT@ALIAS`` installed from a server, as locally."""
    if as_json:
        print_json(
            {
                "ref": pulled.version.ref,
                "bundle_digest": pulled.version.bundle_digest,
                "members": [m.to_json() for m in pulled.version.members],
                "path": str(pulled.path),
                "policy_digest": pulled.policy_digest,
                "checks": [c.to_json() for c in pulled.report.checks],
            }
        )
        return
    roles = ", ".join(f"{m.role}={m.ref}" for m in pulled.version.members)
    say(
        f"pulled {ref} -> {pulled.version.ref} ({roles}) to {pulled.path} (bundle and "
        f"members verified here; server's policy {pulled.policy_digest} allowed it)"
    )


def install(app: typer.Typer) -> None:
    app.add_typer(deployment_app, name="deployment")
