"""The verification engine: a version's snapshot and a trust set in, a report out.

Pure: it opens no file, socket or database, and never re-hashes artefact bytes (blobs
are content-addressed and checked on every read; ``--deep`` re-hashes them apart). It
reads the clock only through the signing engine, for certificate validity, unless
``now`` is given.

Checks, in report order (docs/verification.md says what each proves):

``signature``                      the newest OMS signature, by a trusted model signer,
                                   over exactly the registry's manifest and digest
``evidence.<kind>[#n]``            every other piece of evidence: signer trusted for the
                                   role its kind needs, subject, predicate type
``provenance.builder``             SLSA ``builder.id`` vouched for by a trusted builder
``datasets``                       provenance == ML-BOM == registry datasets
``lineage.<relation>:<target>``    each ancestor registered, bound by digest, verifying
                                   (recursively, to the depth bound); external ones named
                                   with the same digest by the signed documents
``registry.records``               the registry's rows equal the signed documents
``revocation``                     neither the version nor a signer of its evidence is revoked

Documents signed by a revoked signer prove nothing: they are verified and reported, but
no check or fact uses them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlprov import signing
from mlprov.canonical import canonical_json
from mlprov.config import DEFAULT_LIMITS, Limits
from mlprov.errors import InvalidInputError, MlprovError, VerificationError
from mlprov.provenance import (
    CYCLONEDX_PREDICATE_TYPE,
    MODEL_CARD_PREDICATE_TYPE,
    SLSA_PREDICATE_TYPE,
)
from mlprov.signing import SignerIdentity
from mlprov.verification import _documents as docs
from mlprov.verification._evidence import SIGNATURE_KIND, Authenticated, authenticate, rule_for
from mlprov.verification.model import (
    CheckResult,
    CheckStatus,
    Revocations,
    StoredEvidence,
    TrustSet,
    VerificationReport,
    VerifiedAttestation,
    VerifiedFacts,
    VersionSnapshot,
)

__all__ = ["verify_snapshot", "verify_snapshot_or_raise"]

_PASSED, _FAILED, _SKIPPED = CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.SKIPPED


def verify_snapshot(
    snapshot: VersionSnapshot,
    trust: TrustSet,
    *,
    revocations: Revocations | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
    max_depth: int | None = None,
) -> VerificationReport:
    """Check ``snapshot`` against ``trust``; one CheckResult per check, and the facts the
    verified evidence proves. Never raises for what it finds (the raising twin is
    :func:`verify_snapshot_or_raise`).

    ``max_depth`` (default ``limits.max_lineage_depth``) bounds how many levels of
    ancestors are verified; a lineage check beyond it is skipped and says so.
    """
    depth = limits.max_lineage_depth if max_depth is None else max_depth
    engine = _Engine(trust, revocations or Revocations(), now, limits)
    return engine.verify(snapshot, depth, ())


def verify_snapshot_or_raise(
    snapshot: VersionSnapshot,
    trust: TrustSet,
    *,
    revocations: Revocations | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
    max_depth: int | None = None,
) -> VerificationReport:
    """Like :func:`verify_snapshot`, but raise VerificationError (exit 1) naming the
    first failed check and how many failed."""
    report = verify_snapshot(
        snapshot, trust, revocations=revocations, now=now, limits=limits, max_depth=max_depth
    )
    failures = report.failures
    if failures:
        more = f" (and {len(failures) - 1} more failed checks)" if len(failures) > 1 else ""
        raise VerificationError(
            f"{report.subject} does not verify: {failures[0].id}: {failures[0].message}{more}"
        )
    return report


#: Evidence kinds that state an opinion about a version (who approves, who waives).
_OPINIONS = frozenset({"approval", "waiver"})


@dataclass(frozen=True)
class _Accepted:
    """A piece of evidence whose check passed, with its verified statement."""

    check_id: str
    stored: StoredEvidence
    auth: Authenticated
    statement: Mapping[str, Any] = field(repr=False)

    @property
    def kind(self) -> str:
        return self.stored.record.kind

    @property
    def predicate_type(self) -> str:
        return self.stored.record.predicate_type


@dataclass
class _Run:
    """What one version's checks found so far."""

    snapshot: VersionSnapshot
    checks: list[CheckResult] = field(default_factory=list)
    #: Every bundle that verified against a trusted signer (revoked or not).
    authenticated: list[tuple[str, Authenticated]] = field(default_factory=list)
    #: Passed evidence whose signer is not revoked: what the other checks and facts use.
    accepted: list[_Accepted] = field(default_factory=list)
    model_signers: list[tuple[str, SignerIdentity]] = field(default_factory=list)
    builder: tuple[str, str] | None = None
    datasets: tuple[tuple[str, str, str], ...] = ()

    def add(self, check_id: str, status: CheckStatus, message: str) -> None:
        self.checks.append(CheckResult(check_id, status, message, self.snapshot.ref))

    def newest(self, kind: str) -> _Accepted | None:
        found = [a for a in self.accepted if a.kind == kind]
        return found[-1] if found else None


