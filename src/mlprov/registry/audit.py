"""Reading and verifying the audit log."""

from __future__ import annotations

from mlprov.audit import RegistryState, compare_state, state_from_chain, verify_chain
from mlprov.errors import AuditChainError
from mlprov.records import AuditEntry
from mlprov.registry._context import RegistryContext

__all__ = ["audit_log", "verify_audit"]


def audit_log(
    context: RegistryContext, *, subject: str | None = None, limit: int | None = None
) -> list[AuditEntry]:
    with context.metadata.read() as tx:
        return tx.audit.entries(subject=subject, limit=limit)


def verify_audit(context: RegistryContext) -> int:
    """Recompute the hash chain, then check that the alias pointers, their history and
    the stages are what the chain says; return the number of entries or raise
    AuditChainError naming the first difference."""
    with context.metadata.read() as tx:
        head_seq, head_hash = tx.audit.head()
        entries = tx.audit.entries()
        stored = RegistryState(
            aliases=tx.aliases.all_pointers(),
            alias_history=tx.aliases.all_history(),
            stage_history=tx.stages.all_history(),
            stages=tx.stages.current(),
        )
    count = verify_chain(entries, head_seq=head_seq, head_hash=head_hash)
    difference = compare_state(state_from_chain(entries), stored)
    if difference is not None:
        raise AuditChainError(difference, sequence=count)
    return count
