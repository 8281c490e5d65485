"""Serving: resolve an alias once, verify the version as the gate would, install it.

``mlprov pull NAME@ALIAS --to DIR`` and :func:`mlprov.load_verified` resolve the alias to
a version number once, then judge that version with the trust and the policies of the
registry's active policy set for that alias (:func:`mlprov.registry.verify.judge_resolved`,
which also checks the alias's pointer against the audit log): the
policy serving enforces lives with the alias in the registry, and no caller option can
weaken it. Only when verification and policy pass are the files installed, atomically,
each digest checked while writing, with the version's ``model.sig``; any failure leaves
the target folder as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlprov.errors import InvalidInputError, PolicyDenied, VerificationError
from mlprov.records import ModelVersion
from mlprov.refs import LATEST, ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, resolve
from mlprov.registry.download import download
from mlprov.registry.policies import Judgement, parse_target
from mlprov.registry.verify import judge_resolved

__all__ = ["PulledVersion", "install_alias_version", "pull"]

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class PulledVersion:
    """What :func:`pull` installed, and the judgement that allowed it."""

    version: ModelVersion
    path: Path
    judgement: Judgement


def pull(
    context: RegistryContext,
    ref: ModelRef | str,
    to: Path,
    *,
    progress: ProgressCallback | None = None,
    sync: bool = True,
) -> PulledVersion:
    """Install ``NAME@ALIAS`` at ``to`` only if it verifies and passes its policy
    (fsynced unless ``sync`` is false: ``mlprov pull --no-sync``)."""
    parsed = coerce_ref(ref)
    if parsed.alias is None or parsed.alias == LATEST:
        raise InvalidInputError(
            f"{ref}: pull takes NAME@ALIAS (an alias its policy protects), not a number or latest"
        )
    with context.metadata.read() as tx:
        number = resolve(tx, parsed).number  # resolved once: a move meanwhile changes nothing
    return install_alias_version(context, parsed, number, Path(to), progress=progress, sync=sync)


def install_alias_version(
    context: RegistryContext,
    ref: ModelRef,
    number: int,
    to: Path,
    *,
    progress: ProgressCallback | None = None,
    sync: bool = True,
) -> PulledVersion:
    """Judge version ``number`` as ``ref``'s alias would, then install it at ``to`` with
    its signature and install record; raise and install nothing on any failure. For a
    caller that already resolved the alias (:func:`pull`, or a signed resolution in
    :mod:`mlprov.registry.resolution`)."""
    alias = ref.alias or ""
    judgement = judge_resolved(context, ref.name, parse_target(alias), number)
    if judgement.policy_digest is None or judgement.decision is None:
        raise VerificationError(
            f"{ref}: no policy set is applied, so nothing is trusted to verify it against "
            "(apply one with `mlprov policy apply DIR`)"
        )
    failures = list(judgement.report.failures)
    if failures:
        first = failures[0]
        raise VerificationError(
            f"{ref} -> {ref.name}/{number}: {first.id}: {first.message}"
            + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        )
    if not judgement.decision.allowed:
        raise PolicyDenied(f"{ref} -> {ref.name}/{number}: {judgement.decision.message}")
    record = download(
        context,
        ModelRef(ref.name, version=number),
        Path(to),
        progress=progress,
        record_install=True,
        sync=sync,
    )
    return PulledVersion(record, Path(to), judgement)
