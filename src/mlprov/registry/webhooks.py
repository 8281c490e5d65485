"""Webhooks: subscriptions, the delivery log, and the dispatcher that empties the outbox.

Registry operations never deliver anything: their :class:`~mlprov.registry._unit.Mutation`
writes an outbox row with the audit entry, and that is all (so a slow or failing
receiver can never slow or fail an operation). Delivery is this module's dispatcher, in
three short steps per pass, none of which holds a transaction across the network:

1. **fan out**: each undispatched outbox event is marked dispatched by compare-and-set
   and gets one pending delivery per active subscription that wants it, in one
   transaction;
2. **claim**: due pending deliveries are claimed by compare-and-set on their state,
   due time and lapsed claim, so two dispatchers (two server replicas) never hold the
   same delivery at once;
3. **send and record**: each claimed delivery is POSTed, signed, outside any transaction
   (:class:`mlprov.events.WebhookPoster`); then its result is written if the claim is
   still this dispatcher's: delivered on 2xx, else retried after an exponential, jittered
   back-off, until ``max_attempts`` tries make it failed.

Delivery is at least once: a dispatcher that dies between a POST and its record leaves
the claim to lapse and the delivery to be sent again. Receivers deduplicate by the event
id (or ``X-Mlprov-Delivery``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from mlprov.errors import ConflictError, InvalidInputError, MlprovError, NotFoundError
from mlprov.events import (
    DeliveryOutcome,
    WebhookPoster,
    WebhookSettings,
    backoff_delay,
    check_event_types,
    check_model_patterns,
    check_webhook_url,
    new_secret,
    subscription_matches,
)
from mlprov.registry._context import RegistryContext, utc_text
from mlprov.registry._unit import mutation
from mlprov.store.webhooks import (
    DELIVERY_STATES,
    ClaimedDelivery,
    OutboxEvent,
    WebhookDelivery,
    WebhookSubscription,
)

__all__ = [
    "DispatchReport",
    "Dispatcher",
    "add_webhook",
    "deliveries",
    "dispatch",
    "outbox",
    "redeliver",
    "remove_webhook",
    "webhooks",
]

_log = logging.getLogger("mlprov.webhooks")

#: Outbox events fanned out per transaction (a pass repeats until the outbox is empty).
_FAN_OUT_BATCH = 256
_MAX_FAN_OUT_ROUNDS = 64


def add_webhook(
    context: RegistryContext,
    url: str,
    *,
    events: Sequence[str] = (),
    models: Sequence[str] = (),
) -> WebhookSubscription:
    """Subscribe ``url`` to ``events`` (all when empty) about models matching ``models``
    (all when empty). The result carries the generated secret: show it once."""
    check_webhook_url(url)
    wanted_events = check_event_types(events)
    wanted_models = check_model_patterns(models)
    secret = new_secret()
    with mutation(context) as unit:
        subscription = unit.tx.webhooks.add_subscription(
            url=url,
            secret=secret,
            events=wanted_events,
            models=wanted_models,
            at=unit.at,
            actor=unit.actor,
        )
        # Never the secret: the audit log is for everyone who may read the registry.
        unit.audit(
            "webhook.add",
            f"webhook:{subscription.id}",
            {"url": url, "events": list(wanted_events), "models": list(wanted_models)},
        )
    return subscription


def webhooks(
    context: RegistryContext, *, include_removed: bool = False
) -> list[WebhookSubscription]:
    with context.metadata.read() as tx:
        return tx.webhooks.subscriptions(include_removed=include_removed)


def remove_webhook(context: RegistryContext, webhook_id: int) -> WebhookSubscription:
    """Stop a subscription: nothing more is fanned out to it and its pending deliveries
    end as failed. Its rows stay, so the delivery log keeps what was sent."""
    with mutation(context) as unit:
        found = unit.tx.webhooks.subscription(webhook_id)
        if found is None or not found.active:
            raise NotFoundError(f"webhook {webhook_id} not found")
        unit.expect(unit.tx.webhooks.deactivate(webhook_id))
        ended = unit.tx.webhooks.fail_pending(
            webhook_id, at=unit.at, error="webhook removed before delivery"
        )
        unit.audit(
            "webhook.remove",
            f"webhook:{webhook_id}",
            {"url": found.url, "pending_ended": ended},
        )
    with context.metadata.read() as tx:
        removed = tx.webhooks.subscription(webhook_id)
    assert removed is not None
    return removed


def deliveries(
    context: RegistryContext,
    *,
    webhook_id: int | None = None,
    state: str | None = None,
    limit: int | None = None,
) -> list[WebhookDelivery]:
    """The delivery log, oldest first (the newest ``limit`` with a limit)."""
    if state is not None and state not in DELIVERY_STATES:
        raise InvalidInputError(
            f"unknown delivery state {state!r}: choose from {', '.join(DELIVERY_STATES)}"
        )
    if limit is not None and limit < 1:
        raise InvalidInputError("--limit must be at least 1")
    with context.metadata.read() as tx:
        if webhook_id is not None and tx.webhooks.subscription(webhook_id) is None:
            raise NotFoundError(f"webhook {webhook_id} not found")
        return tx.webhooks.deliveries(subscription_id=webhook_id, state=state, limit=limit)


def redeliver(context: RegistryContext, delivery_id: int) -> WebhookDelivery:
    """Send a delivered or failed delivery's event again, as a new delivery (the old one
    stays in the log as it was)."""
    with mutation(context) as unit:
        old = unit.tx.webhooks.delivery(delivery_id)
        if old is None:
            raise NotFoundError(f"delivery {delivery_id} not found")
        if old.state == "pending":
            raise ConflictError(f"delivery {delivery_id} is still pending; it will be sent")
        subscription = unit.tx.webhooks.subscription(old.subscription_id)
        if subscription is None or not subscription.active:
            raise ConflictError(
                f"delivery {delivery_id}: webhook {old.subscription_id} was removed"
            )
        event_row = unit.tx.webhooks.event_row_of(delivery_id)
        assert event_row is not None
        new_id = unit.tx.webhooks.insert_delivery(old.subscription_id, event_row, at=unit.at)
        unit.audit(
            "webhook.redeliver",
            f"webhook:{old.subscription_id}",
            {"delivery": delivery_id, "redelivery": new_id, "event": old.event_id},
        )
    with context.metadata.read() as tx:
        new = tx.webhooks.delivery(new_id)
    assert new is not None
    return new


def outbox(context: RegistryContext, *, limit: int | None = None) -> list[OutboxEvent]:
    """The outbox's events, oldest first (the newest ``limit`` with a limit)."""
    with context.metadata.read() as tx:
        return tx.webhooks.events(limit=limit)


