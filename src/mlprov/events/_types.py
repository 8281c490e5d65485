"""Which audit actions are registry events, and the event document each one becomes.

The map from audit action to event type lives here and nowhere else: the registry's
:class:`~mlprov.registry._unit.Mutation` asks :func:`event_type_for` about every audit
entry it appends and writes an outbox row for each one that is an event, in the same
transaction. Pure: values in, values out.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlprov.canonical import canonical_json

__all__ = ["EVENT_TYPES", "NewEvent", "event_for", "event_type_for", "model_of"]

#: Every event type a subscription can ask for, with what it means.
EVENT_TYPES: Mapping[str, str] = {
    "version.registered": "a version was registered",
    "version.imported": "a version was imported from another registry's archive",
    "deployment.imported": "a deployment version was imported from another registry's archive",
    "evidence.added": "a signature or attestation was stored with a version",
    "approval.added": "a signed approval was stored with a version",
    "waiver.added": "a signed waiver was granted for a version",
    "alias.moved": "an alias was set, rolled back or deleted",
    "stage.moved": "a version changed stage",
    "move.denied": "the gate refused an alias or stage move",
    "revocation.added": "a version, key or identity was revoked",
}

#: Audit action -> event type, for the actions that map one to one.
_BY_ACTION = {
    "version.register": "version.registered",
    # An imported version (or deployment version) appears here as a registration does,
    # but with its origin: its own event, so a subscriber can tell them apart.
    "version.import": "version.imported",
    "deployment.import": "deployment.imported",
    "alias.set": "alias.moved",
    "alias.rollback": "alias.moved",
    "alias.delete": "alias.moved",
    "stage.set": "stage.moved",
    "alias.set.denied": "move.denied",
    "alias.rollback.denied": "move.denied",
    "alias.delete.denied": "move.denied",
    "stage.set.denied": "move.denied",
    "waiver.grant": "waiver.added",
    "revocation.add": "revocation.added",
    # A deployment's alias is an alias (names are one namespace with models, ADR 0050):
    # its moves and refusals are the same events, told apart by their action.
    "deployment.alias.set": "alias.moved",
    "deployment.alias.rollback": "alias.moved",
    "deployment.alias.delete": "alias.moved",
    "deployment.alias.set.denied": "move.denied",
    "deployment.alias.rollback.denied": "move.denied",
    "deployment.alias.delete.denied": "move.denied",
}


def event_type_for(action: str, details: Mapping[str, Any]) -> str | None:
    """The event an audit entry is, or None when it is not one.

    Approvals and waivers are stored as evidence (``evidence.add`` with their kind): an
    approval's entry is ``approval.added``; a waiver's evidence entry is skipped because
    its own ``waiver.grant`` entry (with the expiry and the requirements) is the event.
    """
    if action == "evidence.add":
        kind = details.get("kind")
        if kind == "approval":
            return "approval.added"
        if kind == "waiver":
            return None
        return "evidence.added"
    return _BY_ACTION.get(action)


def model_of(action: str, subject: str) -> str | None:
    """The model an event is about (its subject is ``name/N`` or ``name@alias``), or None
    for a revoked key or identity, which is about no one model."""
    if action == "revocation.add" and subject.startswith(("key:", "identity:")):
        return None
    # A model name has neither "/" nor "@" (mlprov.refs), so it ends at the first one.
    name = re.split(r"[/@]", subject, maxsplit=1)[0]
    return name or None


@dataclass(frozen=True)
class NewEvent:
    """An event about to be written to the outbox: ``payload`` is the exact body sent."""

    event_id: str
    type: str
    model: str | None
    payload: bytes


def event_for(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    details_text: str,
    reason: str,
) -> NewEvent | None:
    """The outbox event for one audit entry (None when the action is not an event). The
    payload is canonical JSON, made once here, so every delivery and every redelivery
    sends the same bytes."""
    details: dict[str, Any] = json.loads(details_text) if details_text else {}
    kind = event_type_for(action, details)
    if kind is None:
        return None
    model = model_of(action, subject)
    event_id = str(uuid.uuid4())
    document = {
        "id": event_id,
        "type": kind,
        "time": at,
        "actor": actor,
        "model": model,
        "subject": subject,
        "action": action,
        "reason": reason,
        "details": details,
        "audit_seq": seq,
    }
    return NewEvent(event_id, kind, model, canonical_json(document, "event"))
