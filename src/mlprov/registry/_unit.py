"""Mutation: one write transaction and the audit entries it commits with.

Every change of registry state goes through :class:`Mutation` (ARCHITECTURE.md, rule 5):
the rows and their audit entries commit together or not at all, all stamped with one
time and one actor. A refused change is recorded by :func:`record_denial` in a short
transaction of its own, so the refusal is audited although the change rolled back.

An audit entry that is a registry event (:func:`mlprov.events.event_type_for`: a version
registered, evidence, an approval or waiver, an alias or stage move, a denied move, a
revocation) also writes its outbox row here, in the same transaction (the transactional
outbox): the event exists exactly when the change committed, and a webhook is only ever
delivered later, by the dispatcher (:mod:`mlprov.registry.webhooks`), after commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from mlprov.events import event_for
from mlprov.records import AuditEntry
from mlprov.registry._context import LostRace, RegistryContext, utc_now
from mlprov.store import StoreTransaction

__all__ = ["Mutation", "grouped_mutation", "mutation", "record_denial"]

T = TypeVar("T")


class Mutation:
    """An open write transaction (``tx``) with its time and actor."""

    def __init__(self, tx: StoreTransaction, at: str, actor: str) -> None:
        self.tx = tx
        self.at = at
        self.actor = actor

    def expect(self, won: bool) -> None:
        """After a compare-and-set: if it lost, roll this mutation back (:class:`LostRace`)
        so the use case can redo its outside work and try again."""
        if not won:
            raise LostRace

    def audit(
        self, action: str, subject: str, details: Mapping[str, Any], reason: str = ""
    ) -> AuditEntry:
        entry = self.tx.audit.append(
            at=self.at,
            actor=self.actor,
            action=action,
            subject=subject,
            details=details,
            reason=reason,
        )
        self._outbox(entry)
        return entry

    def _outbox(self, entry: AuditEntry) -> None:
        """The entry's event, if it is one, into the outbox of this same transaction."""
        event = event_for(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            details_text=entry.details,
            reason=entry.reason,
        )
        if event is not None:
            self.tx.webhooks.insert_event(
                event_id=event.event_id,
                type=event.type,
                model=event.model,
                audit_seq=entry.seq,
                payload=event.payload,
                at=entry.at,
            )


@contextmanager
def mutation(
    context: RegistryContext, *, at: str | None = None, actor: str | None = None
) -> Iterator[Mutation]:
    """One write transaction, serialised with every other writer; commits on success.
    ``at`` and ``actor`` are given when documents signed beforehand already carry them."""
    who = actor or context.actor
    with context.metadata.write() as tx:
        yield Mutation(tx, at or utc_now(), who)


def grouped_mutation(
    context: RegistryContext,
    work: Callable[[Mutation], T],
    *,
    at: str | None = None,
    actor: str | None = None,
) -> T:
    """``work(unit)`` as one :func:`mutation`, in a write transaction that concurrent
    callers of this process share (:meth:`mlprov.store.MetadataStore.write_together`):
    its rows and audit entries commit with the others' or, if it raises, roll back alone.
    ``work`` may run on another caller's thread: rows and audit entries only."""
    unit_at, who = at or utc_now(), actor or context.actor
    return context.metadata.write_together(lambda tx: work(Mutation(tx, unit_at, who)))


def record_denial(
    context: RegistryContext,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    reason: str = "",
) -> AuditEntry:
    """Audit a refused change in its own transaction (nothing else is written)."""
    with mutation(context) as unit:
        return unit.audit(action, subject, details, reason)
