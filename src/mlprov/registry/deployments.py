"""Deployments: named, numbered, immutable bundles of pinned model versions by role.

``mlprov deployment create search-stack`` makes the name (one namespace with models:
a name is a model or a deployment, never both; ADR 0050). ``release`` makes the next
version from ``ROLE=MODEL/VERSION`` members and free metadata:

1. validate the inputs (role syntax, duplicate roles, numbered references) and read, in
   one read transaction, the deployment, each member's version and its manifest digest,
   and the next version number; a member without a stored model signature is refused;
2. build the bundle statement (an in-toto Statement v1 whose subjects are the members,
   :mod:`mlprov.verification._deployment`) and sign it, outside any write transaction;
3. commit the version and its members with compare-and-set on the version number; a
   release that lost the number to another redoes steps 1-3, bounded.

Aliases of deployments move through :mod:`mlprov.registry.pointers` (the one move path),
judged by :mod:`mlprov.registry.deployment_judge`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlprov.errors import ConflictError, InvalidInputError, InvalidReferenceError, NotFoundError
from mlprov.manifest import Digest
from mlprov.refs import LATEST, ModelRef, validate_model_name
from mlprov.registry._context import MAX_ATTEMPTS, LostRace, RegistryContext
from mlprov.registry._unit import mutation
from mlprov.registry.inputs import check_tag
from mlprov.store import StoreTransaction
from mlprov.store.deployments import (
    Deployment,
    DeploymentKey,
    DeploymentMember,
    DeploymentVersion,
    DeploymentVersionKey,
)

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = [
    "MAX_MEMBERS",
    "create_deployment",
    "deployment_statement",
    "deployment_version",
    "deployment_versions",
    "get_deployment",
    "is_deployment",
    "list_deployments",
    "parse_members",
    "release_deployment",
    "release_signed_deployment",
    "require_deployment",
    "resolve_deployment",
]

#: At most this many members per deployment version (a bound on the statement's size).
MAX_MEMBERS = 64
_ROLE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
_SIGNATURE_KIND = "signature"


def require_deployment(tx: StoreTransaction, name: str) -> DeploymentKey:
    found = tx.deployments.find(name)
    if found is None:
        raise NotFoundError(f"deployment {name!r} not found")
    return found


def resolve_deployment(tx: StoreTransaction, ref: ModelRef) -> DeploymentVersionKey:
    """The stored deployment version a reference names (number, alias or ``latest``)."""
    key = require_deployment(tx, ref.name)
    if ref.version is not None:
        found = tx.deployments.find_version(key, ref.version)
        if found is None:
            raise NotFoundError(f"deployment version {ref.name}/{ref.version} not found")
        return found
    if ref.alias == LATEST:
        latest = tx.deployments.latest_version(key)
        if latest is None:
            raise NotFoundError(f"deployment {ref.name!r} has no versions")
        return latest
    number = tx.deployment_aliases.pointer(key, ref.alias or "").version
    if number is None:
        raise NotFoundError(f"alias {ref.name}@{ref.alias} not found")
    found = tx.deployments.find_version(key, number)
    assert found is not None  # foreign keys keep it
    return found


def is_deployment(context: RegistryContext, name: str) -> bool:
    """Whether ``name`` names a deployment (and so no model: one namespace)."""
    with context.metadata.read() as tx:
        return tx.models.find(name) is None and tx.deployments.find(name) is not None


def create_deployment(context: RegistryContext, name: str, *, description: str = "") -> Deployment:
    validate_model_name(name)
    if len(description) > 4096 or "\x00" in description:
        raise InvalidInputError("the description is longer than 4096 characters or has a NUL")
    with mutation(context) as unit:
        if unit.tx.models.find(name) is not None:
            raise ConflictError(f"{name!r} is a model; a deployment cannot have its name")
        if unit.tx.deployments.find(name) is not None:
            raise ConflictError(f"deployment {name!r} already exists")
        key = unit.tx.deployments.insert(
            name=name, description=description, at=unit.at, actor=unit.actor
        )
        unit.audit("deployment.create", name, {"description": description})
        return unit.tx.deployments.record(key)


def get_deployment(context: RegistryContext, name: str) -> Deployment:
    validate_model_name(name)
    with context.metadata.read() as tx:
        return tx.deployments.record(require_deployment(tx, name))


def list_deployments(context: RegistryContext) -> list[Deployment]:
    with context.metadata.read() as tx:
        return [tx.deployments.record(require_deployment(tx, n)) for n in tx.deployments.names()]


def deployment_version(context: RegistryContext, ref: ModelRef | str) -> DeploymentVersion:
    parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    with context.metadata.read() as tx:
        return tx.deployments.version_record(resolve_deployment(tx, parsed))


def deployment_versions(context: RegistryContext, name: str) -> list[DeploymentVersion]:
    validate_model_name(name)
    with context.metadata.read() as tx:
        key = require_deployment(tx, name)
        found = []
        for number in tx.deployments.numbers(key):
            version = tx.deployments.find_version(key, number)
            assert version is not None
            found.append(tx.deployments.version_record(version))
        return found


def parse_members(texts: Sequence[str]) -> dict[str, ModelRef]:
    """``ROLE=MODEL/VERSION`` items -> {role: reference}; one-line errors (exit 2) for a
    bad role, a duplicate role, or a reference that is not a pinned version number."""
    members: dict[str, ModelRef] = {}
    for text in texts:
        role, sep, ref = text.partition("=")
        if not sep:
            raise InvalidInputError(
                f"member {text[:80]!r}: use ROLE=MODEL/VERSION (e.g. encoder=text-enc/7)"
            )
        members[_check_role(role, members)] = _pinned(role, ref)
    return members


def _check_role(role: str, taken: Mapping[str, object]) -> str:
    if not _ROLE.match(role):
        raise InvalidInputError(
            f"invalid role {role[:80]!r}: use 1-64 characters from a-z 0-9 _ -, starting "
            "with a letter or digit"
        )
    if role in taken:
        raise InvalidInputError(f"role {role!r} is given twice: each role names one member")
    return role


def _pinned(role: str, ref: ModelRef | str) -> ModelRef:
    try:
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
    except InvalidReferenceError as e:
        raise InvalidInputError(f"member {role}: {e.message}") from e
    if parsed.version is None:
        raise InvalidInputError(
            f"member {role}={parsed}: pin a version number (MODEL/VERSION), not an alias"
        )
    return parsed


@dataclass(frozen=True)
class _ReleaseRead:
    key: DeploymentKey
    number: int
    members: tuple[tuple[DeploymentMember, int], ...]  # (member, version row id)


def _read_release(
    context: RegistryContext, name: str, members: Mapping[str, ModelRef]
) -> _ReleaseRead:
    with context.metadata.read() as tx:
        key = require_deployment(tx, name)
        found = []
        for role, ref in sorted(members.items()):
            model = tx.models.find(ref.name)
            if model is None:
                if tx.deployments.find(ref.name) is not None:
                    raise InvalidInputError(
                        f"member {role}={ref}: {ref.name!r} is a deployment; members are "
                        "model versions"
                    )
                raise NotFoundError(f"member {role}={ref}: model {ref.name!r} not found")
            version = tx.versions.find(model, ref.version or 0)
            if version is None:
                raise NotFoundError(f"member {role}={ref}: version {ref} not found")
            if not any(e.kind == _SIGNATURE_KIND for e in tx.evidence.records(version.id)):
                raise InvalidInputError(
                    f"member {role}={ref} has no model signature: sign it first "
                    f"(`mlprov sign {ref} --key KEY`)"
                )
            member = DeploymentMember(role, ref.name, version.number, version.digest)
            found.append((member, version.id))
        return _ReleaseRead(key, key.next_version, tuple(found))


def _statement(
    name: str, number: int, members: Sequence[DeploymentMember], meta: Mapping[str, str]
) -> bytes:
    """The bundle statement: in-toto Statement v1 (spec/v1/statement.md), one subject
    per member named ``ROLE:MODEL/VERSION`` with its manifest digest."""
    from mlprov import provenance  # noqa: PLC0415
    from mlprov.verification import DEPLOYMENT_PREDICATE_TYPE, member_subject  # noqa: PLC0415

    return provenance.Statement(
        subject=tuple(
            provenance.ResourceDescriptor(
                name=member_subject(m.role, m.model, m.version),
                digest={Digest.parse(m.digest).algorithm: Digest.parse(m.digest).hex},
            )
            for m in members
        ),
        predicate_type=DEPLOYMENT_PREDICATE_TYPE,
        predicate={
            "deployment": name,
            "version": number,
            "members": [m.to_json() for m in members],
            "metadata": dict(meta),
        },
    ).to_bytes()


def _checked_release(
    name: str, members: Mapping[str, ModelRef | str], metadata: Mapping[str, str] | None
) -> tuple[dict[str, ModelRef], dict[str, str]]:
    validate_model_name(name)
    pinned: dict[str, ModelRef] = {}
    for role, ref in members.items():
        pinned[_check_role(role, pinned)] = _pinned(role, ref)
    if not pinned:
        raise InvalidInputError(
            "a deployment version needs at least one member (ROLE=MODEL/VERSION)"
        )
    if len(pinned) > MAX_MEMBERS:
        raise InvalidInputError(f"{len(pinned)} members, more than the limit of {MAX_MEMBERS}")
    meta = dict(metadata or {})
    for key, value in meta.items():
        if not isinstance(value, str):
            raise InvalidInputError(f"metadata {key!r}: values are text")
        check_tag(key, value)
    return pinned, meta


def _commit(
    context: RegistryContext,
    read: _ReleaseRead,
    meta: dict[str, str],
    bundle: bytes,
    signer: str,
    reason: str,
) -> DeploymentVersion:
    """Step 3: the version and its members, with compare-and-set on the number
    (:class:`LostRace` when another release took it)."""
    ordered = [member for member, _id in read.members]
    bundle_digest = str(Digest.of_bytes(bundle))
    with mutation(context) as unit:
        unit.expect(unit.tx.deployments.claim_version_number(read.key, read.number))
        version_key = unit.tx.deployments.insert_version(
            read.key,
            number=read.number,
            members=[(m.role, row_id, m.digest) for m, row_id in read.members],
            meta=meta,
            bundle=bundle,
            bundle_digest=bundle_digest,
            signer=signer,
            at=unit.at,
            actor=unit.actor,
        )
        unit.audit(
            "deployment.release",
            version_key.ref,
            {
                "members": [m.to_json() for m in ordered],
                "metadata": meta,
                "bundle_digest": bundle_digest,
                "signer": signer,
            },
            reason,
        )
        return unit.tx.deployments.version_record(version_key)


def release_deployment(
    context: RegistryContext,
    name: str,
    members: Mapping[str, ModelRef | str],
    signer: Signer,
    *,
    metadata: Mapping[str, str] | None = None,
    reason: str = "",
) -> DeploymentVersion:
    """Release the next version of ``name`` (see the module docstring)."""
    pinned, meta = _checked_release(name, members, metadata)
    for _attempt in range(MAX_ATTEMPTS):
        read = _read_release(context, name, pinned)
        statement = _statement(name, read.number, [m for m, _id in read.members], meta)
        signed = signer.sign(statement)  # before the write transaction (rule 4)
        try:
            return _commit(context, read, meta, signed.bundle, str(signed.signer), reason)
        except LostRace:
            continue
    raise ConflictError(f"deployment {name!r} kept getting new versions; retry")


def deployment_statement(
    context: RegistryContext,
    name: str,
    members: Mapping[str, ModelRef | str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """The exact statement bytes the next version of ``name`` would be released with, for
    a signer elsewhere (a client of the HTTP API): sign them, then
    :func:`release_signed_deployment`. Reads only."""
    pinned, meta = _checked_release(name, members, metadata)
    read = _read_release(context, name, pinned)
    return _statement(name, read.number, [m for m, _id in read.members], meta)


def release_signed_deployment(
    context: RegistryContext, name: str, bundle: bytes, *, reason: str = ""
) -> DeploymentVersion:
    """Store a release whose statement was signed elsewhere: the bundle's payload must be
    exactly the statement :func:`deployment_statement` makes now (same members, metadata
    and next version number); otherwise nothing is stored. A version released meanwhile
    is a ConflictError (exit 3): fetch the statement again and sign it."""
    from mlprov import signing  # noqa: PLC0415

    validate_model_name(name)
    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    predicate = inspected.statement.get("predicate")
    if not isinstance(predicate, dict) or not isinstance(predicate.get("members"), list):
        raise InvalidInputError("the bundle's statement is not a deployment bundle statement")
    if predicate.get("deployment") != name:
        raise InvalidInputError(f"the bundle's statement is not about deployment {name!r}")
    members: dict[str, ModelRef | str] = {}
    for item in predicate["members"]:
        if not isinstance(item, dict) or not isinstance(item.get("role"), str):
            raise InvalidInputError("the bundle's statement lists a member without a role")
        members[item["role"]] = f"{item.get('model')}/{item.get('version')}"
    metadata = predicate.get("metadata")
    if not isinstance(metadata, dict):
        raise InvalidInputError("the bundle's statement has no metadata object")
    pinned, meta = _checked_release(name, members, metadata)
    read = _read_release(context, name, pinned)
    if predicate.get("version") != read.number:
        raise ConflictError(
            f"the bundle's statement is for {name}/{predicate.get('version')}, but the next "
            f"version is {read.number}: fetch the statement again and sign it"
        )
    expected = _statement(name, read.number, [m for m, _id in read.members], meta)
    if inspected.payload != expected:
        raise InvalidInputError(
            "the bundle's statement is not the one the registry makes for these members "
            "(a digest or a field differs): sign the statement the registry returns"
        )
    try:
        return _commit(context, read, meta, bundle, str(inspected.carried.signer), reason)
    except LostRace:
        raise ConflictError(
            f"deployment {name!r} got version {read.number} meanwhile: fetch the statement "
            "again and sign it"
        ) from None
