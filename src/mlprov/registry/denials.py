"""Refused requests of the HTTP API: unauthenticated (401) or unauthorised (403).

A refused request changes nothing but the audit log: :func:`record_access_denied` appends
one entry in its own short transaction (as :func:`~mlprov.registry._unit.record_denial`
does for a refused move), naming who was refused (``anonymous`` when no valid credentials
were given; the server never falls back to the operating-system user) and what they asked.
"""

from __future__ import annotations

from mlprov.records import AuditEntry
from mlprov.registry._context import RegistryContext
from mlprov.registry._unit import mutation

__all__ = ["ANONYMOUS", "record_access_denied"]

#: The actor of a request whose credentials were missing, unknown, expired or revoked.
ANONYMOUS = "anonymous"
_MAX_TEXT = 512


def record_access_denied(
    context: RegistryContext,
    *,
    actor: str | None,
    action: str,
    subject: str,
    status: int,
    reason: str,
) -> AuditEntry:
    """Audit one refused request (``access.denied``); nothing else is written."""
    who = actor or ANONYMOUS
    with mutation(context, actor=who) as unit:
        return unit.audit(
            "access.denied",
            subject[:_MAX_TEXT] or "-",
            {"action": action[:_MAX_TEXT], "status": status},
            reason[:_MAX_TEXT],
        )
