"""Approvals and waivers signed by their holders elsewhere, stored as the exact bytes sent.

``mlprov approve`` and ``mlprov waive`` sign with a key on the machine they run on. Over
HTTP the server has no one's key: the approver signs the same statement
(:mod:`mlprov.registry.approvals`, :mod:`mlprov.registry.waivers`) and sends the bundle.
Before storing it this module checks, outside any transaction, that the bundle parses,
that its signature verifies with the key or certificate it carries (a key-mode bundle
names its key by hint only and is checked by the gate against the registry's trust),
that its predicate is an
approval or a waiver, and that its statement is about this version (subject digest and
``version``) for a valid target. Whether the signer is a *trusted* approver, and whether
two holders signed a waiver, stays the gate's decision, exactly as for the local commands.
"""

from __future__ import annotations

from typing import Any

from mlprov.errors import ConflictError, InvalidInputError, VerificationError
from mlprov.records import Evidence
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, resolve
from mlprov.registry._unit import mutation
from mlprov.registry.approvals import APPROVAL_KIND, APPROVAL_PREDICATE_TYPE, approval_target
from mlprov.registry.evidence import add_evidence_in
from mlprov.registry.types import NewEvidence
from mlprov.registry.versions import get_version
from mlprov.registry.waivers import WAIVER_KIND, WAIVER_PREDICATE_TYPE

__all__ = [
    "add_signed_approval",
    "add_signed_attestation",
    "add_signed_signature",
    "add_signed_waiver",
    "attach_trusted",
]


def attach_trusted(context: RegistryContext, ref: ModelRef | str, bundle: bytes) -> Evidence:
    """Attach a bundle signed elsewhere (an OMS signature or an attestation) after
    verifying it against the trust of the registry's active policy set: the first
    trusted signer it verifies with is the trust it is attached under
    (:func:`mlprov.registry.signatures.attach`). With no policy set applied the registry
    trusts no one, and nothing is attached."""
    from mlprov.errors import SignatureError  # noqa: PLC0415
    from mlprov.registry import policies, signatures  # noqa: PLC0415

    active = policies.show_policy(context)
    if active is None:
        raise SignatureError(
            "the registry trusts no signer yet (no policy set applied): nothing attached"
        )
    policy_set = policies.load_policy(active.files, context, active.digest)
    problems = []
    for signer in policy_set.trust.signers:
        try:
            return signatures.attach(context, ref, bundle, signer.trust)
        except SignatureError as e:
            # Not this signer's: try the next one (any other failure is the bundle's).
            problems.append(f"{signer.name}: {e.message}")
    raise SignatureError(
        "the bundle verifies with no signer the registry trusts"
        + (f" ({problems[0][:200]})" if problems else "")
    )


def add_signed_approval(context: RegistryContext, ref: ModelRef | str, bundle: bytes) -> Evidence:
    """Store an approval of ``ref`` signed elsewhere (module docstring)."""
    version, predicate, signer = _checked(context, ref, bundle, APPROVAL_PREDICATE_TYPE)
    del predicate
    new = _evidence(APPROVAL_KIND, APPROVAL_PREDICATE_TYPE, bundle, signer)
    with mutation(context) as unit:
        key = resolve(unit.tx, ModelRef(version.name, version=version.version))
        return add_evidence_in(unit, key, new)


def add_signed_waiver(context: RegistryContext, ref: ModelRef | str, bundle: bytes) -> Evidence:
    """Store one holder's waiver of ``ref`` signed elsewhere; audited loudly as
    ``waiver.grant`` like a local waiver."""
    version, predicate, signer = _checked(context, ref, bundle, WAIVER_PREDICATE_TYPE)
    reason = predicate.get("reason")
    expires = predicate.get("expires")
    requirements = predicate.get("requirements", [])
    if not isinstance(reason, str) or not reason.strip() or not isinstance(expires, str):
        raise InvalidInputError("the waiver's statement needs its reason and expiry")
    if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
        raise InvalidInputError("the waiver's requirements must be a list of requirement ids")
    new = _evidence(WAIVER_KIND, WAIVER_PREDICATE_TYPE, bundle, signer)
    with mutation(context) as unit:
        key = resolve(unit.tx, ModelRef(version.name, version=version.version))
        stored = add_evidence_in(unit, key, new)
        unit.audit(
            "waiver.grant",
            version.ref,
            {
                "for": predicate["for"],
                "requirements": sorted(set(requirements)),
                "expires": expires,
                "signer": signer,
                "digest": stored.digest,
            },
            reason,
        )
        return stored


