"""What every use case shares: the stores, who acts, the limits, the clock, the gate,
and resolving a reference to a stored version."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mlprov.artifacts import ArtifactStore, CorruptBlobError
from mlprov.config import Limits, current_actor
from mlprov.errors import DigestMismatchError, InvalidInputError, NotFoundError
from mlprov.refs import LATEST, ModelRef
from mlprov.registry.gate import Gate
from mlprov.store import MetadataStore, StoreTransaction
from mlprov.store.models import ModelKey
from mlprov.store.versions import StoredFile, VersionKey

if TYPE_CHECKING:
    from mlprov.registry.tokens import TokenCache

__all__ = [
    "IDEMPOTENCY_KEY",
    "MAX_ATTEMPTS",
    "LostRace",
    "RegistryContext",
    "check_idempotency_key",
    "coerce_ref",
    "corrupt_blobs_named",
    "require_model",
    "resolve",
    "utc_now",
    "utc_text",
]

#: How often a use case redoes its outside work after losing a compare-and-set race.
MAX_ATTEMPTS = 8


#: What an idempotency key may look like: a client-made token (a UUID, say).
IDEMPOTENCY_KEY = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")


def check_idempotency_key(key: str) -> None:
    """Raise InvalidInputError unless ``key`` looks like an idempotency key (the
    ``Idempotency-Key`` of a registration or an export record over HTTP)."""
    if not IDEMPOTENCY_KEY.match(key):
        raise InvalidInputError(
            "invalid idempotency key: 1 to 128 letters, digits or '.', '_', ':', '-'"
        )


class LostRace(Exception):
    """A compare-and-set found the row changed: roll back, redo the outside work, retry."""


def utc_now() -> str:
    """Now as ISO-8601 UTC text with microseconds: the registry's one time format."""
    return utc_text(datetime.now(timezone.utc))


def utc_text(moment: datetime) -> str:
    """A moment in the registry's one time format (naive moments are taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RegistryContext:
    metadata: MetadataStore
    artifacts: ArtifactStore
    limits: Limits
    gate: Gate
    fixed_actor: str | None = None
    #: Parsed policy sets by digest (see mlprov.registry.policies.load_policy).
    policy_cache: dict[str, object] = field(default_factory=dict)
    #: Token rows authentication read recently (mlprov.registry.tokens.TokenCache; None:
    #: every authentication reads the store). Shared by every acting_as view.
    token_cache: TokenCache | None = None
    #: Names of models this process has seen stored. None is ever deleted or renamed, so
    #: a registration of one of them needs no namespace check before its write (the
    #: write checks again in its transaction anyway). Shared by every acting_as view.
    known_models: set[str] = field(default_factory=set)

    @property
    def actor(self) -> str:
        return self.fixed_actor or current_actor()


def coerce_ref(ref: ModelRef | str) -> ModelRef:
    return ModelRef.parse(ref) if isinstance(ref, str) else ref


def require_model(tx: StoreTransaction, name: str) -> ModelKey:
    model = tx.models.find(name)
    if model is None:
        raise NotFoundError(f"model {name!r} not found")
    return model


def resolve(tx: StoreTransaction, ref: ModelRef) -> VersionKey:
    """The stored version a reference names (number, alias or ``latest``)."""
    model = require_model(tx, ref.name)
    if ref.version is not None:
        found = tx.versions.find(model, ref.version)
        if found is None:
            raise NotFoundError(f"version {ref.name}/{ref.version} not found")
        return found
    if ref.alias == LATEST:
        latest = tx.versions.latest(model)
        if latest is None:
            raise NotFoundError(f"model {ref.name!r} has no versions")
        return latest
    pointer = tx.aliases.pointer(model, ref.alias or "")
    if pointer.version_id is None:
        raise NotFoundError(f"alias {ref.name}@{ref.alias} not found")
    target = tx.versions.by_id(pointer.version_id)
    if target is None:  # pragma: no cover - foreign keys forbid it
        raise NotFoundError(f"alias {ref.name}@{ref.alias} points at a missing version")
    return target


@contextlib.contextmanager
def corrupt_blobs_named(ref: str, files: Iterable[StoredFile]) -> Iterator[None]:
    """Reading a version's blobs inside: a corrupt blob is reported by the file(s) of
    ``ref`` it backs, with the expected and actual SHA-256, instead of by its key only
    (the artefact store knows blobs, not the files a version names with them)."""
    try:
        yield
    except CorruptBlobError as e:
        paths = sorted(f.path for f in files if f.blob == e.blob) or ["(no file)"]
        raise DigestMismatchError(
            f"{ref}: stored bytes of {', '.join(paths)} are corrupt: expected "
            f"sha256:{e.blob}, got sha256:{e.actual} (blob {e.blob} in the artefact store)"
        ) from e
