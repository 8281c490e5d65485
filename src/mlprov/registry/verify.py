"""``mlprov verify REF`` with the registry's trust, as serving and ``status`` see it.

The verification engine and the alias's policy judge the version (:func:`judge`); three
checks are added here because they read more than the version's snapshot:

* ``registry.alias`` (``NAME@ALIAS``): the alias's stored pointer equals what the newest
  audit entry that moved it says, that entry's hash and link recomputed, so a pointer
  edited in the database is reported and never served (issue 9, item 2);
* ``signature.narrowed``: trust options given on the command line narrow the registry's
  trust: the model signature must also verify with them (they never widen it);
* ``files.deep`` (``--deep``): every stored blob of the version and of each registered
  ancestor the lineage checks reached is re-hashed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from mlprov.errors import InvalidInputError, MlprovError
from mlprov.refs import LATEST, ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, require_model, resolve
from mlprov.registry.policies import Judgement, judge, parse_target

if TYPE_CHECKING:
    from mlprov.policy import Target
    from mlprov.signing import Trust
    from mlprov.verification import CheckResult

__all__ = ["judge_resolved", "verify_registered"]


def verify_registered(
    context: RegistryContext,
    ref: ModelRef | str,
    *,
    deep: bool = False,
    narrow: Trust | None = None,
    progress: Callable[[int], None] | None = None,
) -> Judgement:
    """The engine's report with the registry's trust and, for ``NAME@ALIAS``, the alias's
    policy's decision on the version it holds, plus the checks the module docstring lists."""
    parsed = coerce_ref(ref)
    with context.metadata.read() as tx:
        deployment = tx.models.find(parsed.name) is None and tx.deployments.find(parsed.name)
        key = resolve(tx, parsed) if not deployment else None
    if key is None:  # a deployment (one namespace with models, ADR 0050)
        from mlprov.registry.deployment_judge import verify_deployment  # noqa: PLC0415

        if narrow is not None:
            raise InvalidInputError(
                f"{ref}: trust options narrow a model signature; a deployment is verified "
                "with the registry's trust"
            )
        return verify_deployment(context, parsed, deep=deep, progress=progress)
    target = (
        parse_target(parsed.alias) if parsed.alias is not None and parsed.alias != LATEST else None
    )
    return judge_resolved(
        context, key.name, target, key.number, deep=deep, narrow=narrow, progress=progress
    )


def judge_resolved(
    context: RegistryContext,
    model: str,
    target: Target | None,
    number: int,
    *,
    deep: bool = False,
    narrow: Trust | None = None,
    progress: Callable[[int], None] | None = None,
) -> Judgement:
    """:func:`verify_registered` for a version already resolved (``pull`` resolves an
    alias once and judges exactly that number)."""
    judgement = judge(context, model, target, number, None)
    ref = ModelRef(model, version=number)
    added: list[CheckResult] = []
    if target is not None and target.kind == "alias":
        added.append(_alias_against_audit(context, model, target.name))
    if narrow is not None:
        added.append(_narrowed(context, ref, narrow))
    if deep:
        added.extend(_deep(context, ref, judgement, progress))
    if not added:
        return judgement
    report = replace(judgement.report, checks=(*judgement.report.checks, *added))
    return replace(judgement, report=report)


def _alias_against_audit(context: RegistryContext, model: str, alias: str) -> CheckResult:
    from mlprov.audit import POINTER_ACTIONS, pointer_against_chain  # noqa: PLC0415
    from mlprov.verification import CheckResult, CheckStatus  # noqa: PLC0415

    subject = f"{model}@{alias}"
    with context.metadata.read() as tx:
        pointer = tx.aliases.pointer(require_model(tx, model), alias)
        entry = tx.audit.latest(subject, POINTER_ACTIONS)
        previous = tx.audit.hash_at(entry.seq - 1) if entry is not None else None
    problem = pointer_against_chain(
        entry, previous, version=pointer.version, generation=pointer.generation
    )
    if problem is not None:
        return CheckResult("registry.alias", CheckStatus.FAILED, problem, subject)
    assert entry is not None
    return CheckResult(
        "registry.alias",
        CheckStatus.PASSED,
        f"points at version {pointer.version} (generation {pointer.generation}) as audit "
        f"entry {entry.seq} recorded",
        subject,
    )


def _narrowed(context: RegistryContext, ref: ModelRef, trust: Trust) -> CheckResult:
    """The stored model signature against the caller's trust, and its manifest against the
    registry's (no bytes read: ``--deep`` does that)."""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.registry.signatures import signature_of  # noqa: PLC0415
    from mlprov.registry.versions import manifest  # noqa: PLC0415
    from mlprov.verification import CheckResult, CheckStatus  # noqa: PLC0415

    subject = str(ref)
    try:
        report = signing.verify_bundle_report(
            signature_of(context, ref), trust, limits=context.limits
        )
        if not report.passed or report.signature is None:
            why = report.error.message if report.error is not None else "it does not verify"
            return CheckResult(
                "signature.narrowed",
                CheckStatus.FAILED,
                f"the model signature does not verify with the trust options given: {why}",
                subject,
            )
        signing.match_manifest(report.signature.manifest, manifest(context, ref))
    except MlprovError as e:
        return CheckResult(
            "signature.narrowed",
            CheckStatus.FAILED,
            f"the model signature does not verify with the trust options given: {e.message}",
            subject,
        )
    return CheckResult(
        "signature.narrowed",
        CheckStatus.PASSED,
        f"the model signature also verifies with the trust options given "
        f"(signed by {report.signature.signer})",
        subject,
    )


def _deep(
    context: RegistryContext,
    ref: ModelRef,
    judgement: Judgement,
    progress: Callable[[int], None] | None,
) -> list[CheckResult]:
    """``files.deep`` for the version and each registered ancestor its lineage checks
    named, nearest first, each once."""
    from mlprov.registry.signatures import check_stored_bytes  # noqa: PLC0415
    from mlprov.registry.versions import get_version, manifest  # noqa: PLC0415
    from mlprov.verification import CheckResult, CheckStatus  # noqa: PLC0415

    subjects = [str(ref)]
    for check in judgement.report.checks:
        kind, _, target = check.id.partition(":")
        if kind.startswith("lineage.") and target and target not in subjects:
            try:
                if ModelRef.parse(target).version is not None:
                    subjects.append(target)
            except MlprovError:
                continue  # an external reference (hf://...): no stored bytes here
    results = []
    for subject in subjects:
        try:
            record = get_version(context, subject)
        except MlprovError:
            continue  # an unregistered ancestor: its lineage check already failed
        recorded = manifest(context, record.ref)
        try:
            check_stored_bytes(context, record, recorded, progress)
            results.append(
                CheckResult(
                    "files.deep",
                    CheckStatus.PASSED,
                    f"{len(recorded)} stored files, {recorded.total_size} bytes re-hashed: "
                    f"each matches its recorded {recorded.algorithm} digest",
                    str(record.ref),
                )
            )
        except MlprovError as e:
            results.append(
                CheckResult("files.deep", CheckStatus.FAILED, e.message, str(record.ref))
            )
    return results
