"""Revocations of a version, a signing key or a signer identity.

A revocation is a signed statement (predicate ``https://mlprov.dev/revocation/v1``),
signed outside any transaction by whoever revokes, stored with the registry as the exact
bundle bytes and audited (``revocation.add``). The verification engine and the gate read
them (:func:`revocation_set`): a revoked version fails verification and cannot be a
move's target; evidence signed by a revoked key or identity no longer counts.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from mlprov.canonical import canonical_json
from mlprov.errors import ConflictError, InvalidInputError, VerificationError
from mlprov.records import ModelVersion
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, coerce_ref, resolve, utc_now
from mlprov.registry._unit import mutation
from mlprov.registry.versions import get_version
from mlprov.store.revocations import Revocation
from mlprov.verification import Revocations

if TYPE_CHECKING:
    from mlprov.signing import Signer

__all__ = [
    "REVOCATION_PREDICATE_TYPE",
    "add_signed_revocation",
    "check_revocation_reason",
    "revocation_claim",
    "revocation_set",
    "revocation_statement",
    "revocations",
    "revoke",
]

REVOCATION_PREDICATE_TYPE = "https://mlprov.dev/revocation/v1"


def check_revocation_reason(reason: str) -> None:
    if not reason.strip() or len(reason) > 4096 or "\x00" in reason:
        raise InvalidInputError("give the reason for the revocation (--reason, one line)")


def revocation_statement(
    *,
    reason: str,
    version: ModelVersion | None = None,
    key_pem: bytes | None = None,
    identity: str | None = None,
    versions_given: bool | None = None,
) -> tuple[bytes, str, str, str]:
    """The canonical statement a revoker signs (locally or before posting it to a
    server), with its kind, value and time. ``versions_given`` says a version was named
    (default: ``version`` is not None)."""
    from mlprov import signing  # noqa: PLC0415

    named = versions_given if versions_given is not None else version is not None
    if sum((named, key_pem is not None, identity is not None)) != 1:
        raise InvalidInputError("revoke exactly one: a version REF, --key PUB or --identity ID")
    check_revocation_reason(reason)
    if version is not None:
        kind, value = "version", version.ref
        subject = {"name": version.ref, "digest": {"sha256": version.digest.partition(":")[2]}}
    elif key_pem is not None:
        kind, value = "key", signing.key_hint(signing.load_public_key(key_pem))
        subject = {"name": f"key:{value}", "digest": {"sha256": value}}
    else:
        assert identity is not None
        if not identity.strip() or len(identity) > 1024:
            raise InvalidInputError("--identity must name a signer identity")
        kind, value = "identity", identity
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
        subject = {"name": f"identity:{identity}", "digest": {"sha256": digest}}
    at = utc_now()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [subject],
        "predicateType": REVOCATION_PREDICATE_TYPE,
        "predicate": {"kind": kind, "value": value, "reason": reason, "time": at},
    }
    return canonical_json(statement, "revocation"), kind, value, at


def revoke(
    context: RegistryContext,
    *,
    reason: str,
    signer: Signer,
    version: ModelRef | str | None = None,
    key_pem: bytes | None = None,
    identity: str | None = None,
) -> Revocation:
    """Revoke exactly one of a version, a public key (PEM) or a signer identity."""
    record = None
    if version is not None and key_pem is None and identity is None:
        check_revocation_reason(reason)
        record = get_version(context, coerce_ref(version))
    statement, kind, value, at = revocation_statement(
        reason=reason,
        version=record,
        key_pem=key_pem,
        identity=identity,
        versions_given=version is not None,
    )
    signed = signer.sign(statement)
    with mutation(context, at=at) as unit:
        if unit.tx.revocations.find(kind, value) is not None:
            raise ConflictError(f"{kind} {value} is already revoked")
        if kind == "version":
            resolve(unit.tx, ModelRef.parse(value))  # still there (versions are never deleted)
        revocation = Revocation(
            kind, value, reason, unit.at, unit.actor, str(signed.signer), signed.bundle
        )
        unit.tx.revocations.insert(revocation)
        unit.audit(
            "revocation.add",
            value if kind == "version" else f"{kind}:{value}",
            {"kind": kind, "value": value, "signer": str(signed.signer)},
            reason,
        )
    return revocation


def revocation_claim(context: RegistryContext, bundle: bytes) -> tuple[str, str]:
    """(kind, value) a revocation bundle signed elsewhere claims, read without trusting
    it (so the server can authorise the model a version revocation names first)."""
    from mlprov import signing  # noqa: PLC0415

    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    if inspected.predicate_type != REVOCATION_PREDICATE_TYPE:
        raise VerificationError(
            f"the bundle is not a revocation (predicate {inspected.predicate_type[:80]!r})"
        )
    predicate = inspected.statement.get("predicate")
    if not isinstance(predicate, dict):
        raise InvalidInputError("the revocation's statement has no predicate")
    kind, value = predicate.get("kind"), predicate.get("value")
    if kind not in ("version", "key", "identity") or not isinstance(value, str) or not value:
        raise InvalidInputError("the revocation must name its kind (version, key, identity)")
    return kind, value


def add_signed_revocation(context: RegistryContext, bundle: bytes) -> Revocation:
    """Store a revocation signed elsewhere (the statement :func:`revoke` signs): its
    signature must verify with any key or certificate it carries, and its subject must be
    what it revokes (the version's digest, the key hint, the identity's SHA-256). Audited
    as ``revocation.add`` like a local one."""
    from mlprov import signing  # noqa: PLC0415

    kind, value = revocation_claim(context, bundle)
    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    predicate = inspected.statement["predicate"]
    reason = predicate.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 4096:
        raise InvalidInputError("the revocation's statement needs its reason")
    if kind == "version":
        record = get_version(context, ModelRef.parse(value))
        if record.ref != value:
            raise InvalidInputError(f"a version revocation names NAME/N, not {value[:80]!r}")
        expected = record.digest.partition(":")[2]
    elif kind == "key":
        expected = value
    else:
        expected = hashlib.sha256(value.encode("utf-8")).hexdigest()
    if not any(digest.get("sha256") == expected for _name, digest in inspected.subjects):
        raise VerificationError(f"the revocation's subject is not the {kind} it revokes")
    signer = str(inspected.carried.signer)
    with mutation(context) as unit:
        if unit.tx.revocations.find(kind, value) is not None:
            raise ConflictError(f"{kind} {value} is already revoked")
        revocation = Revocation(kind, value, reason, unit.at, unit.actor, signer, bundle)
        unit.tx.revocations.insert(revocation)
        unit.audit(
            "revocation.add",
            value if kind == "version" else f"{kind}:{value}",
            {"kind": kind, "value": value, "signer": signer},
            reason,
        )
    return revocation


def revocations(context: RegistryContext) -> list[Revocation]:
    with context.metadata.read() as tx:
        return tx.revocations.all()


def revocation_set(context: RegistryContext) -> Revocations:
    """Every revocation, as the verification engine takes them."""
    return Revocations.of(revocations(context))
