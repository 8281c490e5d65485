"""Waivers: the only override of a gate, signed, scoped and time-limited.

A waiver is evidence of kind ``waiver``: an in-toto statement about the version's digest
(predicate ``https://mlprov.dev/waiver/v1``: the target alias or ``stage:NAME``, the
requirement ids it waives, the reason, when it was granted and when it expires), signed
outside any transaction by one holder of the waiving role and audited loudly
(``waiver.grant``). A policy decides whether waivers are allowed for a target and which
role grants them; the gate counts a waiver only when two distinct verified holders of
that role signed the same terms and it has not expired.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from mlprov.canonical import canonical_json
from mlprov.durations import parse_duration
from mlprov.errors import InvalidInputError
from mlprov.records import Evidence, ModelVersion
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, resolve, utc_now
from mlprov.registry._unit import mutation
from mlprov.registry.approvals import approval_target
from mlprov.registry.evidence import add_evidence_in, evidence_content
from mlprov.registry.types import NewEvidence, Waiver
from mlprov.registry.versions import get_version

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = [
    "MAX_WAIVER",
    "WAIVER_KIND",
    "WAIVER_PREDICATE_TYPE",
    "Waiver",
    "check_waiver",
    "parse_waiver_duration",
    "waive",
    "waiver_statement",
    "waivers",
]

WAIVER_KIND = "waiver"
WAIVER_PREDICATE_TYPE = "https://mlprov.dev/waiver/v1"
#: The longest a waiver may last: a waiver is for an emergency, not a standing exception.
MAX_WAIVER = timedelta(days=30)


def parse_waiver_duration(text: str) -> timedelta:
    """``90m``, ``24h``, ``7d`` (:func:`mlprov.durations.parse_duration`): at most
    :data:`MAX_WAIVER`."""
    duration = parse_duration(text)
    if duration > MAX_WAIVER:
        raise InvalidInputError(f"a waiver lasts at most {MAX_WAIVER.days} days, not {text}")
    return duration


def check_waiver(
    target: str, *, reason: str, expires_in: timedelta, requirements: tuple[str, ...]
) -> str:
    """The waiver's target, normalised; raises for a bad target, reason, duration or id."""
    wanted = approval_target(target)
    if not reason.strip() or len(reason) > 4096 or "\x00" in reason:
        raise InvalidInputError("a waiver needs its reason (--reason, one line)")
    if not timedelta(0) < expires_in <= MAX_WAIVER:
        raise InvalidInputError(f"a waiver lasts more than nothing and at most {MAX_WAIVER}")
    for requirement in requirements:
        if not requirement or len(requirement) > 256 or any(c.isspace() for c in requirement):
            raise InvalidInputError(f"invalid requirement id {requirement[:60]!r}")
    return wanted


def waiver_statement(
    version: ModelVersion,
    target: str,
    *,
    reason: str,
    expires_in: timedelta,
    requirements: tuple[str, ...] = (),
) -> tuple[bytes, str, str]:
    """The canonical statement one holder signs for a waiver (locally or against a
    server), with its granted and expiry times; raises for bad input."""
    wanted = check_waiver(target, reason=reason, expires_in=expires_in, requirements=requirements)
    granted = utc_now()
    expires = (datetime.now(timezone.utc) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": version.name, "digest": {"sha256": version.digest.partition(":")[2]}}],
        "predicateType": WAIVER_PREDICATE_TYPE,
        "predicate": {
            "for": wanted,
            "version": version.ref,
            "requirements": sorted(set(requirements)),
            "reason": reason,
            "granted": granted,
            "expires": expires,
        },
    }
    return canonical_json(statement, "waiver"), granted, expires


def waive(
    context: RegistryContext,
    ref: ModelRef | str,
    target: str,
    signer: Signer,
    *,
    reason: str,
    expires_in: timedelta,
    requirements: tuple[str, ...] = (),
) -> Evidence:
    """Sign and store one holder's waiver of ``requirements`` (all failed ones when
    empty) for moving a version to ``target``, expiring after ``expires_in``."""
    from mlprov import signing  # noqa: PLC0415

    wanted = check_waiver(target, reason=reason, expires_in=expires_in, requirements=requirements)
    version = get_version(context, ref)
    statement, granted, expires = waiver_statement(
        version, target, reason=reason, expires_in=expires_in, requirements=requirements
    )
    signed = signer.sign(statement)
    new = NewEvidence(
        WAIVER_KIND,
        signing.BUNDLE_MEDIA_TYPE,
        WAIVER_PREDICATE_TYPE,
        signed.bundle,
        str(signed.signer),
    )
    with mutation(context, at=granted) as unit:
        key = resolve(unit.tx, ModelRef(version.name, version=version.version))
        stored = add_evidence_in(unit, key, new)
        # Loudly: a waiver has its own audit action besides the evidence entry.
        unit.audit(
            "waiver.grant",
            f"{version.ref}",
            {
                "for": wanted,
                "requirements": sorted(set(requirements)),
                "expires": expires,
                "signer": str(signed.signer),
                "digest": stored.digest,
            },
            reason,
        )
        return stored


def waivers(context: RegistryContext, ref: ModelRef | str) -> list[Waiver]:
    """The waivers stored with a version, oldest first (expired ones included)."""
    from mlprov import documents, signing  # noqa: PLC0415

    version = get_version(context, ref)
    found = []
    for item in version.evidence:
        if item.kind != WAIVER_KIND:
            continue
        bundle = evidence_content(context, version.ref, item.digest)
        parsed = signing.parse_bundle(bundle, context.limits)
        statement = documents.load_json(parsed.envelope.payload, "waiver", context.limits)
        predicate = statement.get("predicate", {}) if isinstance(statement, dict) else {}
        found.append(
            Waiver(
                item,
                str(predicate.get("for", "")),
                tuple(str(r) for r in predicate.get("requirements", [])),
                str(predicate.get("reason", "")),
                str(predicate.get("granted", "")),
                str(predicate.get("expires", "")),
            )
        )
    return found