def _short(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:16]}..." if len(hex_) > 16 else digest


def _quote(text: str) -> str:
    """Untrusted text, quoted and bounded, so a report line stays one safe line."""
    return repr(text[:120])


def _evidence_ids(
    evidence: Sequence[StoredEvidence], signature: StoredEvidence | None
) -> list[str]:
    """``evidence.<kind>``, or ``evidence.<kind>#n`` (1-based, stored order) when a version
    has several of a kind; the version's ``signature`` is not counted."""
    rest = [e for e in evidence if e is not signature]
    counts: dict[str, int] = {}
    for item in rest:
        counts[item.record.kind] = counts.get(item.record.kind, 0) + 1
    seen: dict[str, int] = {}
    ids = []
    for item in rest:
        kind = item.record.kind
        seen[kind] = seen.get(kind, 0) + 1
        ids.append(f"evidence.{kind}#{seen[kind]}" if counts[kind] > 1 else f"evidence.{kind}")
    return ids


def evidence_check_ids(evidence: Sequence[StoredEvidence]) -> dict[str, str]:
    """Stored evidence digest -> the id of the check :func:`verify_snapshot` reports for
    it (``signature`` for the newest OMS signature, else ``evidence.<kind>[#n]``), so a
    caller can show each piece of evidence beside its verdict."""
    signatures = [e for e in evidence if e.record.kind == SIGNATURE_KIND]
    newest = signatures[-1] if signatures else None
    others = [e for e in evidence if e is not newest]
    ids = {e.record.digest: i for e, i in zip(others, _evidence_ids(evidence, newest), strict=True)}
    if newest is not None:
        ids[newest.record.digest] = "signature"
    return ids


def _revoked(identity: SignerIdentity, revocations: Revocations) -> str | None:
    """Why ``identity`` is revoked (by key hint / certificate fingerprint or by identity)."""
    hints = {k.lower(): v for k, v in revocations.key_hints.items()}
    for hint in (identity.fingerprint, identity.subject if identity.method == "key" else None):
        if hint and hint.lower() in hints:
            return hints[hint.lower()]
    for name in (str(identity), identity.subject):
        if name in revocations.identities:
            return revocations.identities[name]
    return None


def _metric_text(value: Any) -> str:
    # As mlprov.provenance writes BOM metric values: text as is, numbers as JSON writes them.
    return value if isinstance(value, str) else canonical_json(value, "metric").decode("utf-8")


def _same_json(left: Any, right: Any) -> bool:
    try:
        return canonical_json(left, "value") == canonical_json(right, "value")
    except InvalidInputError:
        return False


