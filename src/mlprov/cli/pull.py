"""``mlprov pull NAME@ALIAS --to DIR``: what a serving container runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli._options import JsonOption
from mlprov.cli._output import print_json, say
from mlprov.cli._state import CliState, state
from mlprov.errors import InvalidInputError
from mlprov.refs import ModelRef

if TYPE_CHECKING:
    from mlprov.registry import PulledDeployment
    from mlprov.serving import Resolution
    from mlprov.signing import Trust


def pull(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(metavar="NAME@ALIAS", help="The alias to serve (models:/ or short).")
    ],
    to: Annotated[Path, typer.Option("--to", metavar="DIR", help="Where to install it.")],
    resolution: Annotated[
        Path | None,
        typer.Option(
            "--resolution",
            metavar="FILE",
            help="The registry's signed resolution (`resolve --signed`): install only what it "
            "names, refusing an older or expired one.",
        ),
    ] = None,
    registry_key: Annotated[
        Path | None,
        typer.Option(
            "--registry-key",
            metavar="PUB",
            help="The registry's public key (PEM) resolutions are signed by; against a "
            "server the signed resolution is fetched from it.",
        ),
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state",
            metavar="FILE",
            help="Where the highest generation seen is kept "
            "(default $MLPROV_HOME/resolutions.json).",
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", metavar="FILE", help="Against a server: the signer's public key (PEM)."
        ),
    ] = None,
    certificate_chain: Annotated[
        list[Path] | None,
        typer.Option(
            "--certificate-chain",
            metavar="FILE",
            help="Against a server: the signer's root or CA certificate (PEM, repeatable).",
        ),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(
            "--identity", metavar="IDENTITY", help="Against a server: the Sigstore identity."
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option("--issuer", metavar="URL", help="OIDC issuer of the Sigstore identity."),
    ] = None,
    no_sync: Annotated[
        bool,
        typer.Option(
            "--no-sync",
            help="Do not fsync the installed files: for a volume a crash discards anyway "
            "(a pod's emptyDir). Every byte is still verified.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Resolve the alias once, verify the version with the registry's trust and the
    alias's policy, and only then install it (with model.sig) atomically at DIR.

    With --resolution and --registry-key the alias is resolved by the signed statement:
    it must verify with the registry's key, name what the registry resolves now, and be
    no older than the newest one seen (--state); otherwise nothing is installed.

    Against a server (MLPROV_REGISTRY=http(s)://...) the server's gate judges the alias's
    policy and the model signature is verified here, against the trust option given
    (--key, --certificate-chain, or --identity with --issuer), which is required there;
    with --registry-key the server's signed resolution is fetched and checked first.

    The install is durable (every file and folder fsynced) unless --no-sync is given.
    """
    cli = state(ctx)
    sync = not no_sync
    given = any((key, certificate_chain, identity, issuer))
    if cli.client_mode:
        _pull_from_server(
            cli,
            ref,
            to,
            (key, certificate_chain, identity, issuer),
            resolution=resolution,
            registry_key=registry_key,
            state_file=state_file,
            as_json=as_json,
            sync=sync,
        )
        return
    if given:
        raise InvalidInputError(
            "--key, --certificate-chain, --identity and --issuer are for pulling from a "
            "server; locally the registry's active policy set is the trust"
        )
    signed = None
    if resolution is None:
        if registry_key is not None or state_file is not None:
            raise InvalidInputError("--registry-key and --state go with --resolution FILE")
        registry = cli.local_registry("pull")
        if registry.is_deployment(ModelRef.parse(ref).name):
            _present_deployment(registry.pull_deployment(ref, to, sync=sync), ref, as_json)
            return
        pulled = registry.pull(ref, to, sync=sync)
    else:
        from mlprov.serving import ResolutionState  # noqa: PLC0415
        from mlprov.signing import read_signature_file  # noqa: PLC0415

        trust = _registry_trust(registry_key)
        registry = cli.local_registry("pull")
        statement = read_signature_file(resolution, registry.limits)
        pulled, signed = registry.pull_resolved(
            ref, to, statement, trust, ResolutionState(_state_path(cli, state_file)), sync=sync
        )
    if as_json:
        decision = pulled.judgement.decision
        print_json(
            {
                "ref": pulled.version.ref,
                "digest": pulled.version.digest,
                "path": str(pulled.path),
                "policy_digest": pulled.judgement.policy_digest,
                "decision": decision.to_json() if decision is not None else None,
                "resolution": signed.to_json() if signed is not None else None,
            }
        )
    else:
        how = f"; resolution generation {signed.generation}" if signed is not None else ""
        say(
            f"pulled {ref} -> {pulled.version.ref} {pulled.version.digest} to {pulled.path} "
            f"(verified; policy {pulled.judgement.policy_digest}{how})"
        )