def add_signed_attestation(
    context: RegistryContext, ref: ModelRef | str, bundle: bytes
) -> Evidence:
    """Store an attestation about ``ref`` its signer made elsewhere (``mlprov attest``
    over HTTP): the bundle's signature must verify with what it carries (where it
    carries a key or certificate), and its statement must be exactly the one ``attest``
    makes for this version (subject: its model digest). Whose attestation counts is the
    gate's question (``attestations`` requirements name trusted signers), as locally."""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.registry.evidence import attestation_statement, store_attestation  # noqa: PLC0415

    version = get_version(context, ref)
    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    predicate = inspected.statement.get("predicate")
    expected = attestation_statement(version, inspected.predicate_type, predicate)
    if inspected.payload != expected:
        raise VerificationError(
            f"the attestation is not the statement `mlprov attest` makes about {version.ref} "
            f"({version.digest}): nothing was stored"
        )
    new = _evidence("attestation", inspected.predicate_type, bundle, str(inspected.carried.signer))
    return store_attestation(context, version, new)


def add_signed_signature(context: RegistryContext, ref: ModelRef | str, bundle: bytes) -> Evidence:
    """Store the OMS signature of a version registered without one, made elsewhere
    (``mlprov sign REF`` over HTTP): it must verify with what it carries (where it carries
    a key or certificate) and sign exactly the recorded manifest; the version must have
    no signature yet (compare-and-set). Whether its signer is trusted is the gate's
    question, as for a local ``sign REF`` and a registration with a signature."""
    from mlprov import signing  # noqa: PLC0415
    from mlprov.registry.signatures import SIGNATURE_KIND, store_signature  # noqa: PLC0415
    from mlprov.registry.versions import manifest  # noqa: PLC0415

    version = get_version(context, ref)
    if any(e.kind == SIGNATURE_KIND for e in version.evidence):
        raise ConflictError(f"{version.ref} is already signed; nothing was stored")
    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    if inspected.predicate_type != signing.PREDICATE_TYPE:
        raise VerificationError(
            f"the bundle is not an OMS model signature (predicate "
            f"{inspected.predicate_type[:80]!r})"
        )
    signed = signing.inspect_signature(bundle, context.limits).statement.manifest
    try:
        signing.match_manifest(signed, manifest(context, version.ref))
    except VerificationError as e:
        raise VerificationError(f"the signature is not of {version.ref}: {e.message}") from e
    new = _evidence(SIGNATURE_KIND, signing.PREDICATE_TYPE, bundle, str(inspected.carried.signer))
    return store_signature(context, version, new)


def _checked(
    context: RegistryContext, ref: ModelRef | str, bundle: bytes, predicate_type: str
) -> tuple[Any, dict[str, Any], str]:
    from mlprov import signing  # noqa: PLC0415

    version = get_version(context, ref)
    inspected = signing.inspect_attestation(bundle, limits=context.limits)
    what = "approval" if predicate_type == APPROVAL_PREDICATE_TYPE else "waiver"
    if inspected.predicate_type != predicate_type:
        raise VerificationError(
            f"the bundle is not a {what} (predicate {inspected.predicate_type[:80]!r}, "
            f"expected {predicate_type})"
        )
    model_hex = version.digest.partition(":")[2]
    if not any(digest.get("sha256") == model_hex for _name, digest in inspected.subjects):
        raise VerificationError(f"the {what} is not about {version.ref} ({version.digest})")
    predicate = inspected.statement.get("predicate")
    if not isinstance(predicate, dict) or predicate.get("version") != version.ref:
        raise VerificationError(f"the {what}'s statement does not name version {version.ref}")
    target = predicate.get("for")
    if not isinstance(target, str):
        raise InvalidInputError(f"the {what}'s statement names no target ('for')")
    if approval_target(target) != target:
        raise InvalidInputError(f"the {what}'s target {target[:80]!r} is not in canonical form")
    return version, predicate, str(inspected.carried.signer)


def _evidence(kind: str, predicate_type: str, bundle: bytes, signer: str) -> NewEvidence:
    from mlprov import signing  # noqa: PLC0415

    return NewEvidence(kind, signing.BUNDLE_MEDIA_TYPE, predicate_type, bundle, signer)
