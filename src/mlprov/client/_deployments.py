"""Deployments over HTTP, checked here (docs/client.md, docs/deployments.md).

``deployment create|release|show|list`` call the deployment routes of ``mlprov serve``.
A release is signed here (ADR 0047): the server returns the exact statement the next
version would carry, this client checks that it names exactly the members and metadata
asked for, signs it and posts the bundle.

``verify DEPLOYMENT/N`` and ``pull DEPLOYMENT@ALIAS`` never take the server's word for
what they check. The bundle statement's exact bytes are verified against the caller's
trust with the same pure checks the local registry runs
(:func:`mlprov.verification.deployment_checks`); each member's model signature is
verified here and its signed manifest's digest must be the digest the statement binds;
each member's bytes are hashed as they stream (``verify`` through
:func:`mlprov.client._checks.verify_version`, ``pull`` while they are written into the
one staging folder installed as a whole). A server that changes a member's bytes, its
manifest or the statement makes the check fail and installs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mlprov.config import Limits
from mlprov.errors import DigestMismatchError, MalformedDocumentError, MlprovError
from mlprov.manifest import Digest
from mlprov.records import Deployment, DeploymentMember, DeploymentVersion
from mlprov.refs import ModelRef

if TYPE_CHECKING:
    from mlprov.client._registry import HttpRegistry
    from mlprov.registry.api import ProgressCallback
    from mlprov.signing import Trust
    from mlprov.verification import CheckResult, TrustSet, VerificationReport

__all__ = [
    "check_statement",
    "deployment_from_json",
    "deployment_report",
    "given_trust",
    "member_checks",
    "members_body",
    "version_from_json",
]

#: The name the caller's trust options go by in a deployment report.
_GIVEN = "the trust given"


def deployment_from_json(data: Any) -> Deployment:
    try:
        return Deployment(
            name=str(data["name"]),
            description=str(data["description"]),
            created_at=str(data["created_at"]),
            created_by=str(data["created_by"]),
            latest_version=(
                int(data["latest_version"]) if data["latest_version"] is not None else None
            ),
            aliases={str(k): int(v) for k, v in data["aliases"].items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise MalformedDocumentError(f"the server's deployment does not parse: {e}") from None


def version_from_json(data: Any, bundle: bytes | None) -> DeploymentVersion:
    """A deployment version as the server sends it, with its bundle's exact bytes, which
    must hash to the digest the server lists (None: not fetched, ``bundle`` empty)."""
    try:
        found = DeploymentVersion(
            deployment=str(data["deployment"]),
            version=int(data["version"]),
            members=tuple(
                DeploymentMember(
                    str(m["role"]), str(m["model"]), int(m["version"]), str(m["digest"])
                )
                for m in data["members"]
            ),
            meta={str(k): str(v) for k, v in data["metadata"].items()},
            bundle_digest=str(data["bundle_digest"]),
            signer=str(data["signer"]),
            created_at=str(data["created_at"]),
            created_by=str(data["created_by"]),
            bundle=bundle or b"",
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise MalformedDocumentError(
            f"the server's deployment version does not parse: {e}"
        ) from None
    if bundle is not None and str(Digest.of_bytes(bundle)) != found.bundle_digest:
        raise DigestMismatchError(
            f"{found.ref}: the server sent a bundle whose bytes are not {found.bundle_digest}"
        )
    return found


def members_body(members: Mapping[str, ModelRef | str]) -> dict[str, str]:
    """``{role: "MODEL/VERSION"}`` as ``POST .../statement`` takes it."""
    return {role: str(ref) for role, ref in members.items()}


def check_statement(
    statement: bytes, name: str, members: Mapping[str, str], metadata: Mapping[str, str]
) -> None:
    """Before signing what the server made: the statement is about ``name`` and names
    exactly the members asked for (role, model, version; the digests are the server's
    manifest digests, which ``verify`` and ``pull`` check against each signed manifest),
    its subjects are those members with the same digests, and its metadata is the one
    asked for; otherwise nothing is signed (MalformedDocumentError, exit 2)."""
    from mlprov import documents  # noqa: PLC0415
    from mlprov.verification import DEPLOYMENT_PREDICATE_TYPE, member_subject  # noqa: PLC0415

    refused = (
        f"the server's statement for deployment {name!r} is not the bundle statement of the "
        "members and metadata asked for; nothing was signed"
    )
    parsed = documents.load_json(statement, "the server's deployment statement", Limits())
    predicate = parsed.get("predicate") if isinstance(parsed, dict) else None
    if not isinstance(predicate, dict) or parsed.get("predicateType") != DEPLOYMENT_PREDICATE_TYPE:
        raise MalformedDocumentError(refused)
    try:
        listed = [
            (str(m["role"]), str(m["model"]), int(m["version"]), Digest.parse(str(m["digest"])))
            for m in predicate["members"]
        ]
        subjects = sorted(
            (str(s["name"]), {str(k): str(v) for k, v in s["digest"].items()})
            for s in parsed["subject"]
        )
    except (KeyError, TypeError, ValueError, AttributeError, MlprovError):
        raise MalformedDocumentError(refused) from None
    bound = sorted(
        (member_subject(role, model, number), {digest.algorithm: digest.hex})
        for role, model, number, digest in listed
    )
    if (
        predicate.get("deployment") != name
        or sorted((role, f"{model}/{number}") for role, model, number, _ in listed)
        != sorted(members.items())
        or subjects != bound
        or predicate.get("metadata") != dict(metadata)
    ):
        raise MalformedDocumentError(refused)


def given_trust(trust: Trust) -> TrustSet:
    """The caller's trust options as a trust set: model signers, nothing else (for
    ``verify`` and ``diff`` of a deployment, and ``diff`` of two versions)."""
    from mlprov.verification import TrustedSigner, TrustSet  # noqa: PLC0415

    return TrustSet((TrustedSigner(_GIVEN, frozenset({"model-signer"}), trust),))


def deployment_report(
    version: DeploymentVersion,
    member_digests: Mapping[str, str],
    member_results: tuple[CheckResult, ...],
    trust: Trust,
    *,
    now: datetime | None = None,
) -> VerificationReport:
    """The bundle statement's checks (:func:`mlprov.verification.deployment_checks`,
    the same as locally) against the caller's trust, where each member's current digest
    is the digest of its manifest as signed and verified here (``member_digests`` by
    role, ``"(not verified)"`` when its signature did not verify), followed by the
    members' own checks."""
    from mlprov.verification import (  # noqa: PLC0415
        DeploymentSnapshot,
        MemberSnapshot,
        VerificationReport,
        deployment_checks,
    )

    snapshot = DeploymentSnapshot(
        version.deployment,
        version.version,
        tuple(
            MemberSnapshot(
                m.role, m.model, m.version, m.digest, member_digests.get(m.role, "(not verified)")
            )
            for m in version.members
        ),
        version.meta,
        version.bundle,
    )
    checks = deployment_checks(
        snapshot, given_trust(trust), now=now or datetime.now(timezone.utc), limits=Limits()
    )
    return VerificationReport(version.ref, (*checks, *member_results))


