"""The verification engine: a version's snapshot and the trust it is judged by in, a
report out (ARCHITECTURE.md, ``verify/``). Pure: it opens no file, socket or database.

The values it works on are in :mod:`mlprov.verify.model`.
"""

from __future__ import annotations

from mlprov.verify.model import (
    ROLES,
    CheckResult,
    CheckStatus,
    Revocations,
    StoredEvidence,
    TrustedSigner,
    TrustSet,
    VerificationReport,
    VerifiedAttestation,
    VerifiedFacts,
    VersionSnapshot,
)

__all__ = [
    "ROLES",
    "CheckResult",
    "CheckStatus",
    "Revocations",
    "StoredEvidence",
    "TrustSet",
    "TrustedSigner",
    "VerificationReport",
    "VerifiedAttestation",
    "VerifiedFacts",
    "VersionSnapshot",
]
