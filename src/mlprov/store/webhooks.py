"""Webhooks: rows of ``webhook_subscriptions``, ``outbox_events`` and
``webhook_deliveries`` as records.

Claims are compare-and-set (:meth:`WebhookRows.claim`): a delivery is sent by the one
dispatcher whose UPDATE matched it, however many run against the same database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from mlprov.store import _schema as t
from mlprov.store._rows import Row, Rows

__all__ = [
    "DELIVERY_STATES",
    "ClaimedDelivery",
    "OutboxEvent",
    "WebhookDelivery",
    "WebhookRows",
    "WebhookSubscription",
]

DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class WebhookSubscription:
    """Where events go (``url``), which ones (``events``, ``models``; empty means all),
    and the secret their signatures are keyed with (never shown after creation)."""

    id: int
    url: str
    events: tuple[str, ...]
    models: tuple[str, ...]
    created_at: str
    created_by: str
    active: bool
    secret: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "models": list(self.models),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "active": self.active,
        }


@dataclass(frozen=True)
class OutboxEvent:
    """One registry event, written with its audit entry; ``payload`` is the body sent."""

    id: int
    event_id: str
    type: str
    model: str | None
    audit_seq: int
    payload: bytes = field(repr=False)
    created_at: str = ""
    dispatched: bool = False


@dataclass(frozen=True)
class WebhookDelivery:
    """One event for one subscription: its attempts so far and how the last one went."""

    id: int
    subscription_id: int
    url: str
    event_id: str
    event_type: str
    audit_seq: int
    attempts: int
    state: str
    next_attempt_at: str
    last_status: int | None
    last_error: str | None
    last_attempt_at: str | None
    created_at: str
    claimed_by: str | None
    claimed_until: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "webhook": self.subscription_id,
            "url": self.url,
            "event": self.event_id,
            "type": self.event_type,
            "audit_seq": self.audit_seq,
            "attempts": self.attempts,
            "state": self.state,
            "next_attempt_at": self.next_attempt_at if self.state == "pending" else None,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_attempt_at": self.last_attempt_at,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this dispatcher holds the claim on, with what it needs to send it."""

    delivery: WebhookDelivery
    secret: str = field(repr=False)
    payload: bytes = field(repr=False)


_s, _o, _d = t.webhook_subscriptions, t.outbox_events, t.webhook_deliveries
#: Built once, values bound at execution (every audited event writes one: ADR 0049).
_INSERT_EVENT = sa.insert(_o)


