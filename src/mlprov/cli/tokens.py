"""``mlprov token create|list|revoke``: bearer tokens for the registry's server."""

from __future__ import annotations

from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, WideOption
from mlprov.cli._output import note, print_json, print_table, say, short_time
from mlprov.cli._state import state

#: Tokens are made where the database is: a token must not be able to mint tokens.
_TOKENS_WHY = "tokens are managed where the registry's database is (docs/server.md)"

token_app = typer.Typer(
    help="Bearer tokens: a role on model name patterns (docs/tokens.md).", no_args_is_help=True
)


@token_app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[
        str,
        typer.Option(
            "--role",
            metavar="ROLE",
            help="reader, publisher, evaluator, approver, promoter or admin.",
        ),
    ],
    name: Annotated[
        str, typer.Option("--name", metavar="NAME", help="Who or what holds it (ci-publisher).")
    ],
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            metavar="PATTERN",
            help="Model names it applies to (fnmatch: credit-*); repeat for more; default *.",
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", metavar="DURATION", help="Lifetime: 90m, 24h, 30d (default: never)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, once: only its SHA-256 is stored."""
    from mlprov.durations import parse_duration  # noqa: PLC0415

    registry = state(ctx).local_registry("token create", _TOKENS_WHY)
    lifetime = parse_duration(expires) if expires is not None else None
    issued = registry.create_token(
        role, name=name, models=tuple(models or ("*",)), expires=lifetime
    )
    note("the token's secret is shown only this once: store it now, it cannot be shown again")
    if as_json:
        print_json(issued.to_json())
        return
    token = issued.token
    until = f", expires {token.expires_at}" if token.expires_at else ", never expires"
    note(
        f"created {token.id} ({token.name}, role {token.role}, models "
        f"{', '.join(token.models)}{until})"
    )
    # The secret alone on stdout, so `SECRET=$(mlprov token create ...)` captures it.
    say(issued.secret)


def _when(at: str, *, wide: bool) -> str:
    # The day is what a reader of this table needs (80 columns fit seven columns then);
    # --wide and --json give the exact time.
    return short_time(at, wide=True) if wide else at[:10]


@token_app.command("list")
def list_tokens(ctx: typer.Context, as_json: JsonOption = False, wide: WideOption = False) -> None:
    """List every token (never a secret): role, models, created, expires, state."""
    found = state(ctx).local_registry("token list", _TOKENS_WHY).tokens()
    if as_json:
        print_json([t.to_json() for t in found])
        return
    print_table(
        "Tokens",
        ["id", "name", "role", "models", "created", "expires", "state"],
        (
            (
                t.id,
                t.name,
                t.role,
                list(t.models),
                _when(t.created_at, wide=wide),
                _when(t.expires_at, wide=wide) if t.expires_at else "never",
                t.state(),
            )
            for t in found
        ),
        wide=wide,
    )


@token_app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (tok_...).")],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why; recorded in the audit log.")
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Revoke a token: it never authenticates again (audited)."""
    revoked = (
        state(ctx).local_registry("token revoke", _TOKENS_WHY).revoke_token(token_id, reason=reason)
    )
    if as_json:
        print_json(revoked.to_json())
    else:
        say(f"revoked {revoked.id} ({revoked.name}): {revoked.revoke_reason}")


def install(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
