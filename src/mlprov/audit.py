"""The audit log's hash chain: pure functions over entries.

Each entry's hash is SHA-256 over the RFC 8785 canonical JSON of its fields and the
previous entry's hash (:func:`details_text` and :func:`entry_hash` say exactly which
bytes), so editing, deleting, inserting or reordering any entry breaks the chain
from that entry on. The chain head (last sequence number and hash) is stored apart
from the entries, so deleting the newest entries is detected too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlprov.canonical import rfc8785_json
from mlprov.errors import AuditChainError, MalformedDocumentError
from mlprov.records import AuditEntry

__all__ = [
    "CHECKPOINT_PREDICATE_TYPE",
    "DEPLOYMENT_POINTER_ACTIONS",
    "GENESIS_HASH",
    "POINTER_ACTIONS",
    "ChainWalk",
    "Checkpoint",
    "PointerHistory",
    "RegistryState",
    "StageHistory",
    "TokenState",
    "check_against_checkpoint",
    "check_checkpoint_in_chain",
    "compare_state",
    "details_text",
    "entry_hash",
    "pointer_against_chain",
    "state_from_chain",
    "verify_chain",
]

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
    walk = ChainWalk()
    for entry in entries:
        walk.add(entry)
    return walk.finish(head_seq=head_seq, head_hash=head_hash)


class ChainWalk:
    """The chain recomputed one entry at a time, holding only the last link (and, with a
    checkpoint, the hash of the entry it names): a chain of any length is checked page by
    page in constant memory (the HTTP client, ADR 0055). :func:`verify_chain` is a walk
    over a whole list."""

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        self.count = 0
        self._previous = GENESIS_HASH
        self._checkpoint = checkpoint
        self._hash_at_checkpoint: str | None = None

    def add(self, entry: AuditEntry) -> None:
        """Check the next entry: its number, its link to the one before and its hash."""
        expected_seq = self.count + 1
        if entry.seq != expected_seq:
            raise AuditChainError(
                f"audit entry {expected_seq} is missing (next entry found is {entry.seq})",
                sequence=expected_seq,
            )
        if entry.prev_hash != self._previous:
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
        self._previous = entry.hash
        self.count = entry.seq
        if self._checkpoint is not None and entry.seq == self._checkpoint.sequence:
            self._hash_at_checkpoint = entry.hash

    def finish(self, *, head_seq: int, head_hash: str) -> int:
        """Check that the head covers exactly the entries walked (and, with a checkpoint,
        that the chain extends the one it saw); the number of entries."""
        count = self.count
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
                f"audit entry {missing} is missing: the chain head records {head_seq} "
                f"entries, {count} remain",
                sequence=missing,
            )
        if self._previous != head_hash:
            raise AuditChainError(
                f"audit entry {count} does not match the chain head: it was changed or replaced",
                sequence=count,
            )
        if self._checkpoint is not None:
            _extends_checkpoint(count, self._hash_at_checkpoint, self._checkpoint)
        return count


# -- the state the chain vouches for ------------------------------------------------------
#
# The chain covers more than its own rows: every alias move and stage change is also
# written to alias_history / stage_history and to the pointer it moved, in the same
# transaction as its audit entry. Replaying the chain gives what those tables must hold
# now; any difference was made outside mlprov. Tokens too: a token row added, deleted or
# altered outside mlprov (above all its secret's digest swapped for one whose secret the
# forger knows, which would take the token over) differs from its audit entries.


@dataclass(frozen=True)
class PointerHistory:
    """One alias move as recorded (``kind`` set, rollback or delete)."""

    model: str
    alias: str
    kind: str
    from_version: int | None
    to_version: int | None
    generation: int
    actor: str
    at: str
    reason: str


@dataclass(frozen=True)
class StageHistory:
    """One stage change as recorded."""

    model: str
    version: int
    from_stage: str
    to_stage: str
    actor: str
    at: str
    reason: str


@dataclass(frozen=True)
class TokenState:
    """One bearer token as its ``token.create`` and ``token.revoke`` entries record it."""

    id: str
    name: str
    role: str
    models: tuple[str, ...]
    secret_sha256: str
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None


@dataclass(frozen=True)
class RegistryState:
    """The pointer and token state audit verification compares with the chain."""

    aliases: dict[tuple[str, str], tuple[int | None, int]]  # (model, alias) -> (version, gen)
    alias_history: list[PointerHistory]
    stage_history: list[StageHistory]
    stages: dict[tuple[str, int], str]  # (model, version) -> stage, "None" omitted
    tokens: dict[str, TokenState] = field(default_factory=dict)  # token id -> token
    #: Deployments' aliases and their history, like ``aliases`` and ``alias_history``.
    deployment_aliases: dict[tuple[str, str], tuple[int | None, int]] = field(default_factory=dict)
    deployment_alias_history: list[PointerHistory] = field(default_factory=list)


_ALIAS_ACTIONS = {"alias.set": "set", "alias.rollback": "rollback", "alias.delete": "delete"}
#: The audit actions that move an alias pointer.
POINTER_ACTIONS = tuple(_ALIAS_ACTIONS)
#: The audit actions that move a deployment's alias pointer (docs/deployments.md).
DEPLOYMENT_POINTER_ACTIONS = tuple(f"deployment.{action}" for action in _ALIAS_ACTIONS)


def pointer_against_chain(
    entry: AuditEntry | None,
    previous_hash: str | None,
    *,
    version: int | None,
    generation: int,
) -> str | None:
    """Why an alias's stored pointer (``version``, ``generation``) is not what the newest
    audit entry that moved it says, or None when they agree.

    ``entry`` is that newest entry (None if there is none) and ``previous_hash`` the hash
    of the entry before it (the genesis hash for entry 1). The entry's own hash and its
    link are recomputed, so an entry rewritten to agree with an edited pointer is caught
    here too, without replaying the whole chain (``audit verify`` does that)."""
    if entry is None:
        return (
            f"no audit entry moved this alias, yet it points at version {version} "
            f"(generation {generation}): it was written outside mlprov"
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
    if recomputed != entry.hash or entry.prev_hash != previous_hash:
        return f"audit entry {entry.seq} ({entry.action} {entry.subject}) was modified"
    details = json.loads(entry.details)
    deleted = entry.action in ("alias.delete", "deployment.alias.delete")
    recorded_version = None if deleted else details.get("to")
    recorded_generation = int(details["generation"])
    if (recorded_version, recorded_generation) != (version, generation):
        return (
            f"the alias points at version {version} (generation {generation}), but audit "
            f"entry {entry.seq} moved it to version {recorded_version} (generation "
            f"{recorded_generation}): the pointer was changed outside mlprov"
        )
    return None


def state_from_chain(entries: Iterable[AuditEntry]) -> RegistryState:
    """What the alias pointers, their history, the stages and the tokens must be, replayed
    from a verified chain (denials changed nothing and are skipped)."""
    aliases: dict[tuple[str, str], tuple[int | None, int]] = {}
    alias_history: list[PointerHistory] = []
    stage_history: list[StageHistory] = []
    stages: dict[tuple[str, int], str] = {}
    tokens: dict[str, TokenState] = {}
    deployment_aliases: dict[tuple[str, str], tuple[int | None, int]] = {}
    deployment_history: list[PointerHistory] = []
    for entry in entries:
        if entry.action in ("token.create", "token.revoke"):
            _replay_token(tokens, entry)
            continue
        kind = _ALIAS_ACTIONS.get(entry.action)
        if kind is not None:
            _replay_alias(aliases, alias_history, kind, entry)
        elif entry.action.startswith("deployment.") and entry.action[11:] in _ALIAS_ACTIONS:
            kind = _ALIAS_ACTIONS[entry.action[11:]]
            _replay_alias(deployment_aliases, deployment_history, kind, entry)
        elif entry.action == "stage.set":
            model, _, number = entry.subject.rpartition("/")
            details = json.loads(entry.details)
            version = int(number)
            stage_history.append(
                StageHistory(
                    model,
                    version,
                    details["from"],
                    details["to"],
                    entry.actor,
                    entry.at,
                    entry.reason,
                )
            )
            if details["to"] == "None":
                stages.pop((model, version), None)
            else:
                stages[(model, version)] = details["to"]
    return RegistryState(
        aliases,
        alias_history,
        stage_history,
        stages,
        tokens,
        deployment_aliases,
        deployment_history,
    )


def _replay_alias(
    aliases: dict[tuple[str, str], tuple[int | None, int]],
    history: list[PointerHistory],
    kind: str,
    entry: AuditEntry,
) -> None:
    name, _, alias = entry.subject.partition("@")
    details = json.loads(entry.details)
    to = details.get("to") if kind != "delete" else None
    generation = int(details["generation"])
    aliases[(name, alias)] = (to, generation)
    history.append(
        PointerHistory(
            name,
            alias,
            kind,
            details.get("from"),
            to,
            generation,
            entry.actor,
            entry.at,
            entry.reason,
        )
    )


def _replay_token(tokens: dict[str, TokenState], entry: AuditEntry) -> None:
    details = json.loads(entry.details)
    token_id = str(details["id"])
    if entry.action == "token.create":
        tokens[token_id] = TokenState(
            token_id,
            str(details["name"]),
            str(details["role"]),
            tuple(str(p) for p in details["models"]),
            str(details["secret_sha256"]),
            entry.at,
            entry.actor,
            details["expires_at"],
        )
    elif token_id in tokens:  # a revocation of a token the chain created
        tokens[token_id] = replace(
            tokens[token_id],
            revoked_at=entry.at,
            revoked_by=entry.actor,
            revoke_reason=entry.reason,
        )


def compare_state(expected: RegistryState, actual: RegistryState) -> str | None:
    """The first difference between the replayed and the stored state, in words, or None."""
    for what, want_aliases, have_aliases, want_history, have_history in (
        ("alias", expected.aliases, actual.aliases, expected.alias_history, actual.alias_history),
        (
            "deployment alias",
            expected.deployment_aliases,
            actual.deployment_aliases,
            expected.deployment_alias_history,
            actual.deployment_alias_history,
        ),
    ):
        difference = _pointer_difference(
            what, want_aliases, have_aliases, want_history, have_history
        )
        if difference is not None:
            return difference
    staged = _first_difference(expected.stage_history, actual.stage_history)
    if staged is not None:
        index, want_stage, have_stage = staged
        return (
            f"stage history row {index + 1} differs from the audit log: "
            f"{_described(have_stage)} in the database, {_described(want_stage)} in the log"
        )
    for staged_key in sorted(set(expected.stages) | set(actual.stages)):
        want_s = expected.stages.get(staged_key, "None")
        have_s = actual.stages.get(staged_key, "None")
        if want_s != have_s:
            model, version = staged_key
            return (
                f"{model}/{version} is in stage {have_s} in the database, but the audit log "
                f"says {want_s}: it was changed outside mlprov"
            )
    return _token_difference(expected.tokens, actual.tokens)


def _pointer_difference(
    what: str,
    want_aliases: dict[tuple[str, str], tuple[int | None, int]],
    have_aliases: dict[tuple[str, str], tuple[int | None, int]],
    want_history: list[PointerHistory],
    have_history: list[PointerHistory],
) -> str | None:
    for key in sorted(set(want_aliases) | set(have_aliases)):
        want, have = want_aliases.get(key), have_aliases.get(key)
        if want != have:
            model, alias = key
            return (
                f"{what} {model}@{alias} is {_pointer(have)} in the database, but the audit "
                f"log says {_pointer(want)}: it was changed outside mlprov"
            )
    history = _first_difference(want_history, have_history)
    if history is not None:
        index, want_move, have_move = history
        where = (
            f"{want_move.model}@{want_move.alias}"
            if want_move
            else (f"{have_move.model}@{have_move.alias}" if have_move else "?")
        )
        return (
            f"{what} history row {index + 1} ({where}) differs from the audit log: "
            f"{_described(have_move)} in the database, {_described(want_move)} in the log"
        )
    return None


def _token_difference(want: dict[str, TokenState], have: dict[str, TokenState]) -> str | None:
    for token_id in sorted(set(want) | set(have)):
        wanted, stored = want.get(token_id), have.get(token_id)
        if wanted == stored:
            continue
        if wanted is None:
            return (
                f"token {token_id} is in the database but not in the audit log: it was "
                "added outside mlprov"
            )
        if stored is None:
            return (
                f"token {token_id} is in the audit log but not in the database: it was "
                "deleted outside mlprov"
            )
        fields = [
            name
            for name in TokenState.__dataclass_fields__
            if getattr(wanted, name) != getattr(stored, name)
        ]
        return (
            f"token {token_id} differs from the audit log in {', '.join(fields)}: it was "
            "changed outside mlprov"
        )
    return None


def _pointer(value: tuple[int | None, int] | None) -> str:
    if value is None:
        return "absent"
    version, generation = value
    target = f"version {version}" if version is not None else "deleted"
    return f"{target} at generation {generation}"


def _first_difference(
    want: list[Any], have: list[Any]
) -> tuple[int, Any | None, Any | None] | None:
    for index in range(max(len(want), len(have))):
        w = want[index] if index < len(want) else None
        h = have[index] if index < len(have) else None
        if w != h:
            return index, w, h
    return None


def _described(row: PointerHistory | StageHistory | None) -> str:
    if row is None:
        return "no row"
    if isinstance(row, PointerHistory):
        return (
            f"{row.kind} {row.from_version}->{row.to_version} generation {row.generation} "
            f"by {row.actor} at {row.at} ({row.reason!r})"
        )
    return (
        f"{row.model}/{row.version} {row.from_stage}->{row.to_stage} "
        f"by {row.actor} at {row.at} ({row.reason!r})"
    )


# -- checkpoints ----------------------------------------------------------------------------
#
# A checkpoint is a signed statement of the chain head at one moment: its sequence number
# and hash. Whoever keeps it can later tell a log that was truncated (fewer entries than
# the checkpoint) or rewritten (entry N no longer has the hash N had) from one that only
# grew, even if the forger recomputed every hash and the head row.

#: in-toto predicate type of an audit checkpoint (documented in docs/registry.md).
CHECKPOINT_PREDICATE_TYPE = "https://mlprov.dev/audit-checkpoint/v1"


@dataclass(frozen=True)
class Checkpoint:
    sequence: int
    hash: str
    time: str

    def statement(self) -> dict[str, Any]:
        """The in-toto Statement v1 that is signed: the head hash is the subject."""
        return {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "mlprov-audit-log", "digest": {"sha256": self.hash}}],
            "predicateType": CHECKPOINT_PREDICATE_TYPE,
            "predicate": {"sequence": self.sequence, "hash": self.hash, "time": self.time},
        }

    @classmethod
    def from_statement(cls, statement: Mapping[str, Any]) -> Checkpoint:
        predicate = statement.get("predicate")
        if statement.get("predicateType") != CHECKPOINT_PREDICATE_TYPE or not isinstance(
            predicate, Mapping
        ):
            raise MalformedDocumentError(
                "not an mlprov audit checkpoint "
                f"(its predicate type must be {CHECKPOINT_PREDICATE_TYPE})"
            )
        sequence, digest, time = (
            predicate.get("sequence"),
            predicate.get("hash"),
            predicate.get("time"),
        )
        if (
            not isinstance(sequence, int)
            or isinstance(sequence, bool)
            or sequence < 0
            or not isinstance(digest, str)
            or len(digest) != 64
            or not isinstance(time, str)
        ):
            raise MalformedDocumentError("the audit checkpoint's predicate is malformed")
        subjects = statement.get("subject")
        if subjects != [{"name": "mlprov-audit-log", "digest": {"sha256": digest}}]:
            raise MalformedDocumentError("the audit checkpoint's subject is not its head hash")
        return cls(sequence, digest, time)


def check_against_checkpoint(entries: list[AuditEntry], checkpoint: Checkpoint) -> None:
    """Raise AuditChainError if the (already verified) chain is not an extension of the
    chain the checkpoint saw."""
    named = entries[checkpoint.sequence - 1] if 0 < checkpoint.sequence <= len(entries) else None
    _extends_checkpoint(len(entries), named.hash if named else None, checkpoint)


def _extends_checkpoint(count: int, hash_at_checkpoint: str | None, checkpoint: Checkpoint) -> None:
    """The checks of :func:`check_against_checkpoint` for a verified chain of ``count``
    entries whose entry at ``checkpoint.sequence`` has ``hash_at_checkpoint``."""
    if count < checkpoint.sequence:
        raise AuditChainError(
            f"audit log truncated: the checkpoint of {checkpoint.time} saw {checkpoint.sequence} "
            f"entries, {count} remain",
            sequence=count + 1,
        )
    if checkpoint.sequence == 0:
        if checkpoint.hash != GENESIS_HASH:
            raise AuditChainError("the checkpoint of an empty log names a head hash", sequence=0)
        return
    if hash_at_checkpoint != checkpoint.hash:
        raise AuditChainError(
            f"audit entry {checkpoint.sequence} was rewritten after the checkpoint of "
            f"{checkpoint.time}: its hash differs from the one the checkpoint signed",
            sequence=checkpoint.sequence,
        )


def check_checkpoint_in_chain(
    checkpoint: Checkpoint, head_sequence: int, recorded_hash: str | None
) -> None:
    """Raise AuditChainError unless the entry the checkpoint names is in a chain whose
    head is ``head_sequence`` and whose entry at ``checkpoint.sequence`` has the hash
    ``recorded_hash`` (the genesis hash for 0; None when that entry is missing): what a
    registry checks before it records a checkpoint signed elsewhere. Any entry up to the
    head may be named, since the head moves on between reading the chain and signing."""
    if checkpoint.sequence > head_sequence:
        raise AuditChainError(
            f"the checkpoint names audit entry {checkpoint.sequence}, the log has "
            f"{head_sequence}: checkpoint the chain this registry sends",
            sequence=checkpoint.sequence,
        )
    if recorded_hash != checkpoint.hash:
        raise AuditChainError(
            f"the checkpoint's hash is not the hash of audit entry {checkpoint.sequence} "
            "here: checkpoint the chain this registry sends",
            sequence=checkpoint.sequence,
        )
