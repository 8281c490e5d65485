"""Approvals: a signed statement that someone approves a version for an alias or stage.

An approval is evidence of kind ``approval``: an in-toto statement about the version's
digest (predicate ``https://mlprov.dev/approval/v1``: the target, a comment, the time),
signed outside any transaction by the approver and stored as the exact bundle bytes. The
gate counts approvals by distinct verified identity of a trusted approver; this module
only records and lists them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlprov.canonical import canonical_json
from mlprov.errors import InvalidInputError
from mlprov.records import Evidence, ModelVersion, Stage
from mlprov.refs import ModelRef, validate_alias
from mlprov.registry._context import RegistryContext, resolve, utc_now
from mlprov.registry._unit import mutation
from mlprov.registry.evidence import add_evidence_in, evidence_content
from mlprov.registry.types import Approval, NewEvidence
from mlprov.registry.versions import get_version

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = [
    "APPROVAL_KIND",
    "APPROVAL_PREDICATE_TYPE",
    "Approval",
    "approval_statement",
    "approval_target",
    "approvals",
    "approve",
    "check_approval",
]

APPROVAL_KIND = "approval"
APPROVAL_PREDICATE_TYPE = "https://mlprov.dev/approval/v1"
_MAX_COMMENT = 4096


def approval_target(text: str) -> str:
    """An alias name, or a stage (``stage:Production``)."""
    if text.startswith("stage:"):
        return f"stage:{Stage.parse(text.partition(':')[2]).value}"
    validate_alias(text)
    return text


def approve(
    context: RegistryContext,
    ref: ModelRef | str,
    target: str,
    signer: Signer,
    *,
    comment: str = "",
) -> Evidence:
    """Sign and store an approval of a version for ``target`` (an alias, or
    ``stage:NAME``)."""
    from mlprov import signing  # noqa: PLC0415

    check_approval(target, comment)
    version = get_version(context, ref)
    signed = signer.sign(approval_statement(version, target, comment))
    new = NewEvidence(
        APPROVAL_KIND,
        signing.BUNDLE_MEDIA_TYPE,
        APPROVAL_PREDICATE_TYPE,
        signed.bundle,
        str(signed.signer),
    )
    with mutation(context) as unit:
        key = resolve(unit.tx, ModelRef(version.name, version=version.version))
        return add_evidence_in(unit, key, new)


def check_approval(target: str, comment: str) -> str:
    """The approval's target, normalised; raises for a bad target or comment."""
    wanted = approval_target(target)
    if len(comment) > _MAX_COMMENT or "\x00" in comment:
        raise InvalidInputError(f"the comment is longer than {_MAX_COMMENT} characters or has NUL")
    return wanted


def approval_statement(version: ModelVersion, target: str, comment: str) -> bytes:
    """The canonical in-toto statement an approver signs (``mlprov approve``, locally or
    against a server, where the server only stores the signed bytes)."""
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": version.name, "digest": {"sha256": version.digest.partition(":")[2]}}],
        "predicateType": APPROVAL_PREDICATE_TYPE,
        "predicate": {
            "for": check_approval(target, comment),
            "version": version.ref,
            "comment": comment,
            "time": utc_now(),
        },
    }
    return canonical_json(statement, "approval")


def approvals(
    context: RegistryContext, ref: ModelRef | str, *, target: str | None = None
) -> list[Approval]:
    """The approvals stored with a version (optionally for one target), oldest first."""
    from mlprov import documents, signing  # noqa: PLC0415

    wanted = approval_target(target) if target is not None else None
    version = get_version(context, ref)
    found = []
    for item in version.evidence:
        if item.kind != APPROVAL_KIND:
            continue
        bundle = evidence_content(context, version.ref, item.digest)
        parsed = signing.parse_bundle(bundle, context.limits)
        statement = documents.load_json(parsed.envelope.payload, "approval", context.limits)
        predicate = statement.get("predicate", {}) if isinstance(statement, dict) else {}
        approval = Approval(
            item,
            str(predicate.get("for", "")),
            str(predicate.get("comment", "")),
            str(predicate.get("time", "")),
        )
        if wanted is None or approval.target == wanted:
            found.append(approval)
    return found
