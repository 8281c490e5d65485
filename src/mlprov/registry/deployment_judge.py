"""Judging a deployment version: verify it, judge each member, decide by policy; and the
``verify`` and ``pull`` of a deployment reference.

:func:`judge_deployment` is what the gate (a deployment alias move), ``mlprov verify
DEPLOYMENT/N`` and ``mlprov pull DEPLOYMENT@ALIAS`` share. It reads the deployment
version and its members in one read transaction, then, outside it:

1. verifies the bundle statement with the trust of the active policy set
   (:func:`mlprov.verification.deployment_checks`);
2. judges every member with :func:`mlprov.registry.policies.judge`: its verification
   report, and its own model policy's decision for each alias a selected deployment
   policy's ``members_pass`` names (as the gate would judge moving that alias to it);
3. with ``deep``, re-hashes every member's stored bytes (``files.deep``);
4. decides the move by the deployment policies (:func:`mlprov.policy.evaluate_deployment`).

The report holds the deployment's checks and every member's checks (each with its
member's reference as subject). Built in, whatever the policies say: a deployment with a
revoked member is never a move's target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mlprov.errors import InvalidInputError, MlprovError, PolicyDenied, VerificationError
from mlprov.refs import LATEST, ModelRef
from mlprov.registry._context import RegistryContext
from mlprov.registry.deployments import require_deployment, resolve_deployment
from mlprov.registry.policies import Judgement, judge, load_policy
from mlprov.store.deployments import DeploymentVersion

if TYPE_CHECKING:
    from mlprov.policy import DeploymentMemberJudgement, PolicySet, Target
    from mlprov.verification import CheckResult

__all__ = [
    "PulledDeployment",
    "judge_deployment",
    "pull_deployment",
    "verify_deployment",
]

ProgressCallback = Callable[[int], None]

#: The signed bundle statement written beside the members of a pulled deployment.
BUNDLE_FILE_NAME = "deployment.sig"


@dataclass(frozen=True)
class _Read:
    version: DeploymentVersion
    current_digests: dict[str, str]  # role -> the member version's manifest digest now
    model_aliases: dict[tuple[str, str], int | None]  # (model, alias) -> version now


def _read(context: RegistryContext, name: str, number: int, aliases: set[str]) -> _Read:
    with context.metadata.read() as tx:
        key = require_deployment(tx, name)
        found = tx.deployments.find_version(key, number)
        if found is None:
            raise VerificationError(f"deployment version {name}/{number} not found")
        version = tx.deployments.version_record(found)
        digests = {}
        pointers: dict[tuple[str, str], int | None] = {}
        for member in version.members:
            model = tx.models.find(member.model)
            row = tx.versions.find(model, member.version) if model is not None else None
            digests[member.role] = row.digest if row is not None else "(missing)"
            for alias in aliases:
                pointers[(member.model, alias)] = (
                    tx.aliases.pointer(model, alias).version if model is not None else None
                )
    return _Read(version, digests, pointers)


def _policy_set(context: RegistryContext) -> PolicySet | None:
    with context.metadata.read() as tx:
        stored = tx.policies.active()
    return load_policy(stored.files, context, stored.digest or None) if stored else None


def judge_deployment(
    context: RegistryContext,
    name: str,
    target: Target | None,
    to_version: int | None,
    from_version: int | None,
    *,
    deep: bool = False,
    progress: ProgressCallback | None = None,
    subject: str | None = None,
) -> Judgement:
    """Verify deployment version ``name/to_version`` and, with a ``target``, decide
    moving that alias to it (None: deleting the alias). See the module docstring."""
    from mlprov.policy import (  # noqa: PLC0415
        DeploymentGateContext,
        DeploymentMemberJudgement,
        Target,
        evaluate_deployment,
    )
    from mlprov.verification import (  # noqa: PLC0415
        DeploymentSnapshot,
        MemberSnapshot,
        TrustSet,
        VerificationReport,
        deployment_checks,
    )

    now = datetime.now(timezone.utc)
    policy_set = _policy_set(context)
    selected = (
        policy_set.selecting_deployment(name, target)
        if policy_set is not None and target is not None
        else ()
    )
    aliases = {
        r.members_target or (target.name if target is not None else "")
        for p in selected
        for r in p.requirements
        if r.kind == "members_pass"
    }
    shown = subject or f"{name}/{to_version}"
    if to_version is None:
        report = VerificationReport(shown, ())
        members: tuple[DeploymentMemberJudgement, ...] = ()
        meta: dict[str, str] = {}
    else:
        read = _read(context, name, to_version, aliases)
        trust = policy_set.trust if policy_set is not None else TrustSet()
        snapshot = DeploymentSnapshot(
            name,
            to_version,
            tuple(
                MemberSnapshot(m.role, m.model, m.version, m.digest, read.current_digests[m.role])
                for m in read.version.members
            ),
            read.version.meta,
            read.version.bundle,
        )
        checks: list[CheckResult] = list(
            deployment_checks(snapshot, trust, now=now, limits=context.limits)
        )
        judged = []
        for member in read.version.members:
            decisions = {}
            member_report = None
            for alias in sorted(aliases):
                judgement = judge(
                    context,
                    member.model,
                    Target("alias", alias),
                    member.version,
                    read.model_aliases.get((member.model, alias)),
                )
                decisions[alias] = judgement.decision
                member_report = judgement.report
            if member_report is None:
                member_report = judge(context, member.model, None, member.version, None).report
            checks.extend(member_report.checks)
            if deep:
                checks.append(_deep(context, member.ref, progress))
            judged.append(
                DeploymentMemberJudgement(
                    member.role,
                    member.model,
                    member.version,
                    member.digest,
                    member_report,
                    decisions,
                )
            )
        members = tuple(judged)
        meta = read.version.meta
        report = VerificationReport(shown, tuple(checks))
    digest = policy_set.digest if policy_set is not None else None
    if policy_set is None or target is None:
        return Judgement(report, None, digest)
    decision = evaluate_deployment(
        policy_set,
        deployment=name,
        target=target,
        report=report,
        context=DeploymentGateContext(now, from_version, to_version, meta, members),
    )
    return Judgement(report, decision, digest)


def _deep(context: RegistryContext, ref: str, progress: ProgressCallback | None) -> CheckResult:
    from mlprov.registry.signatures import check_stored_bytes  # noqa: PLC0415
    from mlprov.registry.versions import get_version, manifest  # noqa: PLC0415
    from mlprov.verification import CheckResult, CheckStatus  # noqa: PLC0415

    try:
        record = get_version(context, ref)
        recorded = manifest(context, record.ref)
        check_stored_bytes(context, record, recorded, progress)
    except MlprovError as e:
        return CheckResult("files.deep", CheckStatus.FAILED, e.message, ref)
    return CheckResult(
        "files.deep",
        CheckStatus.PASSED,
        f"{len(recorded)} stored files, {recorded.total_size} bytes re-hashed: each "
        f"matches its recorded {recorded.algorithm} digest",
        ref,
    )


def _target_of(ref: ModelRef) -> Target | None:
    from mlprov.registry.policies import parse_target  # noqa: PLC0415

    if ref.alias is None or ref.alias == LATEST:
        return None
    return parse_target(ref.alias)


def verify_deployment(
    context: RegistryContext,
    ref: ModelRef,
    *,
    deep: bool = False,
    progress: ProgressCallback | None = None,
) -> Judgement:
    """``mlprov verify DEPLOYMENT/N`` (verification only) or ``DEPLOYMENT@ALIAS`` (also
    the alias's deployment policy's decision on the version it holds)."""
    with context.metadata.read() as tx:
        number = resolve_deployment(tx, ref).number
    judgement = judge_deployment(
        context,
        ref.name,
        _target_of(ref),
        number,
        None,
        deep=deep,
        progress=progress,
        subject=str(ref),
    )
    return _with_alias_check(context, ref, judgement)


def _with_alias_check(context: RegistryContext, ref: ModelRef, judgement: Judgement) -> Judgement:
    """For ``NAME@ALIAS``, the ``registry.alias`` check as for a model alias: the stored
    pointer equals what the newest audit entry that moved it says, that entry's hash and
    link recomputed, so a pointer edited in the database is reported and never served."""
    from mlprov.audit import DEPLOYMENT_POINTER_ACTIONS, pointer_against_chain  # noqa: PLC0415
    from mlprov.verification import CheckResult, CheckStatus  # noqa: PLC0415

    if ref.alias is None or ref.alias == LATEST:
        return judgement
    subject = str(ref)
    with context.metadata.read() as tx:
        pointer = tx.deployment_aliases.pointer(require_deployment(tx, ref.name), ref.alias)
        entry = tx.audit.latest(subject, DEPLOYMENT_POINTER_ACTIONS)
        previous = tx.audit.hash_at(entry.seq - 1) if entry is not None else None
    version, generation = pointer.version, pointer.generation
    problem = pointer_against_chain(entry, previous, version=version, generation=generation)
    if problem is not None:
        check = CheckResult("registry.alias", CheckStatus.FAILED, problem, subject)
    else:
        assert entry is not None
        check = CheckResult(
            "registry.alias",
            CheckStatus.PASSED,
            f"points at version {version} (generation {generation}) as audit entry "
            f"{entry.seq} recorded",
            subject,
        )
    report = replace(judgement.report, checks=(*judgement.report.checks, check))
    return replace(judgement, report=report)


@dataclass(frozen=True)
class PulledDeployment:
    """What :func:`pull_deployment` installed (``path/ROLE/`` per member), and why."""

    version: DeploymentVersion
    path: Path
    judgement: Judgement


def pull_deployment(
    context: RegistryContext,
    ref: ModelRef,
    to: Path,
    *,
    progress: ProgressCallback | None = None,
    sync: bool = True,
) -> PulledDeployment:
    """Install every member of ``DEPLOYMENT@ALIAS`` at ``to/ROLE``, verified, atomically
    as a whole (one :func:`mlprov.fs.install_folder`), with the signed bundle statement
    as ``to/deployment.sig``; only if the deployment verifies and its alias's deployment
    policy allows it. On any failure ``to`` is left as it was."""
    from mlprov.fs import current_umask, install_folder, write_file_atomically  # noqa: PLC0415
    from mlprov.registry.download import download  # noqa: PLC0415

    if ref.alias is None or ref.alias == LATEST:
        raise InvalidInputError(
            f"{ref}: pull takes NAME@ALIAS (an alias its policy protects), not a number or latest"
        )
    with context.metadata.read() as tx:
        number = resolve_deployment(tx, ref).number  # resolved once
    judgement = _with_alias_check(
        context,
        ref,
        judge_deployment(context, ref.name, _target_of(ref), number, None, subject=str(ref)),
    )
    if judgement.policy_digest is None or judgement.decision is None:
        raise VerificationError(
            f"{ref}: no policy set is applied, so nothing is trusted to verify it against "
            "(apply one with `mlprov policy apply DIR`)"
        )
    failures = judgement.report.failures
    if failures:
        first = failures[0]
        raise VerificationError(
            f"{ref} -> {ref.name}/{number}: {first.id} ({first.subject}): {first.message}"
            + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        )
    if not judgement.decision.allowed:
        raise PolicyDenied(f"{ref} -> {ref.name}/{number}: {judgement.decision.message}")
    version = _read(context, ref.name, number, set()).version

    def fill(staging: Path) -> None:
        # Each member installs (digest-checked, with its signature and install record)
        # into the staging folder; the whole moves into place only after the last one.
        for member in version.members:
            download(
                context,
                ModelRef(member.model, version=member.version),
                staging / member.role,
                progress=progress,
                record_install=True,
                sync=sync,
            )
        write_file_atomically(
            staging / BUNDLE_FILE_NAME,
            version.bundle,
            mode=0o666 & ~current_umask(),
            what="deployment bundle",
        )

    install_folder(Path(to), fill, sync=sync)
    return PulledDeployment(version, Path(to), judgement)
