"""The audit log's hash chain: pure functions over entries.

Each entry's hash is SHA-256 over the RFC 8785 canonical JSON of its fields and the
previous entry's hash (:func:`details_text` and :func:`entry_hash` say exactly which
bytes), so editing, deleting, inserting or reordering any entry breaks the chain
from that entry on. The chain head (last sequence number and hash) is stored apart
from the entries, so deleting the newest entries is detected too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from mlprov.canonical import rfc8785_json
from mlprov.errors import AuditChainError
from mlprov.records import AuditEntry

__all__ = ["GENESIS_HASH", "details_text", "entry_hash", "verify_chain"]

GENESIS_HASH = "0" * 64


def details_text(details: Mapping[str, Any]) -> str:
    """An entry's details as stored and hashed: the RFC 8785 text of the object."""
    return rfc8785_json(dict(details), "audit details").decode("utf-8")


def entry_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    details: str,
    reason: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the RFC 8785 bytes of the object with these eight members;
    ``details`` is the stored details text, a string member like the others."""
    body = rfc8785_json(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
            "reason": reason,
            "prev_hash": prev_hash,
        },
        "audit entry",
    )
    return hashlib.sha256(body).hexdigest()


def verify_chain(entries: Iterable[AuditEntry], *, head_seq: int, head_hash: str) -> int:
    """Recompute the chain; return the number of entries, or raise naming the first broken one."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for entry in entries:
        if entry.seq != expected_seq:
            raise AuditChainError(
                f"audit entry {expected_seq} is missing (next entry found is {entry.seq})",
                sequence=expected_seq,
            )
        if entry.prev_hash != expected_prev:
            raise AuditChainError(
                f"audit entry {entry.seq} does not link to entry {entry.seq - 1} "
                "(previous hash differs): an entry was changed or removed",
                sequence=entry.seq,
            )
        recomputed = entry_hash(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            details=entry.details,
            reason=entry.reason,
            prev_hash=entry.prev_hash,
        )
        if recomputed != entry.hash:
            raise AuditChainError(
                f"audit entry {entry.seq} ({entry.action} {entry.subject}) was modified: "
                "its hash does not match its content",
                sequence=entry.seq,
            )
        expected_prev = entry.hash
        expected_seq += 1
        count += 1
    if count > head_seq:
        extra = head_seq + 1
        raise AuditChainError(
            f"audit entry {extra} is not covered by the chain head ({head_seq} entries): "
            "it was appended outside mlprov",
            sequence=extra,
        )
    if count < head_seq:
        missing = count + 1
        raise AuditChainError(
            f"audit entry {missing} is missing: the chain head records {head_seq} entries, "
            f"{count} remain",
            sequence=missing,
        )
    if expected_prev != head_hash:
        raise AuditChainError(
            f"audit entry {count} does not match the chain head: it was changed or replaced",
            sequence=count,
        )
    return count
