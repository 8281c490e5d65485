"""Who may do what: roles, the actions they allow, and the one authorisation decision.

A pure engine (ARCHITECTURE.md, "Layers"): records in, a decision out, no IO. The
registry authenticates a bearer token into a :class:`Principal`; the server (and any
other interface acting for someone else) calls :func:`authorize` with the action a
request performs and the model it touches before it calls the registry, and the registry
records :attr:`Principal.actor` as the actor of every audit entry it writes.

Roles and their actions (docs/tokens.md has the table with every command each action
covers)::

    reader      read
    publisher   read register sign attest
    evaluator   read attest
    approver    read approve
    promoter    read move waive
    admin       every action

Each principal is limited to model name patterns (``fnmatch`` style: ``*``, ``?``,
``[...]``, matched case-sensitively against the lower-case model name). Registry-wide
actions (policy, tokens, webhooks, audit checkpoints, and any action without a model,
such as revoking a key) need a principal whose patterns include ``*``.

Authorisation is not the gate: a promoter may ask to move an alias, and the move still
passes the active policy or is refused; a waiver still needs two distinct holders of the
policy's waiving role to count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase
from types import MappingProxyType

from mlprov.errors import InvalidInputError, PermissionDeniedError

__all__ = [
    "ALL_MODELS",
    "REGISTRY_WIDE_ACTIONS",
    "ROLE_ACTIONS",
    "Action",
    "Principal",
    "Role",
    "allows",
    "authorize",
    "check_model_patterns",
]

#: The pattern that covers every model, and so the registry as a whole.
ALL_MODELS = "*"


class Role(str, Enum):
    """What a token holder is for. (A ``str`` enum rather than ``enum.StrEnum``, which
    Python 3.10 lacks; ``str()`` and formatting give the value, as ``StrEnum`` does.)"""

    READER = "reader"
    PUBLISHER = "publisher"
    EVALUATOR = "evaluator"
    APPROVER = "approver"
    PROMOTER = "promoter"
    ADMIN = "admin"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def parse(cls, text: str | Role) -> Role:
        """A role by name; InvalidInputError naming the roles otherwise."""
        if isinstance(text, Role):
            return text
        if not isinstance(text, str):
            raise InvalidInputError(f"a role is a name, not {type(text).__name__}")
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise InvalidInputError(
                f"unknown role {text[:40]!r}: use one of {', '.join(r.value for r in cls)}"
            ) from None


class Action(str, Enum):
    """What a request does, at the granularity roles are granted at."""

    #: Anything that changes nothing: models, versions, evidence, lineage, aliases,
    #: stages, policy, approvals, waivers, revocations, status, resolve, downloads, the
    #: audit log and its verification.
    READ = "read"
    #: Create a model, register a version (artefact upload), tag and describe models and
    #: versions.
    REGISTER = "register"
    #: Store a model signature: sign a version, attach an OMS signature made elsewhere.
    SIGN = "sign"
    #: Add an attestation (evaluation results, other in-toto statements) to a version.
    ATTEST = "attest"
    #: Store an approval of a version for an alias or stage.
    APPROVE = "approve"
    #: Store one holder's waiver of failed requirements for a move.
    WAIVE = "waive"
    #: Move pointers: alias set, delete and rollback, stage transitions (all gated).
    MOVE = "move"
    #: Revoke a version (model-scoped) or a key or signer identity (registry-wide).
    REVOKE = "revoke"
    #: Apply a policy set (which also carries the registry's trust).
    POLICY = "policy"
    #: Create, list and revoke tokens.
    TOKENS = "tokens"
    #: Manage webhook subscriptions and their deliveries.
    WEBHOOKS = "webhooks"
    #: Write a signed audit checkpoint (reading the log is READ).
    AUDIT = "audit"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: Actions that concern the registry as a whole, never one model.
REGISTRY_WIDE_ACTIONS = frozenset({Action.POLICY, Action.TOKENS, Action.WEBHOOKS, Action.AUDIT})

# Waiving belongs to the promoter: a waiver is asked for by whoever needs a move to
# happen despite a failed requirement, and the policy still demands two distinct
# holders of its waiving role (signing keys, not tokens) before the gate honours it.
# An approver approves; keeping "approve" and "waive" on different tokens keeps the
# person who vouches for a version apart from the one who overrides a requirement.
ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = MappingProxyType(
    {
        Role.READER: frozenset({Action.READ}),
        Role.PUBLISHER: frozenset({Action.READ, Action.REGISTER, Action.SIGN, Action.ATTEST}),
        Role.EVALUATOR: frozenset({Action.READ, Action.ATTEST}),
        Role.APPROVER: frozenset({Action.READ, Action.APPROVE}),
        Role.PROMOTER: frozenset({Action.READ, Action.MOVE, Action.WAIVE}),
        Role.ADMIN: frozenset(Action),
    }
)

#: A model name pattern: model name characters, ``*``, ``?`` and ``[...]`` classes of
#: name characters (``[!...]`` negates). Upper case can never match a model name, and
#: ``/`` or spaces never appear in one, so both are refused rather than kept as dead
#: patterns.
_PATTERN = re.compile(r"\A(?:[a-z0-9._*?-]|\[!?[a-z0-9._-]+\])+\Z")
_MAX_PATTERN = 128
_MAX_PATTERNS = 64


def check_model_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """The patterns, validated and without duplicates (order kept); InvalidInputError
    naming the first bad one."""
    found: list[str] = []
    for pattern in patterns:
        if (
            not isinstance(pattern, str)
            or len(pattern) > _MAX_PATTERN
            or not _PATTERN.match(pattern)
        ):
            shown = pattern[:40] if isinstance(pattern, str) else type(pattern).__name__
            raise InvalidInputError(
                f"invalid model pattern {shown!r}: use model name characters "
                "(a-z 0-9 . _ -) with *, ? or [...]"
            )
        if pattern not in found:
            found.append(pattern)
    if not found:
        raise InvalidInputError("give at least one model pattern (--models '*' for all)")
    if len(found) > _MAX_PATTERNS:
        raise InvalidInputError(f"at most {_MAX_PATTERNS} model patterns, not {len(found)}")
    return tuple(found)


@dataclass(frozen=True)
class Principal:
    """Who is acting: a name, a role and the model name patterns the role applies to;
    ``token_id`` when the principal was authenticated by a token."""

    name: str
    role: Role
    models: tuple[str, ...] = (ALL_MODELS,)
    token_id: str | None = None

    def __post_init__(self) -> None:
        # A role given by name ("reader") is the Role; one pattern given alone is a tuple.
        object.__setattr__(self, "role", Role.parse(self.role))
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        else:
            object.__setattr__(self, "models", tuple(self.models))

    @property
    def actor(self) -> str:
        """What the audit log records as the actor."""
        if self.token_id is None:
            return self.name
        return f"token:{self.name} ({self.token_id})"

    @property
    def registry_wide(self) -> bool:
        return ALL_MODELS in self.models

    def covers(self, model: str) -> bool:
        """Whether one of the patterns matches ``model``."""
        return any(fnmatchcase(model, pattern) for pattern in self.models)


def _refusal(principal: Principal, action: Action, model: str | None) -> str | None:
    action = Action(action)
    # The name comes from the request: shown as repr (controls escaped), and bounded.
    where = f"model {model[:_MAX_PATTERN]!r}" if model is not None else "the registry"
    if action not in ROLE_ACTIONS[principal.role]:
        return (
            f"{principal.actor} with role {principal.role} may not {action} on {where} "
            f"(the role allows: {', '.join(sorted(a.value for a in ROLE_ACTIONS[principal.role]))})"
        )
    if model is None or action in REGISTRY_WIDE_ACTIONS:
        if principal.registry_wide:
            return None
        return (
            f"{principal.actor} may not {action} on the registry as a whole: its model "
            f"patterns {', '.join(principal.models)} do not include '*'"
        )
    if principal.covers(model):
        return None
    return (
        f"{principal.actor} may not {action} on {where}: it matches none of the "
        f"principal's model patterns {', '.join(principal.models)}"
    )


def allows(principal: Principal, action: Action, model: str | None = None) -> bool:
    """Whether :func:`authorize` would let ``principal`` do ``action`` (on ``model``);
    for filtering listings without raising."""
    return _refusal(principal, action, model) is None


def authorize(principal: Principal, action: Action, model: str | None = None) -> None:
    """Raise PermissionDeniedError (one line naming the principal, the action and the
    model) unless ``principal``'s role allows ``action`` and its patterns cover
    ``model``. Without a model, and for registry-wide actions, the patterns must include
    ``*``."""
    refusal = _refusal(principal, action, model)
    if refusal is not None:
        raise PermissionDeniedError(refusal)
