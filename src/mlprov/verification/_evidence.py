"""Which trusted signers may sign which evidence, and authenticating one bundle.

Every stored piece of evidence is a Sigstore bundle. Its kind (and, for attestations, its
predicate type) says which roles may sign it (docs/adr/0030-who-may-sign-which-evidence.md):

=============  ===============================  =====================================
kind           predicate type                   roles, in the order tried
=============  ===============================  =====================================
signature      OMS ``signature/v1.0``           model-signer
provenance     SLSA ``provenance/v1``           model-signer, builder
bom            CycloneDX ``bom``                model-signer
model-card     ``mlprov.dev/model-card/v1``     model-signer
attestation    SLSA ``provenance/v1``           builder, model-signer
attestation    ``mlprov.dev/evaluation/v1``     evaluator, model-signer
attestation    any other URI                    evaluator, builder, model-signer
approval       any URI                          approver
waiver         any URI                          approver
=============  ===============================  =====================================

Any other kind has no rule and fails its check: the engine cannot say whose word it is.

Authentication tries each trusted signer holding one of the roles with the signing
engine's own verifiers (:func:`mlprov.signing.verify_bundle` for the OMS signature,
:func:`mlprov.signing.verify_attestation` for the rest), so a key or certificate carried
in the bundle is only ever compared with what the trust set holds, never trusted itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlprov import signing
from mlprov.config import Limits
from mlprov.errors import (
    MalformedDocumentError,
    MalformedSignatureError,
    MlprovError,
    SignatureError,
)
from mlprov.provenance import (
    CYCLONEDX_PREDICATE_TYPE,
    MODEL_CARD_PREDICATE_TYPE,
    SLSA_PREDICATE_TYPE,
)
from mlprov.signing import SignerIdentity
from mlprov.verification._documents import EVALUATION_PREDICATE_TYPE
from mlprov.verification.model import TrustedSigner, TrustSet

__all__ = [
    "SIGNATURE_KIND",
    "Authenticated",
    "EvidenceRule",
    "authenticate",
    "rule_for",
]

SIGNATURE_KIND = "signature"


@dataclass(frozen=True)
class EvidenceRule:
    """What a kind of evidence must be: its predicate types (None: any URI), the roles
    that may sign it, and whether a file's SHA-256 may stand for the model as subject."""

    predicate_types: frozenset[str] | None
    roles: tuple[str, ...]
    file_subjects: bool = False


_RULES = {
    SIGNATURE_KIND: EvidenceRule(frozenset({signing.PREDICATE_TYPE}), ("model-signer",)),
    "provenance": EvidenceRule(frozenset({SLSA_PREDICATE_TYPE}), ("model-signer", "builder")),
    "bom": EvidenceRule(frozenset({CYCLONEDX_PREDICATE_TYPE}), ("model-signer",)),
    "model-card": EvidenceRule(frozenset({MODEL_CARD_PREDICATE_TYPE}), ("model-signer",)),
    "approval": EvidenceRule(None, ("approver",)),
    "waiver": EvidenceRule(None, ("approver",)),
}


def rule_for(kind: str, predicate_type: str) -> EvidenceRule | None:
    """The rule for evidence of ``kind`` recorded with ``predicate_type``; None if unknown."""
    if kind != "attestation":
        return _RULES.get(kind)
    # An attestation attached later: a CI system's provenance (builder), an evaluation
    # job's results (evaluator), or another statement about the model. Its subject may be
    # one of the model's files, as CI systems attest the files they produced.
    if predicate_type == SLSA_PREDICATE_TYPE:
        roles: tuple[str, ...] = ("builder", "model-signer")
    elif predicate_type == EVALUATION_PREDICATE_TYPE:
        roles = ("evaluator", "model-signer")
    else:
        roles = ("evaluator", "builder", "model-signer")
    return EvidenceRule(None, roles, file_subjects=True)


@dataclass(frozen=True)
class Authenticated:
    """A bundle that verified against ``signer``, trusted for ``role``."""

    signer: TrustedSigner
    role: str
    identity: SignerIdentity
    signature: signing.VerifiedSignature | None = None  # the OMS signature
    attestation: signing.VerifiedAttestation | None = None  # any other statement


def _roles_text(roles: tuple[str, ...]) -> str:
    return " or ".join(roles)


def _try(
    bundle: bytes, signer: TrustedSigner, *, oms: bool, now: datetime | None, limits: Limits
) -> tuple[SignerIdentity, signing.VerifiedSignature | None, signing.VerifiedAttestation | None]:
    if oms:
        verified = signing.verify_bundle(bundle, signer.trust, limits=limits, now=now)
        return verified.signer, verified, None
    attestation = signing.verify_attestation(bundle, signer.trust, limits=limits, now=now)
    return attestation.signer, None, attestation


def authenticate(
    bundle: bytes,
    trust: TrustSet,
    roles: tuple[str, ...],
    *,
    oms: bool,
    now: datetime | None,
    limits: Limits,
) -> Authenticated:
    """Verify ``bundle`` against the trusted signers holding one of ``roles``.

    Raises SignatureError (one line: why no trusted signer of those roles made it, and who
    did if a signer trusted for another role did) or MalformedSignatureError.
    """
    try:
        parsed = signing.parse_bundle(bundle, limits)
    except MalformedDocumentError as e:
        raise MalformedSignatureError(f"the bundle does not parse: {e.message}") from e
    candidates = [s for s in trust.signers if any(r in s.roles for r in roles)]
    errors: list[str] = []
    for signer in candidates:
        if signer.trust.method != parsed.method:
            continue
        try:
            identity, signature, attestation = _try(bundle, signer, oms=oms, now=now, limits=limits)
        except MalformedSignatureError:
            raise
        except MlprovError as e:
            errors.append(f"{signer.name}: {e.message}")
            continue
        role = next(r for r in roles if r in signer.roles)
        return Authenticated(signer, role, identity, signature, attestation)
    # Nobody trusted for the role made it. Say who did if a signer trusted for another
    # role did, so "trusted, but not for this" reads differently from "unknown".
    for other in trust.signers:
        if other in candidates or other.trust.method != parsed.method:
            continue
        try:
            identity, _, _ = _try(bundle, other, oms=oms, now=now, limits=limits)
        except MlprovError:
            continue
        held = ", ".join(sorted(other.roles)) or "no role"
        raise SignatureError(
            f"signed by {other.name!r} ({identity}), who is trusted as {held}, "
            f"not as {_roles_text(roles)}"
        )
    claimed = f"key {parsed.key_hint[:16]}..." if parsed.key_hint else f"a {parsed.method}"
    if not candidates:
        raise SignatureError(f"signed with {claimed}; no signer is trusted as {_roles_text(roles)}")
    if not errors:
        raise SignatureError(
            f"signed with {claimed}; no trusted {_roles_text(roles)} uses the {parsed.method} "
            "method"
        )
    raise SignatureError(
        f"signed with {claimed}, which no trusted {_roles_text(roles)} verifies "
        f"({len(errors)} tried; {errors[0]})"
    )
