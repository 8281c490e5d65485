"""The verification engine: a version's snapshot and the trust it is judged by in, a
report out (ARCHITECTURE.md, ``verify/``). Pure: it opens no file, socket or database.

The package is ``mlprov.verification``, not ``mlprov.verify`` as ARCHITECTURE.md draws it:
importing a subpackage binds its name on the parent, and ``mlprov.verify`` is the public
function that verifies a model on disk (docs/adr/0038-verification-package-name.md).

Stable API (this module's ``__all__``)::

    verify_snapshot(snapshot, trust, *, revocations, now, limits, max_depth)
        -> VerificationReport                  # one CheckResult per check, and facts
    verify_snapshot_or_raise(...)              # the same; VerificationError on a failure
    render_checks(checks, fmt, *, subject, name) -> str    # text, json, sarif, junit
    evidence_check_ids(evidence) -> {digest: check id}     # which check judged which

The values it works on are in :mod:`mlprov.verification.model`; what each check proves is in
docs/verification.md.
"""

from __future__ import annotations

from mlprov.verification._deployment import (
    DEPLOYMENT_PREDICATE_TYPE,
    DeploymentSnapshot,
    MemberSnapshot,
    deployment_checks,
    member_subject,
)
from mlprov.verification._documents import EVALUATION_PREDICATE_TYPE, FORMAT_PROPERTY
from mlprov.verification._engine import (
    evidence_check_ids,
    verify_snapshot,
    verify_snapshot_or_raise,
)
from mlprov.verification.model import (
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
from mlprov.verification.render import REPORT_FORMATS, render_checks

__all__ = [
    "DEPLOYMENT_PREDICATE_TYPE",
    "EVALUATION_PREDICATE_TYPE",
    "FORMAT_PROPERTY",
    "REPORT_FORMATS",
    "ROLES",
    "CheckResult",
    "CheckStatus",
    "DeploymentSnapshot",
    "MemberSnapshot",
    "Revocations",
    "StoredEvidence",
    "TrustSet",
    "TrustedSigner",
    "VerificationReport",
    "VerifiedAttestation",
    "VerifiedFacts",
    "VersionSnapshot",
    "deployment_checks",
    "evidence_check_ids",
    "member_subject",
    "render_checks",
    "verify_snapshot",
    "verify_snapshot_or_raise",
]
