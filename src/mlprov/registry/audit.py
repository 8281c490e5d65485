"""Reading and verifying the audit log."""

from __future__ import annotations

from mlprov.audit import verify_chain
from mlprov.records import AuditEntry
from mlprov.registry._context import RegistryContext

__all__ = ["audit_log", "verify_audit"]


def audit_log(
    context: RegistryContext, *, subject: str | None = None, limit: int | None = None
) -> list[AuditEntry]:
    with context.metadata.read() as tx:
        return tx.audit.entries(subject=subject, limit=limit)


def verify_audit(context: RegistryContext) -> int:
    """Recompute the hash chain; return the number of entries or raise AuditChainError."""
    with context.metadata.read() as tx:
        head_seq, head_hash = tx.audit.head()
        entries = tx.audit.entries()
    return verify_chain(entries, head_seq=head_seq, head_hash=head_hash)
