"""``mlprov webhook add|list|remove|deliveries|redeliver|dispatch``."""

from __future__ import annotations

from typing import Annotated

import typer

from mlprov.cli._options import JsonOption, WideOption
from mlprov.cli._output import print_json, print_table, say, short_time
from mlprov.cli._state import state

webhook_app = typer.Typer(
    help="Webhooks: registry events POSTed, signed, to subscribed URLs.", no_args_is_help=True
)

#: Subscriptions hold signing secrets and the dispatcher reads the outbox: both live
#: where the database is.
_WEBHOOKS_WHY = "webhooks are managed where the registry's database is (docs/webhooks.md)"


def _split(values: list[str]) -> list[str]:
    """``--events a,b --events c`` -> ``[a, b, c]``."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@webhook_app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST (http or https).")],
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            metavar="EVENTS",
            help="Event types to send, comma-separated (default: all).",
        ),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models", metavar="PATTERN", help="Only events about models matching (repeatable)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe URL to registry events; prints the signing secret, once (audited)."""
    created = (
        state(ctx)
        .local_registry("webhook add", _WEBHOOKS_WHY)
        .add_webhook(url, events=_split(events or []), models=_split(models or []))
    )
    if as_json:
        print_json({**created.to_json(), "secret": created.secret})
        return
    say(f"webhook {created.id} added: {created.url}")
    say(f"secret (shown once, keep it to verify X-Mlprov-Signature): {created.secret}")


@webhook_app.command("list")
def list_webhooks(
    ctx: typer.Context,
    removed: Annotated[bool, typer.Option("--removed", help="Include removed webhooks.")] = False,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List the webhooks (never their secrets)."""
    found = (
        state(ctx).local_registry("webhook list", _WEBHOOKS_WHY).webhooks(include_removed=removed)
    )
    if as_json:
        print_json([w.to_json() for w in found])
        return
    print_table(
        "Webhooks",
        ["id", "url", "events", "models", "active", "created"],
        (
            (
                w.id,
                w.url,
                ", ".join(w.events) or "all",
                ", ".join(w.models) or "all",
                "yes" if w.active else "no",
                short_time(w.created_at, wide=wide),
            )
            for w in found
        ),
        wide=wide,
    )


@webhook_app.command("remove")
def remove(
    ctx: typer.Context,
    webhook_id: Annotated[int, typer.Argument(metavar="ID", help="The webhook's id.")],
    as_json: JsonOption = False,
) -> None:
    """Remove a webhook: nothing more is sent to it; pending deliveries end (audited)."""
    removed = state(ctx).local_registry("webhook remove", _WEBHOOKS_WHY).remove_webhook(webhook_id)
    if as_json:
        print_json(removed.to_json())
    else:
        say(f"webhook {removed.id} removed: {removed.url}")


@webhook_app.command("deliveries")
def list_deliveries(
    ctx: typer.Context,
    webhook: Annotated[
        int | None, typer.Option("--webhook", metavar="ID", help="Only this webhook's.")
    ] = None,
    delivery_state: Annotated[
        str | None,
        typer.Option("--state", metavar="STATE", help="Only pending, delivered or failed."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", help="Only the newest N.")
    ] = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """The delivery log: each event sent to each webhook, its attempts and last result."""
    found = (
        state(ctx)
        .local_registry("webhook deliveries", _WEBHOOKS_WHY)
        .webhook_deliveries(webhook_id=webhook, state=delivery_state, limit=limit)
    )
    if as_json:
        print_json([d.to_json() for d in found])
        return
    print_table(
        "Deliveries",
        ["id", "webhook", "type", "seq", "state", "tries", "last", "error"],
        (
            (
                d.id,
                d.subscription_id,
                d.event_type,
                d.audit_seq,
                d.state,
                d.attempts,
                d.last_status if d.last_status is not None else "",
                d.last_error or "",
            )
            for d in found
        ),
        wide=wide,
    )


@webhook_app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    delivery_id: Annotated[int, typer.Argument(metavar="DELIVERY_ID", help="A delivery's id.")],
    as_json: JsonOption = False,
) -> None:
    """Send a delivered or failed delivery's event again, as a new delivery (audited)."""
    new = state(ctx).local_registry("webhook redeliver", _WEBHOOKS_WHY).redeliver(delivery_id)
    if as_json:
        print_json(new.to_json())
    else:
        say(
            f"delivery {new.id} queued: event {new.event_id} again to webhook {new.subscription_id}"
        )


@webhook_app.command("dispatch")
def dispatch(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", metavar="SECONDS", help="Seconds between passes.")
    ] = 2.0,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Each POST's timeout.")
    ] = 10.0,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", metavar="N", help="Tries before a delivery fails.")
    ] = 8,
    as_json: JsonOption = False,
) -> None:
    """Deliver pending webhooks: fan out new events, POST due deliveries, retry failures
    (until interrupted, or one pass with --once). Safe to run beside other dispatchers."""
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from mlprov.errors import InvalidInputError  # noqa: PLC0415
    from mlprov.events import WebhookSettings  # noqa: PLC0415
    from mlprov.registry import Dispatcher  # noqa: PLC0415

    if interval <= 0:
        raise InvalidInputError("--interval must be positive")
    settings = WebhookSettings(timeout=timeout, max_attempts=max_attempts)
    dispatcher = Dispatcher(state(ctx).local_registry("webhook dispatch", _WEBHOOKS_WHY), settings)
    if once:
        report = dispatcher.run_once()
        if as_json:
            print_json(report.to_json())
        else:
            say(_summary(report.to_json()))
        return
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    say(f"dispatching webhooks every {interval:g} s as {dispatcher.name}; Ctrl-C stops")
    dispatcher.run_forever(stop, interval)


def _summary(report: dict[str, int]) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in report.items())


def install(app: typer.Typer) -> None:
    app.add_typer(webhook_app, name="webhook")