class WebhookRows(Rows):
    # -- subscriptions -------------------------------------------------------------

    def add_subscription(
        self,
        *,
        url: str,
        secret: str,
        events: Sequence[str],
        models: Sequence[str],
        at: str,
        actor: str,
    ) -> WebhookSubscription:
        result = self.connection.execute(
            sa.insert(_s)
            .values(
                url=url,
                secret=secret,
                events=json.dumps(list(events)),
                models=json.dumps(list(models)),
                created_at=at,
                created_by=actor,
                active=True,
            )
            .returning(_s.c.id)
        )
        new_id = int(result.scalar_one())
        found = self.subscription(new_id)
        assert found is not None
        return found

    def subscription(self, subscription_id: int) -> WebhookSubscription | None:
        row = self._one(sa.select(_s).where(_s.c.id == subscription_id))
        return _subscription(row) if row is not None else None

    def subscriptions(self, *, include_removed: bool = False) -> list[WebhookSubscription]:
        query = sa.select(_s).order_by(_s.c.id)
        if not include_removed:
            query = query.where(_s.c.active.is_(True))
        return [_subscription(r) for r in self._all(query)]

    def deactivate(self, subscription_id: int) -> bool:
        result = self.connection.execute(
            sa.update(_s)
            .where(_s.c.id == subscription_id, _s.c.active.is_(True))
            .values(active=False)
        )
        return result.rowcount == 1

    def fail_pending(self, subscription_id: int, *, at: str, error: str) -> int:
        """End every pending delivery of a subscription (it was removed)."""
        result = self.connection.execute(
            sa.update(_d)
            .where(_d.c.subscription_id == subscription_id, _d.c.state == "pending")
            .values(state="failed", last_error=error, claimed_by=None, claimed_until=None)
        )
        return int(result.rowcount)

    # -- the outbox ----------------------------------------------------------------

    def insert_event(
        self,
        *,
        event_id: str,
        type: str,
        model: str | None,
        audit_seq: int,
        payload: bytes,
        at: str,
    ) -> None:
        self.later.add(
            _INSERT_EVENT,
            {
                "event_id": event_id,
                "type": type,
                "model": model,
                "audit_seq": audit_seq,
                "payload": payload,
                "created_at": at,
                "dispatched": False,
            },
        )

    def events(self, *, limit: int | None = None) -> list[OutboxEvent]:
        """Events oldest first (the newest ``limit`` with a limit)."""
        query = sa.select(_o).order_by(_o.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return sorted((_event(r) for r in self._all(query)), key=lambda e: e.id)

    def undispatched(self, limit: int) -> list[OutboxEvent]:
        query = sa.select(_o).where(_o.c.dispatched.is_(False)).order_by(_o.c.id).limit(limit)
        return [_event(r) for r in self._all(query)]

    def mark_dispatched(self, event_row_ids: Sequence[int]) -> set[int]:
        """Compare-and-set, for many events in one statement (one round trip under the
        writer lock, not one per event): the ids this caller is the one to fan out."""
        if not event_row_ids:
            return set()
        rows = self._all(
            sa.update(_o)
            .where(_o.c.id.in_(list(event_row_ids)), _o.c.dispatched.is_(False))
            .values(dispatched=True)
            .returning(_o.c.id)
        )
        return {int(row.id) for row in rows}

    # -- deliveries ----------------------------------------------------------------

    def insert_delivery(self, subscription_id: int, event_row_id: int, *, at: str) -> int:
        result = self.connection.execute(
            sa.insert(_d)
            .values(
                subscription_id=subscription_id,
                event_id=event_row_id,
                attempts=0,
                state="pending",
                next_attempt_at=at,
                created_at=at,
            )
            .returning(_d.c.id)
        )
        return int(result.scalar_one())

    def delivery(self, delivery_id: int) -> WebhookDelivery | None:
        row = self._one(_delivery_query().where(_d.c.id == delivery_id))
        return _delivery(row) if row is not None else None

    def event_row_of(self, delivery_id: int) -> int | None:
        row = self._one(sa.select(_d.c.event_id).where(_d.c.id == delivery_id))
        return int(row.event_id) if row is not None else None

    def deliveries(
        self,
        *,
        subscription_id: int | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[WebhookDelivery]:
        """Deliveries oldest first (the newest ``limit`` with a limit)."""
        query = _delivery_query().order_by(_d.c.id.desc())
        if subscription_id is not None:
            query = query.where(_d.c.subscription_id == subscription_id)
        if state is not None:
            query = query.where(_d.c.state == state)
        if limit is not None:
            query = query.limit(limit)
        return sorted((_delivery(r) for r in self._all(query)), key=lambda d: d.id)

    def due(self, now: str, limit: int) -> list[int]:
        """Pending deliveries of active subscriptions whose time has come, unclaimed (or
        whose claim lapsed), oldest first."""
        query = (
            sa.select(_d.c.id)
            .join(_s, _s.c.id == _d.c.subscription_id)
            .where(_due(now), _s.c.active.is_(True))
            .order_by(_d.c.next_attempt_at, _d.c.id)
            .limit(limit)
        )
        return [int(r.id) for r in self._all(query)]

    def claim(self, delivery_id: int, *, owner: str, now: str, until: str) -> bool:
        """Compare-and-set: take the delivery if it is still due and unclaimed."""
        result = self.connection.execute(
            sa.update(_d)
            .where(_d.c.id == delivery_id, _due(now))
            .values(claimed_by=owner, claimed_until=until)
        )
        return result.rowcount == 1

    def claimed(self, delivery_ids: Sequence[int], owner: str) -> list[ClaimedDelivery]:
        if not delivery_ids:
            return []
        query = (
            _delivery_query()
            .add_columns(_s.c.secret, _o.c.payload)
            .where(_d.c.id.in_(list(delivery_ids)), _d.c.claimed_by == owner)
            .order_by(_d.c.id)
        )
        return [
            ClaimedDelivery(_delivery(r), str(r.secret), bytes(r.payload)) for r in self._all(query)
        ]

    def record_attempt(
        self,
        delivery_id: int,
        *,
        owner: str,
        attempts: int,
        state: str,
        next_attempt_at: str,
        status: int | None,
        error: str | None,
        at: str,
    ) -> bool:
        """Write one attempt's result and release the claim, if this owner still holds it."""
        result = self.connection.execute(
            sa.update(_d)
            .where(_d.c.id == delivery_id, _d.c.claimed_by == owner, _d.c.state == "pending")
            .values(
                attempts=attempts,
                state=state,
                next_attempt_at=next_attempt_at,
                last_status=status,
                last_error=error,
                last_attempt_at=at,
                claimed_by=None,
                claimed_until=None,
            )
        )
        return result.rowcount == 1


def _due(now: str) -> sa.ColumnElement[bool]:
    # Times are fixed-width ISO-8601 UTC text, so text order is time order (_schema.py).
    return sa.and_(
        _d.c.state == "pending",
        _d.c.next_attempt_at <= now,
        sa.or_(_d.c.claimed_until.is_(None), _d.c.claimed_until < now),
    )


def _delivery_query() -> sa.Select[Any]:
    return (
        sa.select(_d, _s.c.url, _o.c.event_id.label("event_uuid"), _o.c.type, _o.c.audit_seq)
        .join(_s, _s.c.id == _d.c.subscription_id)
        .join(_o, _o.c.id == _d.c.event_id)
    )


def _subscription(row: Row) -> WebhookSubscription:
    return WebhookSubscription(
        id=int(row.id),
        url=str(row.url),
        events=tuple(json.loads(row.events)),
        models=tuple(json.loads(row.models)),
        created_at=str(row.created_at),
        created_by=str(row.created_by),
        active=bool(row.active),
        secret=str(row.secret),
    )


def _event(row: Row) -> OutboxEvent:
    return OutboxEvent(
        id=int(row.id),
        event_id=str(row.event_id),
        type=str(row.type),
        model=str(row.model) if row.model is not None else None,
        audit_seq=int(row.audit_seq),
        payload=bytes(row.payload),
        created_at=str(row.created_at),
        dispatched=bool(row.dispatched),
    )


def _delivery(row: Row) -> WebhookDelivery:
    return WebhookDelivery(
        id=int(row.id),
        subscription_id=int(row.subscription_id),
        url=str(row.url),
        event_id=str(row.event_uuid),
        event_type=str(row.type),
        audit_seq=int(row.audit_seq),
        attempts=int(row.attempts),
        state=str(row.state),
        next_attempt_at=str(row.next_attempt_at),
        last_status=int(row.last_status) if row.last_status is not None else None,
        last_error=str(row.last_error) if row.last_error is not None else None,
        last_attempt_at=str(row.last_attempt_at) if row.last_attempt_at is not None else None,
        created_at=str(row.created_at),
        claimed_by=str(row.claimed_by) if row.claimed_by is not None else None,
        claimed_until=str(row.claimed_until) if row.claimed_until is not None else None,
    )