def _registry_trust(registry_key: Path | None) -> Trust:
    from mlprov.cli._direct import trust_from_options  # noqa: PLC0415

    if registry_key is None:
        raise InvalidInputError("--resolution needs the registry's public key: --registry-key")
    return trust_from_options(key=registry_key, certificate_chain=None, identity=None, issuer=None)


def _state_path(cli: CliState, state_file: Path | None) -> Path:
    if state_file is not None:
        return state_file
    # Beside the registry the command opened (--home or MLPROV_HOME).
    from mlprov.config import default_home  # noqa: PLC0415
    from mlprov.serving import DEFAULT_STATE_NAME  # noqa: PLC0415

    return (cli.home or default_home()) / DEFAULT_STATE_NAME


def _pull_from_server(
    cli: CliState,
    ref: str,
    to: Path,
    trust_options: tuple[Path | None, list[Path] | None, str | None, str | None],
    *,
    resolution: Path | None,
    registry_key: Path | None,
    state_file: Path | None,
    as_json: bool,
    sync: bool,
) -> None:
    import os  # noqa: PLC0415

    from mlprov.cli._direct import trust_from_options  # noqa: PLC0415

    key, certificate_chain, identity, issuer = trust_options
    if not any(trust_options):
        raise InvalidInputError(
            "pull against a server verifies the signature here: give the signer's trust "
            "(--key, --certificate-chain, or --identity with --issuer)"
        )
    trust = trust_from_options(
        key=key, certificate_chain=certificate_chain, identity=identity, issuer=issuer
    )
    server = cli.server("pull")
    if server.is_deployment(ModelRef.parse(ref).name):
        from mlprov.cli.deployments import present_remote_pull  # noqa: PLC0415

        if registry_key is not None or resolution is not None or state_file is not None:
            raise InvalidInputError(
                f"{ref} is a deployment: signed resolutions (--resolution, --registry-key, "
                "--state) name model versions only"
            )
        present_remote_pull(server.pull_deployment(ref, to, trust, sync=sync), ref, as_json)
        return
    if registry_key is None and os.environ.get("MLPROV_REGISTRY_KEY"):
        registry_key = Path(os.environ["MLPROV_REGISTRY_KEY"])
    resolution_check = None
    if registry_key is not None or resolution is not None or state_file is not None:
        from mlprov.client import ResolutionCheck  # noqa: PLC0415
        from mlprov.serving import ResolutionState  # noqa: PLC0415

        registry_trust = _registry_trust(registry_key)
        statement = None
        if resolution is not None:
            from mlprov.signing import read_signature_file  # noqa: PLC0415

            statement = read_signature_file(resolution)
        resolution_check = ResolutionCheck(
            registry_trust, ResolutionState(_state_path(cli, state_file)), statement
        )
    remote = server.pull(ref, to, trust, resolution=resolution_check, sync=sync)
    signer = str(remote.install.signature.signer)
    signed: Resolution | None = remote.resolution
    if as_json:
        print_json(
            {
                "ref": remote.version.ref,
                "digest": remote.version.digest,
                "path": str(remote.path),
                "policy_digest": remote.policy_digest,
                "verified_signer": signer,
                "resolution": signed.to_json() if signed is not None else None,
            }
        )
    else:
        how = f"; resolution generation {signed.generation}" if signed is not None else ""
        say(
            f"pulled {ref} -> {remote.version.ref} {remote.version.digest} to "
            f"{remote.path} (signature by {signer} verified here; server's policy "
            f"{remote.policy_digest} allowed it{how})"
        )


def install(app: typer.Typer) -> None:
    app.command("pull")(pull)


def _present_deployment(pulled: PulledDeployment, ref: str, as_json: bool) -> None:
    decision = pulled.judgement.decision
    if as_json:
        print_json(
            {
                "ref": pulled.version.ref,
                "bundle_digest": pulled.version.bundle_digest,
                "members": [m.to_json() for m in pulled.version.members],
                "path": str(pulled.path),
                "policy_digest": pulled.judgement.policy_digest,
                "decision": decision.to_json() if decision is not None else None,
            }
        )
        return
    roles = ", ".join(f"{m.role}={m.ref}" for m in pulled.version.members)
    say(f"pulled {ref} -> {pulled.version.ref} ({roles}) to {pulled.path}")