class _Engine:
    def __init__(
        self, trust: TrustSet, revocations: Revocations, now: datetime | None, limits: Limits
    ) -> None:
        self.trust = trust
        self.revocations = revocations
        self.now = now
        self.limits = limits
        self.memo: dict[tuple[str, int], VerificationReport] = {}

    # -- the version ------------------------------------------------------------------

    def verify(
        self, snapshot: VersionSnapshot, depth: int, path: tuple[str, ...]
    ) -> VerificationReport:
        key = (snapshot.ref, depth)
        if key in self.memo:
            return self.memo[key]
        run = _Run(snapshot)
        signatures = [e for e in snapshot.evidence if e.record.kind == SIGNATURE_KIND]
        newest = signatures[-1] if signatures else None
        self.check_signature(run, newest)
        others = [e for e in snapshot.evidence if e is not newest]
        for check_id, stored in zip(_evidence_ids(snapshot.evidence, newest), others, strict=True):
            self.check_evidence(run, check_id, stored)
        self.check_builder(run)
        self.check_datasets(run)
        for edge in sorted(snapshot.record.lineage, key=lambda e: (e.relation, e.target)):
            self.check_lineage(run, edge, depth, (*path, snapshot.ref))
        self.check_records(run)
        self.check_revocation(run)
        report = VerificationReport(snapshot.ref, tuple(run.checks), self.facts(run))
        self.memo[key] = report
        return report

    def facts(self, run: _Run) -> VerifiedFacts:
        attestations = tuple(
            VerifiedAttestation(
                kind=a.kind,
                predicate_type=a.predicate_type,
                signer=a.auth.identity,
                signer_name=a.auth.signer.name,
                role=a.auth.role,
                predicate=a.statement.get("predicate") or {},
            )
            for a in run.accepted
            if a.kind != SIGNATURE_KIND
        )
        bom, card = run.newest("bom"), run.newest("model-card")
        metrics: dict[str, float] = {}
        if bom is not None:
            for key, text in docs.bom_metrics(bom.statement).items():
                try:
                    metrics[key] = float(text)
                except ValueError:
                    continue
        if card is not None:
            metrics.update(
                (key, float(value))
                for key, value in docs.card_metrics(card.statement).items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            )
        # Evaluation results from trusted evaluators come last: an independent
        # evaluator's number wins over the one the training job recorded.
        for item in run.accepted:
            if (
                item.predicate_type == docs.EVALUATION_PREDICATE_TYPE
                and item.auth.role == "evaluator"
            ):
                metrics.update(docs.evaluation_metrics(item.statement))
        return VerifiedFacts(
            model_signers=tuple(run.model_signers),
            builder_id=run.builder[0] if run.builder else None,
            build_type=run.builder[1] if run.builder else None,
            attestations=attestations,
            metrics=dict(sorted(metrics.items())),
            datasets=run.datasets,
            licenses=docs.bom_licenses(bom.statement) if bom is not None else (),
            formats=docs.bom_formats(bom.statement) if bom is not None else (),
            card_sections=docs.card_sections(card.statement) if card is not None else frozenset(),
        )

    # -- signature and evidence -------------------------------------------------------

    def _stored_problem(self, stored: StoredEvidence) -> str | None:
        expected = stored.record.digest
        actual = "sha256:" + hashlib.sha256(stored.bundle).hexdigest()
        if actual != expected:
            return (
                f"its stored bytes hash to {_short(actual)}, the registry records "
                f"{_short(expected)}"
            )
        return None

    def _authenticated(self, run: _Run, check_id: str, auth: Authenticated) -> bool:
        """Record ``auth``; False if its signer is revoked (its word is then not used)."""
        run.authenticated.append((check_id, auth))
        return _revoked(auth.identity, self.revocations) is None

    def check_signature(self, run: _Run, stored: StoredEvidence | None) -> None:
        snapshot = run.snapshot
        if stored is None:
            run.add(
                "signature", _FAILED, f"unsigned: no OMS signature is stored with {snapshot.ref}"
            )
            return
        self._check_oms(run, "signature", stored)

    def _check_oms(self, run: _Run, check_id: str, stored: StoredEvidence) -> None:
        snapshot = run.snapshot
        if stored.record.predicate_type != signing.PREDICATE_TYPE:
            run.add(
                check_id,
                _FAILED,
                f"the signature's predicate type is {_quote(stored.record.predicate_type)}, "
                f"not OMS {signing.PREDICATE_TYPE}",
            )
            return
        problem = self._stored_problem(stored)
        if problem is not None:
            run.add(check_id, _FAILED, f"the signature is corrupt: {problem}")
            return
        try:
            auth = authenticate(
                stored.bundle,
                self.trust,
                ("model-signer",),
                oms=True,
                now=self.now,
                limits=self.limits,
            )
        except MlprovError as e:
            run.add(check_id, _FAILED, f"untrusted signature: {e.message}")
            return
        verified = auth.signature
        assert verified is not None
        usable = self._authenticated(run, check_id, auth)
        try:
            signing.match_manifest(verified.manifest, snapshot.manifest)
        except MlprovError as e:
            run.add(
                check_id, _FAILED, f"the registry's manifest is not the signed one: {e.message}"
            )
            return
        signed_digest = f"sha256:{verified.subject_digest}"
        if snapshot.record.digest != signed_digest:
            run.add(
                check_id,
                _FAILED,
                f"the registry records digest {_short(snapshot.record.digest)}, the signature "
                f"is over {_short(signed_digest)}",
            )
            return
        if usable and (auth.signer.name, auth.identity) not in run.model_signers:
            run.model_signers.append((auth.signer.name, auth.identity))
        if usable:
            run.accepted.append(_Accepted(check_id, stored, auth, {}))
        run.add(
            check_id,
            _PASSED,
            f"signed by {auth.signer.name!r} ({auth.identity}) as model-signer over "
            f"{len(verified.manifest.file_paths)} files, {_short(signed_digest)}",
        )

    def _subject_problem(
        self, run: _Run, attestation: signing.VerifiedAttestation, file_subjects: bool
    ) -> str | None:
        record, manifest = run.snapshot.record, run.snapshot.manifest
        algorithm, _, model_hex = record.digest.partition(":")
        files: set[str] = set()
        if file_subjects:
            if manifest.algorithm == "sha256" and manifest.shard_size is None:
                files = {entry.digest.hex for entry in manifest}
            files |= {value.lower() for value in run.snapshot.file_sha256.values()}
        for _name, digest in attestation.subjects:
            if digest.get(algorithm) == model_hex:
                return None
            if files and digest.get("sha256") in files:
                return None
        named = ", ".join(
            f"{_quote(name or '?')} ({', '.join(f'{k}:{v[:16]}...' for k, v in sorted(d.items()))})"
            for name, d in attestation.subjects[:3]
        )
        files_text = " nor any of its files' SHA-256" if file_subjects else ""
        return (
            f"its subjects ({named}) do not name {run.snapshot.ref}: neither its digest "
            f"{_short(record.digest)}{files_text}"
        )

    def check_evidence(self, run: _Run, check_id: str, stored: StoredEvidence) -> None:
        record = stored.record
        if record.kind == SIGNATURE_KIND:
            self._check_oms(run, check_id, stored)
            return
        rule = rule_for(record.kind, record.predicate_type)
        if rule is None:
            run.add(
                check_id,
                _FAILED,
                f"evidence of kind {_quote(record.kind)} has no rule saying who may sign it",
            )
            return
        if rule.predicate_types is not None and record.predicate_type not in rule.predicate_types:
            expected = ", ".join(sorted(rule.predicate_types))
            run.add(
                check_id,
                _FAILED,
                f"predicate type {_quote(record.predicate_type)} is not one a {record.kind} "
                f"has ({expected})",
            )
            return
        if rule.predicate_types is None and "://" not in record.predicate_type:
            run.add(
                check_id,
                _FAILED,
                f"predicate type {_quote(record.predicate_type)} is not a URI",
            )
            return
        problem = self._stored_problem(stored)
        if problem is not None:
            run.add(check_id, _FAILED, f"the {record.kind} is corrupt: {problem}")
            return
        try:
            auth = authenticate(
                stored.bundle, self.trust, rule.roles, oms=False, now=self.now, limits=self.limits
            )
        except MlprovError as e:
            if record.kind in _OPINIONS:
                # An approval or waiver is an opinion about the version, not a claim of what
                # it is: one nobody trusted signed counts for nothing, but cannot make the
                # version fail (else anyone able to add evidence could block a release).
                run.add(check_id, _SKIPPED, f"untrusted {record.kind} not counted: {e.message}")
                return
            run.add(check_id, _FAILED, f"untrusted {record.kind}: {e.message}")
            return
        attestation = auth.attestation
        assert attestation is not None
        usable = self._authenticated(run, check_id, auth)
        if attestation.predicate_type != record.predicate_type:
            run.add(
                check_id,
                _FAILED,
                f"the registry records predicate type {_quote(record.predicate_type)}, the "
                f"signed statement says {_quote(attestation.predicate_type)}",
            )
            return
        subject = self._subject_problem(run, attestation, rule.file_subjects)
        if subject is not None:
            run.add(check_id, _FAILED, subject)
            return
        reader = _READERS.get(record.predicate_type)
        try:
            if reader is not None:
                reader(attestation.statement)
        except MlprovError as e:
            run.add(check_id, _FAILED, f"the signed {record.kind} cannot be read: {e.message}")
            return
        if usable:
            run.accepted.append(_Accepted(check_id, stored, auth, attestation.statement))
        run.add(
            check_id,
            _PASSED,
            f"signed by {auth.signer.name!r} ({auth.identity}) as {auth.role}; "
            f"{record.predicate_type} about {_short(run.snapshot.record.digest)}",
        )

    # -- what the documents say --------------------------------------------------------

    def check_builder(self, run: _Run) -> None:
        provenances = [a for a in run.accepted if a.predicate_type == SLSA_PREDICATE_TYPE]
        if not provenances:
            run.add("provenance.builder", _SKIPPED, "no verified SLSA provenance to check")
            return
        proven: list[tuple[_Accepted, str, str]] = []
        claimed: list[tuple[_Accepted, str]] = []
        for item in provenances:
            builder_id, build_type = docs.provenance_builder(item.statement)
            signer = item.auth.signer
            if "builder" not in signer.roles:
                claimed.append((item, builder_id))
            elif builder_id in signer.builder_ids:
                proven.append((item, builder_id, build_type))
            else:
                allowed = ", ".join(repr(b) for b in signer.builder_ids) or "none"
                run.add(
                    "provenance.builder",
                    _FAILED,
                    f"{item.check_id}: builder.id {_quote(builder_id)} is not one the trusted "
                    f"builder {signer.name!r} may claim ({allowed})",
                )
                return
        if proven:
            item, builder_id, build_type = proven[-1]
            run.builder = (builder_id, build_type)
            run.add(
                "provenance.builder",
                _PASSED,
                f"builder {builder_id!r} (build type {build_type}) vouched for by the trusted "
                f"builder {item.auth.signer.name!r}",
            )
            return
        item, builder_id = claimed[-1]
        run.add(
            "provenance.builder",
            _SKIPPED,
            f"builder {_quote(builder_id)} is only claimed by the {item.auth.role} "
            f"{item.auth.signer.name!r}, which is not trusted as a builder: no trusted builder "
            "vouches for it",
        )

    def _dataset_sources(self, run: _Run) -> list[tuple[str, dict[str, docs.DatasetClaim]]]:
        sources = []
        provenance, bom = run.newest("provenance"), run.newest("bom")
        if provenance is not None:
            sources.append(("provenance", docs.provenance_datasets(provenance.statement)))
        if bom is not None:
            sources.append(("ML-BOM", docs.bom_datasets(bom.statement)))
        return sources

    def check_datasets(self, run: _Run) -> None:
        record = run.snapshot.record
        recorded = {d.name: docs.DatasetClaim(d.name, d.uri, d.digest) for d in record.datasets}
        try:
            sources = self._dataset_sources(run)
        except MlprovError as e:
            run.add("datasets", _FAILED, e.message)
            return
        if not sources:
            run.add(
                "datasets",
                _SKIPPED,
                f"no verified provenance or ML-BOM names datasets; the registry's "
                f"{len(recorded)} dataset(s) are not backed by signed evidence",
            )
            return
        every = [*sources, ("registry", recorded)]
        agreed = []
        for name in sorted({n for _, claims in every for n in claims}):
            seen = {label: claims.get(name) for label, claims in every}
            values = {(c.digest.lower(), c.uri) if c else None for c in seen.values()}
            if len(values) > 1:
                parts = ", ".join(
                    f"{label} {_short(c.digest)} at {_quote(c.uri)}" if c else f"{label} absent"
                    for label, c in seen.items()
                )
                run.add("datasets", _FAILED, f"dataset {_quote(name)} differs: {parts}")
                return
            claim = seen["registry"]
            assert claim is not None
            agreed.append((claim.name, claim.uri, claim.digest))
        run.datasets = tuple(agreed)
        labels = ", the ".join(label for label, _ in every[:-1]) + " and the registry"
        names = ", ".join(repr(n) for n, _, _ in agreed) or "none"
        run.add("datasets", _PASSED, f"{len(agreed)} dataset(s) agree in the {labels}: {names}")

    def check_lineage(self, run: _Run, edge: Any, depth: int, path: tuple[str, ...]) -> None:
        check_id = f"lineage.{edge.relation}:{edge.target}"
        if not edge.registered:
            self._check_external(run, check_id, edge)
            return
        snapshot = run.snapshot
        if depth <= 0:
            run.add(
                check_id,
                _SKIPPED,
                f"lineage depth bound reached: {edge.target} is not verified from here",
            )
            return
        if edge.target not in snapshot.ancestors:
            run.add(
                check_id, _FAILED, f"{edge.target} is not a registered version the registry loaded"
            )
            return
        ancestor = snapshot.ancestors[edge.target]
        if ancestor is None:
            run.add(
                check_id,
                _SKIPPED,
                f"{edge.target} is beyond the registry's lineage depth bound: not verified",
            )
            return
        if ancestor.ref != edge.target:
            run.add(check_id, _FAILED, f"the snapshot loaded {ancestor.ref} for {edge.target}")
            return
        if edge.target in path:
            run.add(check_id, _FAILED, f"lineage cycle: {' -> '.join((*path, edge.target))}")
            return
        if ancestor.record.digest != edge.digest:
            run.add(
                check_id,
                _FAILED,
                f"the edge is bound to {_short(edge.digest)}, but {edge.target}'s digest is "
                f"{_short(ancestor.record.digest)}",
            )
            return
        report = self.verify(ancestor, depth - 1, path)
        failures = report.failures
        if failures:
            run.add(
                check_id,
                _FAILED,
                f"{edge.target} does not verify: {failures[0].id}: {failures[0].message}",
            )
            return
        skipped = sum(1 for c in report.checks if c.status == _SKIPPED)
        note = f", {skipped} skipped" if skipped else ""
        run.add(
            check_id,
            _PASSED,
            f"{edge.target} is registered, bound by its digest {_short(edge.digest)} and "
            f"verifies ({len(report.checks)} checks{note})",
        )

    def _check_external(self, run: _Run, check_id: str, edge: Any) -> None:
        claims: list[tuple[str, dict[tuple[str, str], docs.LineageClaim]]] = []
        try:
            provenance, bom = run.newest("provenance"), run.newest("bom")
            if provenance is not None:
                claims.append(("provenance", docs.provenance_lineage(provenance.statement)))
            if bom is not None:
                claims.append(("ML-BOM", docs.bom_lineage(bom.statement)))
        except MlprovError as e:
            run.add(check_id, _FAILED, e.message)
            return
        if not claims:
            run.add(
                check_id,
                _SKIPPED,
                "an external artefact named only by the registry's record: no verified "
                "provenance or ML-BOM binds it",
            )
            return
        for label, found in claims:
            claim = found.get((edge.relation, edge.target))
            if claim is None:
                run.add(
                    check_id, _FAILED, f"the signed {label} does not name this external artefact"
                )
                return
            if claim.digest.lower() != edge.digest.lower():
                run.add(
                    check_id,
                    _FAILED,
                    f"the signed {label} binds it to {_short(claim.digest)}, the registry to "
                    f"{_short(edge.digest)}",
                )
                return
        labels = " and the ".join(label for label, _ in claims)
        run.add(
            check_id,
            _PASSED,
            f"external artefact bound to {_short(edge.digest)} by the signed {labels}",
        )

    def check_records(self, run: _Run) -> None:
        provenance, bom, card = (
            run.newest("provenance"),
            run.newest("bom"),
            run.newest("model-card"),
        )
        if provenance is None and bom is None and card is None:
            run.add(
                "registry.records",
                _SKIPPED,
                "no verified provenance, ML-BOM or model card to compare the registry's "
                "records with",
            )
            return
        try:
            problems = _record_differences(run, provenance, bom, card)
        except MlprovError as e:
            run.add("registry.records", _FAILED, e.message)
            return
        if problems:
            more = (
                f" (and {len(problems) - 1} more: {'; '.join(problems[1:4])})"
                if len(problems) > 1
                else ""
            )
            run.add(
                "registry.records",
                _FAILED,
                f"the registry's records differ from the signed documents: {problems[0]}{more}",
            )
            return
        used = [
            label
            for label, item in (("provenance", provenance), ("ML-BOM", bom), ("model card", card))
            if item
        ]
        run.add(
            "registry.records",
            _PASSED,
            f"params, metrics, datasets and lineage edges equal what the signed "
            f"{', '.join(used)} say",
        )

    def check_revocation(self, run: _Run) -> None:
        problems = []
        ref = run.snapshot.ref
        if ref in self.revocations.versions:
            problems.append(f"{ref} is revoked: {self.revocations.versions[ref]}")
        identities = []
        for check_id, auth in run.authenticated:
            reason = _revoked(auth.identity, self.revocations)
            if reason is not None:
                problems.append(f"the signer of {check_id}, {auth.identity}, is revoked: {reason}")
            if auth.identity not in identities:
                identities.append(auth.identity)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            run.add("revocation", _FAILED, problems[0] + more)
            return
        run.add(
            "revocation",
            _PASSED,
            f"neither {ref} nor any of its {len(identities)} verified signer(s) is revoked",
        )