@dataclass(frozen=True)
class DispatchReport:
    """What one dispatcher pass did."""

    fanned_out: int = 0  # outbox events turned into deliveries
    created: int = 0  # deliveries created by the fan-out
    claimed: int = 0  # deliveries this pass sent
    delivered: int = 0
    retrying: int = 0  # failed this time, tried again later
    failed: int = 0  # failed for the last time
    lost: int = 0  # sent, but the claim had lapsed and another dispatcher took it

    def to_json(self) -> dict[str, Any]:
        return {
            "fanned_out": self.fanned_out,
            "created": self.created,
            "claimed": self.claimed,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "lost": self.lost,
        }

    @property
    def did_work(self) -> bool:
        return bool(self.fanned_out or self.claimed)


def dispatch(
    context: RegistryContext,
    *,
    owner: str,
    settings: WebhookSettings,
    now: datetime | None = None,
) -> DispatchReport:
    """One pass: fan out the outbox, claim due deliveries, POST them, record results.
    ``now`` replaces the clock (due times, back-off) for a whole pass."""

    def clock() -> datetime:
        return now if now is not None else datetime.now(timezone.utc)

    fanned_out, created = _fan_out(context, utc_text(clock()))
    claimed = _claim(context, owner, clock(), settings)
    if not claimed:
        return DispatchReport(fanned_out, created)
    outcomes = _send(claimed, settings)
    delivered = retrying = failed = lost = 0
    finished = clock()
    with mutation(context, at=utc_text(finished)) as unit:
        for item, outcome in zip(claimed, outcomes, strict=True):
            attempts = item.delivery.attempts + 1
            if outcome.delivered:
                state, next_at = "delivered", finished
            elif attempts >= settings.max_attempts:
                state, next_at = "failed", finished
            else:
                state = "pending"
                next_at = finished + timedelta(seconds=backoff_delay(settings, attempts))
            won = unit.tx.webhooks.record_attempt(
                item.delivery.id,
                owner=owner,
                attempts=attempts,
                state=state,
                next_attempt_at=utc_text(next_at),
                status=outcome.status,
                error=outcome.error,
                at=unit.at,
            )
            if not won:
                lost += 1
            elif state == "delivered":
                delivered += 1
            elif state == "failed":
                failed += 1
            else:
                retrying += 1
    return DispatchReport(fanned_out, created, len(claimed), delivered, retrying, failed, lost)