def member_checks(
    client: HttpRegistry,
    member: DeploymentMember,
    trust: Trust,
    *,
    now: datetime | None,
    progress: ProgressCallback | None,
) -> tuple[str | None, tuple[CheckResult, ...]]:
    """``verify`` of one member here (:func:`mlprov.client._checks.verify_version`:
    signature, manifest, every stored file streamed and hashed, its own documents): the
    digest of its signed manifest (None unless the signature verified) and its checks as
    report entries, ``member.NAME`` with the member's reference as subject."""
    from mlprov.client._checks import verify_version  # noqa: PLC0415
    from mlprov.verification import CheckResult, CheckStatus  # noqa: PLC0415

    report = verify_version(client, member.ref, trust, now=now, progress=progress)
    results = tuple(
        CheckResult(
            f"member.{c.name}",
            CheckStatus.PASSED if c.passed else CheckStatus.FAILED,
            c.detail,
            member.ref,
        )
        for c in report.checks
    )
    if not report.passed and not any(r.status == CheckStatus.FAILED for r in results):
        results = (
            *results,
            CheckResult(
                "member.signature",
                CheckStatus.FAILED,
                report.error.message if report.error is not None else "does not verify",
                member.ref,
            ),
        )
    signed = str(report.signature.manifest.digest) if report.signature is not None else None
    return signed, results
