"""Reading and verifying the audit log, and recording checkpoints of it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlprov.audit import (
    Checkpoint,
    RegistryState,
    check_against_checkpoint,
    check_checkpoint_in_chain,
    compare_state,
    state_from_chain,
    verify_chain,
)
from mlprov.errors import AuditChainError, InvalidInputError
from mlprov.records import AuditEntry
from mlprov.registry._context import RegistryContext, utc_now
from mlprov.registry._unit import Mutation, mutation

if TYPE_CHECKING:
    from mlprov.signing import Signer, Trust

__all__ = ["add_signed_checkpoint", "audit_chain", "audit_log", "checkpoint", "verify_audit"]


def audit_log(
    context: RegistryContext, *, subject: str | None = None, limit: int | None = None
) -> list[AuditEntry]:
    with context.metadata.read() as tx:
        return tx.audit.entries(subject=subject, limit=limit)


def audit_chain(context: RegistryContext) -> tuple[int, str, list[AuditEntry]]:
    """The chain head (sequence, hash) and every entry, read in one transaction, for a
    reader that recomputes the chain itself (``GET /api/v1/audit/chain``)."""
    with context.metadata.read() as tx:
        sequence, head = tx.audit.head()
        return sequence, head, tx.audit.entries()


def audit_chain_page(
    context: RegistryContext, *, after: int, limit: int
) -> tuple[int, str, list[AuditEntry]]:
    """The chain head and at most ``limit`` entries after sequence ``after``, read in
    one transaction: one page of ``GET /api/v1/audit/chain``, so that neither side holds
    a long log in one answer."""
    with context.metadata.read() as tx:
        sequence, head = tx.audit.head()
        return sequence, head, tx.audit.entries_after(after, limit)


def checkpoint(context: RegistryContext, signer: Signer) -> bytes:
    """Sign the chain head as it is now (after verifying the chain): a bundle to keep
    elsewhere. Signed outside any transaction; the checkpoint itself is then audited."""
    from mlprov.canonical import canonical_json  # noqa: PLC0415

    count = verify_audit(context)
    with context.metadata.read() as tx:
        sequence, head = tx.audit.head()
    if sequence != count:  # pragma: no cover - verify_audit checked the head
        raise AuditChainError("the audit head moved while checkpointing; retry", sequence=count)
    mark = Checkpoint(sequence, head, utc_now())
    signed = signer.sign(canonical_json(mark.statement(), "audit checkpoint"))
    with mutation(context) as unit:
        _audit_checkpoint(unit, mark, str(signed.signer))
    return signed.bundle


def add_signed_checkpoint(context: RegistryContext, bundle: bytes) -> AuditEntry:
    """Audit a checkpoint signed elsewhere (``POST /api/v1/audit/checkpoints``: a client
    recomputed the chain it read here and signed its head, ADR 0055 amendment) with the
    same ``audit.checkpoint`` entry a local checkpoint writes. The signature must verify
    with the key or certificate the bundle carries (whether that signer is trusted is
    the question of whoever later runs ``audit verify --checkpoint``), and the entry it
    names must be in this chain with that hash: AuditChainError (400) otherwise, and
    nothing is written.

    A checkpoint already recorded (the same head, the same signer: a retried request
    whose answer was lost) is not recorded twice: its entry is returned, so a client may
    repeat the request."""
    from mlprov import signing  # noqa: PLC0415

    # Verified before the write transaction, which only compares and appends.
    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    mark = Checkpoint.from_statement(inspected.statement)
    # Checked in the write transaction (writers are serialised on the chain head), so
    # the entry named is the one the checkpoint entry is appended after.
    signer = str(inspected.carried.signer)
    with mutation(context) as unit:
        sequence, _head = unit.tx.audit.head()
        check_checkpoint_in_chain(mark, sequence, unit.tx.audit.hash_at(mark.sequence))
        for entry in unit.tx.audit.after_with(mark.sequence, "audit", "audit.checkpoint"):
            if json.loads(entry.details) == _checkpoint_details(mark, signer):
                return entry
        return _audit_checkpoint(unit, mark, signer)


def _audit_checkpoint(unit: Mutation, mark: Checkpoint, signer: str) -> AuditEntry:
    """The one ``audit.checkpoint`` entry, whoever signed the checkpoint and where."""
    return unit.audit("audit.checkpoint", "audit", _checkpoint_details(mark, signer))


def _checkpoint_details(mark: Checkpoint, signer: str) -> dict[str, Any]:
    return {"sequence": mark.sequence, "hash": mark.hash, "signer": signer}


def verify_audit(
    context: RegistryContext,
    *,
    checkpoint: bytes | None = None,
    trust: Trust | None = None,
    now: datetime | None = None,
) -> int:
    """Recompute the hash chain, then check that the alias pointers (of models and of
    deployments), their history, the stages and the tokens are what the chain says;
    return the number of entries or raise AuditChainError naming the first difference."""
    with context.metadata.read() as tx:
        head_seq, head_hash = tx.audit.head()
        entries = tx.audit.entries()
        stored = RegistryState(
            aliases=tx.aliases.all_pointers(),
            alias_history=tx.aliases.all_history(),
            stage_history=tx.stages.all_history(),
            stages=tx.stages.current(),
            tokens=tx.tokens.states(),
            deployment_aliases=tx.deployment_aliases.all_pointers(),
            deployment_alias_history=tx.deployment_aliases.all_history(),
        )
    signed_mark = None
    if checkpoint is not None:
        from mlprov import signing  # noqa: PLC0415

        if trust is None:
            raise InvalidInputError("say whom the checkpoint must be signed by (--key, ...)")
        verified = signing.verify_attestation(checkpoint, trust, limits=context.limits, now=now)
        signed_mark = Checkpoint.from_statement(verified.statement)
    count = verify_chain(entries, head_seq=head_seq, head_hash=head_hash)
    if signed_mark is not None:
        check_against_checkpoint(entries, signed_mark)
    difference = compare_state(state_from_chain(entries), stored)
    if difference is not None:
        raise AuditChainError(difference, sequence=count)
    return count
