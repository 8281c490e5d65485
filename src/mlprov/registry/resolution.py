"""Signed alias resolution: the registry signs what an alias names; a client checks it.

* :func:`signed_resolution` reads the alias (version, generation, manifest digest) in one
  read transaction and signs the answer outside it with the registry's key
  (:func:`mlprov.serving.sign_resolution`). Nothing is written: a resolution is a read,
  and signing happens outside any transaction (ARCHITECTURE.md, rule 4). This is the
  function the HTTP server calls to answer a resolve request.
* :func:`pull_resolved` is ``mlprov pull NAME@ALIAS --resolution FILE`` against a local
  or read-only-mounted registry: the statement must verify with the registry's key, name
  exactly what the registry resolves now (version, digest, generation), and pass the
  client's :class:`~mlprov.serving.ResolutionState` (no rollback, no frozen answer)
  before the version is judged and installed like any pull.

The key that signs resolutions is the registry's, the ``registry`` trust role of
docs/trust.md (the role audit checkpoints are signed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mlprov.errors import InvalidInputError, NotFoundError, VerificationError
from mlprov.refs import LATEST, ModelRef, validate_alias, validate_model_name
from mlprov.registry._context import RegistryContext, coerce_ref, require_model
from mlprov.registry.pull import ProgressCallback, PulledVersion, install_alias_version
from mlprov.serving import Resolution, ResolutionState, sign_resolution, verify_resolution

if TYPE_CHECKING:
    from mlprov.signing import Signer, Trust

__all__ = [
    "AliasResolution",
    "check_matches",
    "pull_resolved",
    "read_alias",
    "signed_resolution",
]


@dataclass(frozen=True)
class AliasResolution:
    """An alias as read in one transaction: the version it names now, that version's
    manifest digest, and the alias generation."""

    name: str
    alias: str
    version: int
    manifest_digest: str
    generation: int


def read_alias(context: RegistryContext, name: str, alias: str) -> AliasResolution:
    """What ``name@alias`` names now, read once; NotFoundError for a missing or deleted
    alias (nothing to sign or install)."""
    validate_model_name(name)
    validate_alias(alias)
    if alias == LATEST:
        raise InvalidInputError(
            f"{name}@{LATEST} is not an alias: it has no generation to sign or check"
        )
    with context.metadata.read() as tx:
        model = require_model(tx, name)
        pointer = tx.aliases.pointer(model, alias)
        if pointer.version is None or pointer.version_id is None:
            raise NotFoundError(f"alias {name}@{alias} not found")
        key = tx.versions.by_id(pointer.version_id)
        if key is None:  # pragma: no cover - foreign keys forbid it
            raise NotFoundError(f"alias {name}@{alias} points at a missing version")
        record = tx.versions.record(key)
    return AliasResolution(name, alias, pointer.version, record.digest, pointer.generation)


def signed_resolution(
    context: RegistryContext,
    name: str,
    alias: str,
    signer: Signer,
    *,
    ttl: timedelta,
    now: datetime | None = None,
) -> bytes:
    """The registry's signed answer to "what is ``name@alias`` now", valid for ``ttl``."""
    current = read_alias(context, name, alias)
    return sign_resolution(
        signer,
        name=current.name,
        alias=current.alias,
        version=current.version,
        manifest_digest=current.manifest_digest,
        generation=current.generation,
        issued_at=now or datetime.now(timezone.utc),
        ttl=ttl,
    )


def check_matches(resolution: Resolution, current: AliasResolution) -> None:
    """The verified statement must name what the registry resolves now."""
    if resolution.generation < current.generation:
        raise VerificationError(
            f"stale resolution: it is generation {resolution.generation} of {resolution.ref} "
            f"(version {resolution.version}), the registry's alias is at generation "
            f"{current.generation} (version {current.version}); ask for a fresh one"
        )
    if resolution.generation > current.generation:
        raise VerificationError(
            f"the resolution is generation {resolution.generation} of {resolution.ref}, newer "
            f"than the registry's generation {current.generation}: this registry copy is "
            "older than the one that signed it"
        )
    if (resolution.version, resolution.manifest_digest) != (
        current.version,
        current.manifest_digest,
    ):
        raise VerificationError(
            f"the resolution names {resolution.name}/{resolution.version} "
            f"({resolution.manifest_digest}) for generation {resolution.generation}, the "
            f"registry resolves {current.name}/{current.version} ({current.manifest_digest})"
        )


def pull_resolved(
    context: RegistryContext,
    ref: ModelRef | str,
    to: Path,
    resolution: bytes,
    trust: Trust,
    state: ResolutionState,
    *,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
    sync: bool = True,
) -> tuple[PulledVersion, Resolution]:
    """Install ``NAME@ALIAS`` at ``to`` as :func:`~mlprov.registry.pull.pull` does, but
    only as the signed ``resolution`` names it (module docstring).

    Order (TUF's client workflow): verify the statement, check it against the registry,
    record it in ``state`` (which refuses a rollback or a frozen answer), then judge and
    install. A refused statement changes neither ``to`` nor ``state``; an accepted one
    stays recorded even if the install then fails, because it is a genuine, newer answer.
    """
    parsed = coerce_ref(ref)
    if parsed.alias is None or parsed.alias == LATEST:
        raise InvalidInputError(
            f"{ref}: pull takes NAME@ALIAS (an alias its policy protects), not a number or latest"
        )
    when = now or datetime.now(timezone.utc)
    verified = verify_resolution(resolution, trust, when, limits=context.limits)
    if (verified.name, verified.alias) != (parsed.name, parsed.alias):
        raise VerificationError(
            f"the resolution is for {verified.ref}, not {parsed.name}@{parsed.alias}"
        )
    current = read_alias(context, parsed.name, parsed.alias)
    check_matches(verified, current)
    state.accept(verified, when)
    pulled = install_alias_version(
        context,
        ModelRef(parsed.name, alias=parsed.alias),
        verified.version,
        Path(to),
        progress=progress,
        sync=sync,
    )
    return pulled, verified