def _fan_out(context: RegistryContext, at: str) -> tuple[int, int]:
    fanned_out = created = 0
    for _round in range(_MAX_FAN_OUT_ROUNDS):
        # A read first: an idle dispatcher never takes the writer lock.
        with context.metadata.read() as tx:
            if not tx.webhooks.undispatched(1):
                break
        with mutation(context, at=at) as unit:
            subscriptions = unit.tx.webhooks.subscriptions()
            pending = unit.tx.webhooks.undispatched(_FAN_OUT_BATCH)
            won = unit.tx.webhooks.mark_dispatched([event.id for event in pending])
            for event in pending:
                if event.id not in won:
                    continue  # another dispatcher fanned it out first
                fanned_out += 1
                for subscription in subscriptions:
                    if subscription_matches(
                        subscription.events, subscription.models, event.type, event.model
                    ):
                        unit.tx.webhooks.insert_delivery(subscription.id, event.id, at=at)
                        created += 1
        if len(pending) < _FAN_OUT_BATCH:
            break
    return fanned_out, created


def _claim(
    context: RegistryContext, owner: str, now: datetime, settings: WebhookSettings
) -> list[ClaimedDelivery]:
    now_text = utc_text(now)
    with context.metadata.read() as tx:
        due = tx.webhooks.due(now_text, settings.batch_size)
    if not due:
        return []
    until = utc_text(now + settings.lease)
    with mutation(context, at=now_text) as unit:
        won = [
            delivery_id
            for delivery_id in due
            if unit.tx.webhooks.claim(delivery_id, owner=owner, now=now_text, until=until)
        ]
        return unit.tx.webhooks.claimed(won, owner)


def _send(claimed: Sequence[ClaimedDelivery], settings: WebhookSettings) -> list[DeliveryOutcome]:
    """POST every claimed delivery, a few at a time; no transaction is open here."""
    with WebhookPoster(settings) as poster:

        def post(item: ClaimedDelivery) -> DeliveryOutcome:
            return poster.post(
                item.delivery.url,
                item.secret,
                item.payload,
                event_type=item.delivery.event_type,
                delivery_id=item.delivery.id,
            )

        workers = min(settings.concurrency, len(claimed))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlprov-webhook") as pool:
            return list(pool.map(post, claimed))


class WebhookDispatching(Protocol):
    """What the dispatcher needs of a registry (:class:`mlprov.registry.Registry`)."""

    def dispatch_webhooks(
        self,
        *,
        owner: str,
        settings: WebhookSettings | None = None,
        now: datetime | None = None,
    ) -> DispatchReport: ...


class Dispatcher:
    """Delivers the registry's webhooks: :meth:`run_once` is one pass, :meth:`run_forever`
    passes until ``stop`` is set. Any number may run against one database."""

    def __init__(
        self,
        registry: WebhookDispatching,
        settings: WebhookSettings | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings or WebhookSettings()
        #: Who holds a claim: unique per dispatcher, readable in the delivery rows.
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def run_once(self, now: datetime | None = None) -> DispatchReport:
        return self.registry.dispatch_webhooks(owner=self.name, settings=self.settings, now=now)

    def run_forever(self, stop: threading.Event, interval: float = 2.0) -> None:
        """Pass every ``interval`` seconds (at once again after a full batch) until
        ``stop`` is set. A failing pass is logged and the loop goes on: a database
        restart must not end webhook delivery for the life of the server."""
        if interval <= 0:
            raise InvalidInputError("the dispatch interval must be positive")
        while not stop.is_set():
            busy = False
            try:
                report = self.run_once()
                busy = report.claimed >= self.settings.batch_size
            except MlprovError as e:
                _log.warning("webhook dispatch failed: %s", e)
            except Exception:
                # Deliberately broad: this loop runs in a server's background thread,
                # where an unexpected error must be seen, not end delivery silently.
                _log.exception("webhook dispatch failed unexpectedly")
            if not busy:
                stop.wait(interval)
