"""Verifying a deployment version's bundle statement: pure, bytes and records in.

The statement (docs/deployments.md, "The bundle statement") is an in-toto Statement v1
whose subjects are the members, ``ROLE:MODEL/VERSION`` with the member's manifest digest,
and whose predicate (:data:`DEPLOYMENT_PREDICATE_TYPE`) repeats the deployment, its
version number, the members and the metadata. It is signed in a DSSE envelope inside a
Sigstore bundle by a model signer. :func:`deployment_checks` verifies the exact stored
bytes (never a re-serialisation) and compares what they say with the stored rows:

* ``deployment.statement``: the signature verifies against a trusted signer holding the
  ``model-signer`` role, and the predicate names this deployment and version number;
* ``deployment.members``: the subjects and the predicate's members are exactly the stored
  members (role, model, version, digest) and the metadata is the stored metadata;
* ``deployment.member``: each member's digest, as bound, is still its version's manifest
  digest (one check per role).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import MlprovError
from mlprov.verification.model import CheckResult, CheckStatus, TrustSet

__all__ = [
    "DEPLOYMENT_PREDICATE_TYPE",
    "DeploymentSnapshot",
    "MemberSnapshot",
    "deployment_checks",
    "member_subject",
]

#: The predicate type of a deployment's bundle statement.
DEPLOYMENT_PREDICATE_TYPE = "https://mlprov.dev/deployment/v1"

_SIGNER_ROLE = "model-signer"


def member_subject(role: str, model: str, version: int) -> str:
    """A member's subject name in the bundle statement: ``encoder:text-enc/7``."""
    return f"{role}:{model}/{version}"


@dataclass(frozen=True)
class MemberSnapshot:
    """A stored member: the digest the deployment version bound (``bound``, e.g.
    ``sha256:HEX``) and its version's manifest digest as the registry holds it now."""

    role: str
    model: str
    version: int
    bound: str
    current: str


@dataclass(frozen=True)
class DeploymentSnapshot:
    deployment: str
    version: int
    members: tuple[MemberSnapshot, ...]
    meta: Mapping[str, str]
    bundle: bytes = field(repr=False)


def _digest_set(digest: str) -> dict[str, str]:
    algorithm, _, hex_value = digest.partition(":")
    return {algorithm: hex_value.lower()}


def deployment_checks(
    snapshot: DeploymentSnapshot,
    trust: TrustSet,
    *,
    now: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[CheckResult, ...]:
    """The checks the module docstring lists, in that order."""
    from mlprov import signing  # noqa: PLC0415 - cryptography only when verifying

    subject = f"{snapshot.deployment}/{snapshot.version}"
    checks: list[CheckResult] = []
    verified = None
    signer_name = ""
    errors = []
    for signer in trust.for_role(_SIGNER_ROLE):
        try:
            verified = signing.verify_attestation(
                snapshot.bundle, signer.trust, limits=limits, now=now
            )
            signer_name = signer.name
            break
        except MlprovError as e:
            errors.append(f"{signer.name}: {e.message}")
    if verified is None:
        why = "; ".join(errors) if errors else f"no trusted signer holds the {_SIGNER_ROLE} role"
        checks.append(
            CheckResult(
                "deployment.statement",
                CheckStatus.FAILED,
                f"the bundle statement does not verify against a trusted model signer: {why}",
                subject,
            )
        )
    else:
        predicate = verified.statement.get("predicate")
        problem = None
        if verified.predicate_type != DEPLOYMENT_PREDICATE_TYPE:
            problem = f"its predicate type is {verified.predicate_type!r}, not a deployment's"
        elif not isinstance(predicate, dict):
            problem = "its predicate is not an object"
        elif (predicate.get("deployment"), predicate.get("version")) != (
            snapshot.deployment,
            snapshot.version,
        ):
            problem = (
                f"it is about {predicate.get('deployment')!r} version "
                f"{predicate.get('version')!r}, not {subject}"
            )
        if problem is not None:
            checks.append(
                CheckResult(
                    "deployment.statement",
                    CheckStatus.FAILED,
                    f"the bundle statement verifies (signed by {signer_name}) but {problem}",
                    subject,
                )
            )
        else:
            assert isinstance(predicate, dict)
            checks.append(
                CheckResult(
                    "deployment.statement",
                    CheckStatus.PASSED,
                    f"signed by trusted model signer {signer_name} ({verified.signer})",
                    subject,
                )
            )
            checks.append(_members_check(snapshot, verified.subjects, predicate, subject))
    for member in snapshot.members:
        ref = f"{member.model}/{member.version}"
        if member.bound == member.current:
            checks.append(
                CheckResult(
                    "deployment.member",
                    CheckStatus.PASSED,
                    f"{member.role}: {ref} still has the manifest digest {member.bound}",
                    subject,
                )
            )
        else:
            checks.append(
                CheckResult(
                    "deployment.member",
                    CheckStatus.FAILED,
                    f"{member.role}: {ref} was bound by {member.bound}, but its manifest "
                    f"digest is now {member.current}",
                    subject,
                )
            )
    return tuple(checks)


def _members_check(
    snapshot: DeploymentSnapshot,
    subjects: tuple[tuple[str, dict[str, str]], ...],
    predicate: dict[str, object],
    subject: str,
) -> CheckResult:
    stored_subjects = sorted(
        (member_subject(m.role, m.model, m.version), _digest_set(m.bound)) for m in snapshot.members
    )
    signed_subjects = sorted((name, dict(digest)) for name, digest in subjects)
    stored_members = [
        {"role": m.role, "model": m.model, "version": m.version, "digest": m.bound}
        for m in sorted(snapshot.members, key=lambda m: m.role)
    ]
    problems = []
    if signed_subjects != stored_subjects:
        problems.append(
            "its subjects ("
            + ", ".join(name for name, _ in signed_subjects)
            + ") are not the stored members ("
            + ", ".join(name for name, _ in stored_subjects)
            + ") with their digests"
        )
    if predicate.get("members") != stored_members:
        problems.append("its predicate's members are not the stored members")
    if predicate.get("metadata") != dict(snapshot.meta):
        problems.append("its metadata is not the stored metadata")
    if problems:
        return CheckResult(
            "deployment.members",
            CheckStatus.FAILED,
            "the bundle statement: " + "; ".join(problems),
            subject,
        )
    return CheckResult(
        "deployment.members",
        CheckStatus.PASSED,
        f"the signed statement names exactly the {len(stored_members)} stored members, "
        "their digests and the metadata",
        subject,
    )
