"""The deployment's own steps of ``mlprov import`` for an archive of kind ``deployment``
(docs/transfer.md, ADR 0051); :mod:`mlprov.registry.importing` runs them beside the
member versions' steps.

* **Read** (:func:`read_release`): the release record is parsed strictly; it must be the
  release the signed listing's ``root`` names, its members must be versions the archive
  carries with their bytes and with the digests the record binds, and the bundle
  statement member must have the bundle digest the record gives.
* **Verify** (:func:`verify_release`): the exact bundle bytes through the same pure
  checks as ``mlprov verify DEPLOYMENT/N`` (:func:`mlprov.verification.deployment_checks`)
  with this registry's trust: signed by a trusted model signer, about this deployment
  and number, naming exactly the archived members, their digests and the metadata.
* **Write** (:func:`write_release_in`, inside the import's one Mutation): the deployment
  if absent, then the version with the same number and the exact bundle bytes (a
  compare-and-set on the number, as a version import's), and a ``deployment.import``
  audit entry with the archive's digest.

The same release already here (same bundle digest) is a no-op; the number taken by
another release, or the name taken by a model, is a conflict (exit 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mlprov.errors import (
    ConflictError,
    InvalidInputError,
    MalformedDocumentError,
    VerificationError,
)
from mlprov.manifest import Digest
from mlprov.refs import validate_model_name
from mlprov.registry._context import RegistryContext
from mlprov.registry._unit import Mutation
from mlprov.registry.archive_reading import ArchiveReading, deployment_documents
from mlprov.registry.deployments import MAX_MEMBERS, parse_members
from mlprov.registry.inputs import check_tag
from mlprov.store import StoreTransaction
from mlprov.store.deployments import DeploymentMember, DeploymentVersion

if TYPE_CHECKING:
    from mlprov.verification import TrustSet

__all__ = [
    "ArchivedRelease",
    "present_release",
    "read_release",
    "verify_release",
    "write_release_in",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _ArchivedMember(_Strict):
    role: str
    model: str
    version: int
    digest: str


class _ArchivedRelease(_Strict):
    deployment: str
    version: int
    members: list[_ArchivedMember]
    metadata: dict[str, str]
    bundle_digest: str
    signer: str
    created_at: str
    created_by: str
    description: str


@dataclass(frozen=True)
class ArchivedRelease:
    """A deployment version as read from an archive and checked against it."""

    name: str
    number: int
    description: str
    members: tuple[DeploymentMember, ...]
    meta: dict[str, str]
    bundle: bytes
    bundle_digest: str
    signer: str

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.number}"


def _stored_release(
    tx: StoreTransaction, name: str, number: int, bundle_digest: str
) -> DeploymentVersion | None:
    """The release here when it is this one; None when absent; ConflictError when the
    name or the number is taken by something else."""
    if tx.models.find(name) is not None:
        raise ConflictError(
            f"{name!r} is a model here; a deployment cannot have its name: nothing was imported"
        )
    key = tx.deployments.find(name)
    if key is None:
        return None
    found = tx.deployments.find_version(key, number)
    if found is None:
        if key.next_version > number:
            raise ConflictError(
                f"{name}/{number}: number {number} of deployment {name} was already given "
                "here; nothing was imported"
            )
        return None
    stored = tx.deployments.version_record(found)
    if stored.bundle_digest != bundle_digest:
        raise ConflictError(
            f"{name}/{number} exists here with another bundle statement "
            f"({stored.bundle_digest[:23]}...); nothing was imported"
        )
    return stored


def present_release(context: RegistryContext, reading: ArchiveReading) -> DeploymentVersion | None:
    """Right after the signed listing is read: the release here already (the same bundle
    digest as the listing gives its bundle member), for a no-op; a conflict is raised
    before any blob is stored."""
    from mlprov.refs import ModelRef  # noqa: PLC0415

    assert reading.predicate is not None
    root = ModelRef.parse(reading.predicate.root)
    _record, bundle_member = deployment_documents(reading.predicate)
    listed = [m.sha256 for m in reading.predicate.members if m.path == bundle_member]
    if len(listed) != 1:
        raise InvalidInputError(
            f"archive refused: its manifest does not list the bundle statement of {root}"
        )
    validate_model_name(root.name)
    with context.metadata.read() as tx:
        return _stored_release(tx, root.name, root.version or 0, f"sha256:{listed[0]}")


def read_release(context: RegistryContext, reading: ArchiveReading) -> ArchivedRelease:
    """The release record and bundle of a fully read archive, checked against the archive
    (module docstring, "Read")."""
    from mlprov import signing  # noqa: PLC0415

    assert reading.predicate is not None
    record_member, bundle_member = deployment_documents(reading.predicate)
    data = reading.documents.get(record_member)
    bundle = reading.documents.get(bundle_member)
    if data is None or bundle is None:
        raise InvalidInputError(
            f"archive refused: the release record or bundle of {reading.predicate.root} is missing"
        )
    try:
        archived = _ArchivedRelease.model_validate(json.loads(data))
    except (ValidationError, ValueError) as e:
        raise MalformedDocumentError(
            f"archive refused: {record_member[:120]!r} is malformed"
        ) from e
    ref = f"{archived.deployment}/{archived.version}"
    if ref != reading.predicate.root:
        raise InvalidInputError(
            f"archive refused: its release record is {ref[:120]}, not {reading.predicate.root}"
        )
    if str(Digest.of_bytes(bundle)) != archived.bundle_digest:
        raise VerificationError(
            f"archive refused: the bundle statement of {ref} is not the one its release "
            "record binds"
        )
    if not archived.members or len(archived.members) > MAX_MEMBERS:
        raise InvalidInputError(f"archive refused: {ref} has no members or too many")
    parse_members([f"{m.role}={m.model}/{m.version}" for m in archived.members])
    for key, value in archived.metadata.items():
        check_tag(key, value)
    if len(archived.description) > 4096 or "\x00" in archived.description:
        raise InvalidInputError(f"archive refused: the description of {ref} is malformed")
    members = tuple(
        DeploymentMember(m.role, m.model, m.version, m.digest)
        for m in sorted(archived.members, key=lambda m: m.role)
    )
    for member in members:
        carried = reading.versions.get(member.ref)
        if carried is None or not carried.with_bytes:
            raise InvalidInputError(
                f"archive refused: member {member.role}={member.ref} of {ref} is not in the "
                "archive with its bytes"
            )
        if carried.record.digest != member.digest:
            raise VerificationError(
                f"archive refused: member {member.role}={member.ref} of {ref} is bound by "
                f"{member.digest[:23]}..., but the archived version has {carried.record.digest}"
            )
    # The signer as the bundle carries it (what a release here records), not as the
    # archived record says: the record is only a view of the signed bytes.
    signer = str(signing.inspect_attestation(bundle, limits=context.limits).carried.signer)
    return ArchivedRelease(
        archived.deployment,
        archived.version,
        archived.description,
        members,
        dict(archived.metadata),
        bundle,
        archived.bundle_digest,
        signer,
    )


def verify_release(
    context: RegistryContext, release: ArchivedRelease, trust: TrustSet, now: datetime
) -> None:
    """The bundle statement's checks with this registry's trust (module docstring)."""
    from mlprov.verification import (  # noqa: PLC0415
        CheckStatus,
        DeploymentSnapshot,
        MemberSnapshot,
        deployment_checks,
    )

    snapshot = DeploymentSnapshot(
        release.name,
        release.number,
        tuple(
            # ``current`` is the archived version's digest, checked equal in read_release
            # (and equal to the version here, or the import's plan refused it).
            MemberSnapshot(m.role, m.model, m.version, m.digest, m.digest)
            for m in release.members
        ),
        release.meta,
        release.bundle,
    )
    checks = deployment_checks(snapshot, trust, now=now, limits=context.limits)
    failures = [c for c in checks if c.status is CheckStatus.FAILED]
    if failures or len(checks) < 2 + len(release.members):
        first = failures[0] if failures else checks[0]
        raise VerificationError(
            f"import refused: {release.ref} does not verify with this registry's trust: "
            f"{first.id}: {first.message}"
        )


def write_release_in(
    unit: Mutation, reading: ArchiveReading, release: ArchivedRelease
) -> DeploymentVersion | None:
    """Write the release (module docstring, "Write"); None when it is here already."""
    assert reading.predicate is not None
    tx = unit.tx
    if _stored_release(tx, release.name, release.number, release.bundle_digest) is not None:
        return None
    key = tx.deployments.find(release.name)
    if key is None:
        key = tx.deployments.insert(
            name=release.name, description=release.description, at=unit.at, actor=unit.actor
        )
        unit.audit("deployment.create", release.name, {"description": release.description})
    unit.expect(tx.deployments.claim_imported_number(key, release.number))
    rows: list[tuple[str, int, str]] = []
    for member in release.members:
        model = tx.models.find(member.model)
        version = tx.versions.find(model, member.version) if model is not None else None
        if version is None or version.digest != member.digest:
            raise ConflictError(
                f"member {member.role}={member.ref} of {release.ref} changed meanwhile; "
                "nothing was imported: retry"
            )
        rows.append((member.role, version.id, member.digest))
    version_key = tx.deployments.insert_version(
        key,
        number=release.number,
        members=rows,
        meta=release.meta,
        bundle=release.bundle,
        bundle_digest=release.bundle_digest,
        signer=release.signer,
        at=unit.at,
        actor=unit.actor,
    )
    details: dict[str, Any] = {
        "archive": reading.archive_digest,
        "bundle_digest": release.bundle_digest,
        "members": [m.to_json() for m in release.members],
        "origin_registry": reading.predicate.origin.registry_id,
        "origin_uri": reading.predicate.origin.uri,
        "origin_version": reading.predicate.root,
    }
    unit.audit("deployment.import", version_key.ref, details)
    return tx.deployments.version_record(version_key)