#: Readers run on a verified statement of a predicate type, so a document that cannot be
#: read fails its own evidence check instead of a later one.
_READERS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    SLSA_PREDICATE_TYPE: lambda s: (
        docs.provenance_builder(s),
        docs.provenance_datasets(s),
        docs.provenance_lineage(s),
    ),
    CYCLONEDX_PREDICATE_TYPE: lambda s: (
        docs.bom_datasets(s),
        docs.bom_lineage(s),
        docs.bom_metrics(s),
        docs.bom_licenses(s),
        docs.bom_formats(s),
    ),
    MODEL_CARD_PREDICATE_TYPE: lambda s: (docs.card_metrics(s), docs.card_sections(s)),
    docs.EVALUATION_PREDICATE_TYPE: docs.evaluation_metrics,
}


def _record_differences(
    run: _Run, provenance: _Accepted | None, bom: _Accepted | None, card: _Accepted | None
) -> list[str]:
    """Every way the registry's rows differ from the signed documents, one phrase each."""
    from mlprov.provenance import normalize_metrics  # noqa: PLC0415

    record = run.snapshot.record
    problems: list[str] = []
    edges = {
        (e.relation, e.target): docs.LineageClaim(e.relation, e.target, e.digest, e.registered)
        for e in record.lineage
    }
    datasets = {d.name: docs.DatasetClaim(d.name, d.uri, d.digest) for d in record.datasets}
    try:
        metrics = normalize_metrics(record.metrics, numbers_only=False)
    except InvalidInputError as e:
        problems.append(f"the registry's metrics do not parse ({e.message})")
        metrics = {}

    def compare(
        what: str,
        label: str,
        signed: Mapping[Any, Any],
        recorded: Mapping[Any, Any],
        name: Callable[[Any], str],
    ) -> None:
        for key in sorted(set(signed) | set(recorded), key=str):
            if key not in signed:
                problems.append(f"{what} {name(key)} is in the registry, not in the signed {label}")
            elif key not in recorded:
                problems.append(f"{what} {name(key)} is in the signed {label}, not in the registry")
            elif signed[key] != recorded[key]:
                problems.append(
                    f"{what} {name(key)} differs between the registry and the signed {label}"
                )

    def edge_name(key: tuple[str, str]) -> str:
        return f"{key[0]}:{key[1]}"

    if provenance is not None:
        if not _same_json(docs.provenance_params(provenance.statement), record.params):
            problems.append("params differ between the registry and the signed provenance")
        compare(
            "dataset", "provenance", docs.provenance_datasets(provenance.statement), datasets, repr
        )
        compare(
            "lineage edge",
            "provenance",
            docs.provenance_lineage(provenance.statement),
            edges,
            edge_name,
        )
    if bom is not None:
        compare("dataset", "ML-BOM", docs.bom_datasets(bom.statement), datasets, repr)
        compare("lineage edge", "ML-BOM", docs.bom_lineage(bom.statement), edges, edge_name)
        texts = {key: _metric_text(value) for key, value in metrics.items()}
        compare("metric", "ML-BOM", docs.bom_metrics(bom.statement), texts, repr)
    if card is not None:
        signed = {
            k: canonical_json(v, "metric") for k, v in docs.card_metrics(card.statement).items()
        }
        recorded = {k: canonical_json(v, "metric") for k, v in metrics.items()}
        compare("metric", "model card", signed, recorded, repr)
    return problems
