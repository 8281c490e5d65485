"""The verification engine, table-driven, over snapshots made with real signatures.

Each case builds a version (and its ancestors) signed with real keys or a test PKI, with
the documents mlprov.provenance makes, then breaks one thing. It names every check that
must fail (and a phrase its message must contain) and every check that must be skipped:
any other failed or skipped check fails the case, so each fails for the right reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from mlprov.errors import EXIT_VERIFICATION, VerificationError
from mlprov.records import DatasetRef, LineageEdge
from mlprov.verification import (
    CheckStatus,
    Revocations,
    TrustSet,
    VerificationReport,
    VersionSnapshot,
    verify_snapshot,
    verify_snapshot_or_raise,
)
from support.verify_snapshots import (
    CI_BUILD_TYPE,
    CI_BUILDER_ID,
    TRAINER_ID,
    VersionMaker,
    attestation,
    certificate_party,
    ci_provenance,
    documents,
    edited,
    evaluation,
    key_party,
    manifest_of,
    oms_signature,
    record_for,
    replace_kind,
    stored,
    trust_of,
    with_evidence,
    without_kind,
)

RELEASE = key_party("release")
CI = key_party("ci")
EVALUATOR = key_party("evaluator")
STRANGER = key_party("stranger")
CERT_SIGNER = certificate_party("release-cert")

TRAIN = DatasetRef(name="train", uri="s3://bank/train/", digest="sha256:" + "c3" * 32)
HOLDOUT = DatasetRef(name="holdout", uri="s3://bank/holdout.parquet", digest="sha256:" + "d4" * 32)
TEACHER = LineageEdge(
    relation="teacher",
    target="hf://example/teacher",
    digest="sha256:" + "b2" * 32,
    registered=False,
)


def full_trust() -> TrustSet:
    return trust_of(
        RELEASE.trusted("model-signer"),
        CI.trusted("builder", builder_ids=[CI_BUILDER_ID]),
        EVALUATOR.trusted("evaluator"),
    )


@dataclass
class Built:
    snapshot: VersionSnapshot
    trust: TrustSet = field(default_factory=full_trust)
    options: dict[str, Any] = field(default_factory=dict)


def _family(signer: Any = RELEASE, **child: Any) -> tuple[VersionSnapshot, VersionSnapshot]:
    """(child credit-risk/2, its parent credit-risk/1 whose base is base/1)."""
    maker = VersionMaker(signer)
    base = maker.make("base", 1)
    parent = maker.make("credit-risk", 1, parents=[("base", base)], datasets=[TRAIN])
    made = maker.make(
        "credit-risk",
        2,
        parents=[("parent", parent)],
        external=[TEACHER],
        datasets=[TRAIN, HOLDOUT],
        **child,
    )
    return made, parent


def passing() -> Built:
    child, _ = _family()
    record = child.record
    return Built(
        with_evidence(
            child,
            ci_provenance(record, CI),
            evaluation(
                record, EVALUATOR, {"auc": 0.95, "subgroups": {"segment=retail": {"auc": 0.9}}}
            ),
        )
    )


def passing_certificate() -> Built:
    child, _ = _family(CERT_SIGNER)
    return Built(child, trust_of(CERT_SIGNER.trusted("model-signer")))


def unsigned() -> Built:
    return Built(without_kind(_family()[0], "signature"))


def untrusted_key() -> Built:
    return Built(_family(STRANGER)[0])


def other_role_only() -> Built:
    # CI's key signed the model; CI is trusted, but as a builder only.
    return Built(_family(CI)[0])


def untrusted_builder_id() -> Built:
    child = _family()[0]
    return Built(
        with_evidence(child, ci_provenance(child.record, CI, builder_id="https://evil/runner"))
    )


def untrusted_builder_key() -> Built:
    child = _family()[0]
    return Built(with_evidence(child, ci_provenance(child.record, STRANGER)))


def parent_bytes_changed() -> Built:
    child, parent = _family()
    files = {"config.json": b"changed", "weights/model.safetensors": b"\x00" * 64}
    # The parent's recorded manifest no longer matches what its signature covers; its
    # record (and so the digest the child is bound to) is unchanged.
    broken = replace(parent, manifest=manifest_of(files))
    return Built(replace(child, ancestors={parent.ref: broken}))


def lineage_digest_mismatch() -> Built:
    maker = VersionMaker(RELEASE)
    parent = maker.make("credit-risk", 1)
    child = maker.make(
        "credit-risk", 2, parents=[("parent", parent)], bind={parent.ref: "sha256:" + "ee" * 32}
    )
    return Built(child)


def dataset_differs_in_bom() -> Built:
    child = _family()[0]
    other = DatasetRef(name="train", uri=TRAIN.uri, digest="sha256:" + "99" * 32)
    bom_record = child.record.model_copy(update={"datasets": [other, HOLDOUT]})
    (bom,) = documents(bom_record, RELEASE, kinds=("bom",))
    return Built(replace_kind(child, "bom", bom))


def metric_edited() -> Built:
    child = _family()[0]
    return Built(edited(child, metrics={**child.record.metrics, "auc": 0.99}))


def dataset_edited() -> Built:
    child = _family()[0]
    forged = DatasetRef(name="train", uri=TRAIN.uri, digest="sha256:" + "77" * 32)
    return Built(edited(child, datasets=[forged, HOLDOUT]))


def external_lineage_edited() -> Built:
    child = _family()[0]
    forged = TEACHER.model_copy(update={"digest": "sha256:" + "66" * 32})
    lineage = [forged if e.target == TEACHER.target else e for e in child.record.lineage]
    return Built(edited(child, lineage=lineage))


def registered_lineage_edited() -> Built:
    child, _ = _family()
    maker = VersionMaker(RELEASE)
    impostor = maker.make("credit-risk", 9)
    lineage = [
        e.model_copy(update={"target": impostor.ref, "digest": impostor.record.digest})
        if e.relation == "parent"
        else e
        for e in child.record.lineage
    ]
    # The row now points at another, well-signed version: the ancestor verifies, but the
    # signed documents name credit-risk/1.
    return Built(replace(edited(child, lineage=lineage), ancestors={impostor.ref: impostor}))


def unsigned_metric() -> Built:
    child = _family()[0]
    return Built(edited(child, metrics={**child.record.metrics, "val/f1": 0.99}))


def revoked_key() -> Built:
    return Built(
        _family()[0], options={"revocations": Revocations(key_hints={RELEASE.hint: "leaked"})}
    )


def revoked_identity() -> Built:
    child, _ = _family(CERT_SIGNER)
    identity = f"certificate:CN={CERT_SIGNER.name} (CN={CERT_SIGNER.name} root)"
    return Built(
        child,
        trust_of(CERT_SIGNER.trusted("model-signer")),
        {"revocations": Revocations(identities={identity: "left the company"})},
    )


def revoked_version() -> Built:
    child = _family()[0]
    return Built(child, options={"revocations": Revocations(versions={child.ref: "bad data"})})


def revoked_parent() -> Built:
    child, parent = _family()
    return Built(child, options={"revocations": Revocations(versions={parent.ref: "bad data"})})


def depth_zero() -> Built:
    return Built(_family()[0], options={"max_depth": 0})


def depth_one() -> Built:
    # The parent verifies; its own base is beyond the bound (skipped inside the parent).
    return Built(_family()[0], options={"max_depth": 1})


def ancestor_not_loaded() -> Built:
    child, parent = _family()
    return Built(replace(child, ancestors={parent.ref: None}))


def ancestor_missing() -> Built:
    child, _ = _family()
    return Built(replace(child, ancestors={}))


def corrupt_evidence() -> Built:
    child = _family()[0]
    bom = next(e for e in child.evidence if e.record.kind == "bom")
    broken = replace(bom, bundle=bom.bundle.replace(b'"', b" ", 0) + b" ")
    return Built(replace_kind(child, "bom", broken))


def malformed_bundle() -> Built:
    child = _family()[0]
    garbage = stored("bom", "https://cyclonedx.org/bom", b'{"mediaType": 1, ' * 3)
    return Built(replace_kind(child, "bom", garbage))


def unknown_kind() -> Built:
    child = _family()[0]
    bundle = RELEASE.signer.sign(b'{"x":1}').bundle
    return Built(with_evidence(child, stored("mystery", "https://example.com/x/v1", bundle)))


def attestation_about_other_model() -> Built:
    child = _family()[0]
    other = record_for("other", 1, manifest_of({"a": b"other"}))
    return Built(with_evidence(child, evaluation(other, EVALUATOR, {"auc": 0.99})))


def predicate_type_row_edited() -> Built:
    child = _family()[0]
    item = evaluation(child.record, EVALUATOR, {"auc": 0.5})
    forged = replace(item, record=item.record.model_copy(update={"predicate_type": "https://x/y"}))
    return Built(with_evidence(child, forged))


def self_claimed_builder() -> Built:
    return Built(_family()[0])


def model_signer_is_builder() -> Built:
    trust = trust_of(
        RELEASE.trusted("model-signer", "builder", builder_ids=[TRAINER_ID]),
        EVALUATOR.trusted("evaluator"),
    )
    return Built(_family()[0], trust)


def model_signer_wrong_builder_id() -> Built:
    trust = trust_of(RELEASE.trusted("model-signer", "builder", builder_ids=["https://other"]))
    return Built(_family()[0], trust)


def file_subject() -> Built:
    child = _family()[0]
    file_hex = child.manifest.files[0].digest.hex
    return Built(with_evidence(child, ci_provenance(child.record, CI, subject=file_hex)))


def no_documents() -> Built:
    maker = VersionMaker(RELEASE)
    return Built(maker.make("bare", 1, datasets=[TRAIN], with_documents=False))


def second_signature_untrusted() -> Built:
    child = _family()[0]
    older = oms_signature(child.manifest, STRANGER)
    return Built(replace(child, evidence=(older, *child.evidence)))


# case -> (build, {failed check id: phrase}, {skipped check id: phrase})
CASES: dict[str, tuple[Callable[[], Built], dict[str, str], dict[str, str]]] = {
    "passing": (passing, {}, {}),
    "passing, certificate signer": (
        passing_certificate,
        {},
        {"provenance.builder": "only claimed"},
    ),
    "unsigned version": (
        unsigned,
        {"signature": "unsigned"},
        {"provenance.builder": "only claimed"},
    ),
    "signed by an untrusted key": (
        untrusted_key,
        {
            "signature": "no trusted model-signer verifies",
            "evidence.provenance": "untrusted provenance",
            "evidence.bom": "untrusted bom",
            "evidence.model-card": "untrusted model-card",
            # The parent is signed by the same stranger.
            "lineage.parent:credit-risk/1": "credit-risk/1 does not verify: signature",
        },
        {
            "provenance.builder": "no verified SLSA provenance",
            "datasets": "not backed by signed evidence",
            "lineage.teacher:hf://example/teacher": "named only by the registry",
            "registry.records": "no verified provenance",
        },
    ),
    "key trusted for another role only": (
        other_role_only,
        {
            "signature": "trusted as builder, not as model-signer",
            "evidence.bom": "trusted as builder, not as model-signer",
            "evidence.model-card": "trusted as builder, not as model-signer",
            # CI's own SLSA provenance is fine (builder), but names a builder it may not claim.
            "provenance.builder": "not one the trusted builder 'ci' may claim",
            "lineage.parent:credit-risk/1": "credit-risk/1 does not verify: signature",
        },
        {},
    ),
    "provenance from an untrusted builder id": (
        untrusted_builder_id,
        {"provenance.builder": "'https://evil/runner' is not one the trusted builder 'ci'"},
        {},
    ),
    "provenance signed by an untrusted builder key": (
        untrusted_builder_key,
        {"evidence.attestation": "no trusted builder or model-signer verifies"},
        {"provenance.builder": "only claimed"},
    ),
    "parent whose manifest no longer matches its signature": (
        parent_bytes_changed,
        {"lineage.parent:credit-risk/1": "does not verify: signature: the registry's manifest"},
        {"provenance.builder": "only claimed"},
    ),
    "lineage claim whose digest does not match the parent": (
        lineage_digest_mismatch,
        {"lineage.parent:credit-risk/1": "credit-risk/1's digest is"},
        {"provenance.builder": "only claimed"},
    ),
    "dataset digest differs between provenance and ML-BOM": (
        dataset_differs_in_bom,
        {
            "datasets": "dataset 'train' differs: provenance sha256:c3c3",
            "registry.records": "'train' differs between the registry and the signed ML-BOM",
        },
        {"provenance.builder": "only claimed"},
    ),
    "metric edited after signing": (
        metric_edited,
        {"registry.records": "metric 'auc' differs between the registry and the signed ML-BOM"},
        {"provenance.builder": "only claimed"},
    ),
    "dataset edited after signing": (
        dataset_edited,
        {
            "datasets": "dataset 'train' differs",
            "registry.records": "'train' differs between the registry and the signed provenance",
        },
        {"provenance.builder": "only claimed"},
    ),
    "external lineage edited after signing": (
        external_lineage_edited,
        {
            "lineage.teacher:hf://example/teacher": "binds it to sha256:b2b2",
            "registry.records": "lineage edge teacher:hf://example/teacher differs",
        },
        {"provenance.builder": "only claimed"},
    ),
    "registered lineage edited after signing": (
        registered_lineage_edited,
        {"registry.records": "edge parent:credit-risk/1 is in the signed provenance, not in"},
        {"provenance.builder": "only claimed"},
    ),
    "metric only in unsigned metadata": (
        unsigned_metric,
        {"registry.records": "metric 'val/f1' is in the registry, not in the signed ML-BOM"},
        {"provenance.builder": "only claimed"},
    ),
    "revoked signer key": (
        revoked_key,
        # The whole family is signed by the same key.
        {"revocation": "is revoked: leaked", "lineage.parent:credit-risk/1": "is revoked: leaked"},
        {
            "provenance.builder": "no verified SLSA provenance",
            "datasets": "not backed",
            "lineage.teacher:hf://example/teacher": "named only by the registry",
            "registry.records": "no verified provenance",
        },
    ),
    "revoked certificate identity": (
        revoked_identity,
        {
            "revocation": "is revoked: left the company",
            "lineage.parent:credit-risk/1": "is revoked: left the company",
        },
        {
            "provenance.builder": "no verified SLSA provenance",
            "datasets": "not backed",
            "lineage.teacher:hf://example/teacher": "named only by the registry",
            "registry.records": "no verified provenance",
        },
    ),
    "revoked version": (
        revoked_version,
        {"revocation": "credit-risk/2 is revoked: bad data"},
        {"provenance.builder": "only claimed"},
    ),
    "revoked parent": (
        revoked_parent,
        {"lineage.parent:credit-risk/1": "revocation: credit-risk/1 is revoked"},
        {"provenance.builder": "only claimed"},
    ),
    "depth bound 0: lineage skipped": (
        depth_zero,
        {},
        {
            "provenance.builder": "only claimed",
            "lineage.parent:credit-risk/1": "depth bound reached",
        },
    ),
    "depth bound 1: grandparent skipped inside the parent": (
        depth_one,
        {},
        {"provenance.builder": "only claimed"},
    ),
    "ancestor beyond the registry's bound": (
        ancestor_not_loaded,
        {},
        {
            "provenance.builder": "only claimed",
            "lineage.parent:credit-risk/1": "beyond the registry's lineage depth bound",
        },
    ),
    "ancestor not registered": (
        ancestor_missing,
        {"lineage.parent:credit-risk/1": "not a registered version"},
        {"provenance.builder": "only claimed"},
    ),
    "evidence bytes not the recorded ones": (
        corrupt_evidence,
        {"evidence.bom": "the bom is corrupt"},
        {"provenance.builder": "only claimed"},
    ),
    "evidence whose bundle does not parse": (
        malformed_bundle,
        {"evidence.bom": "untrusted bom: the bundle does not parse"},
        {"provenance.builder": "only claimed"},
    ),
    "evidence of an unknown kind": (
        unknown_kind,
        {"evidence.mystery": "has no rule saying who may sign it"},
        {"provenance.builder": "only claimed"},
    ),
    "attestation about another model": (
        attestation_about_other_model,
        {"evidence.attestation": "do not name credit-risk/2"},
        {"provenance.builder": "only claimed"},
    ),
    "predicate type row edited": (
        predicate_type_row_edited,
        {"evidence.attestation": "the signed statement says 'https://mlprov.dev/evaluation/v1'"},
        {"provenance.builder": "only claimed"},
    ),
    "builder only claimed by the model signer": (
        self_claimed_builder,
        {},
        {"provenance.builder": "only claimed by the model-signer 'release'"},
    ),
    "model signer also trusted as that builder": (model_signer_is_builder, {}, {}),
    "model signer trusted as another builder": (
        model_signer_wrong_builder_id,
        {
            "provenance.builder": f"{TRAINER_ID!r} is not one the trusted builder 'release'",
            "lineage.parent:credit-risk/1": "does not verify: provenance.builder",
        },
        {},
    ),
    "CI provenance naming one of the files": (file_subject, {}, {}),
    "no documents: their checks are skipped": (
        no_documents,
        {},
        {
            "provenance.builder": "no verified SLSA provenance",
            "datasets": "the registry's 1 dataset(s) are not backed by signed evidence",
            "registry.records": "no verified provenance",
        },
    ),
    "an older signature by an untrusted key": (
        second_signature_untrusted,
        {"evidence.signature": "untrusted signature"},
        {"provenance.builder": "only claimed"},
    ),
}


def _run(build: Callable[[], Built]) -> VerificationReport:
    built = build()
    return verify_snapshot(built.snapshot, built.trust, **built.options)


@pytest.mark.parametrize("case", list(CASES))
def test_verification_case(case: str) -> None:
    build, failed, skipped = CASES[case]
    report = _run(build)
    by_id = {c.id: c for c in report.checks}
    assert len(by_id) == len(report.checks), "check ids are unique"
    got_failed = {c.id for c in report.checks if c.status == CheckStatus.FAILED}
    got_skipped = {c.id for c in report.checks if c.status == CheckStatus.SKIPPED}
    detail = "\n".join(f"{c.status.value} {c.id}: {c.message}" for c in report.checks)
    assert got_failed == set(failed), detail
    assert got_skipped == set(skipped), detail
    for check_id, phrase in {**failed, **skipped}.items():
        assert phrase in by_id[check_id].message, detail
    assert report.passed == (not failed)
    assert all(c.subject == report.subject for c in report.checks)
    assert {"signature", "revocation", "datasets", "registry.records"} <= set(by_id)


def test_passing_facts_come_from_signed_evidence() -> None:
    report = _run(passing)
    facts = report.facts
    assert [name for name, _ in facts.model_signers] == ["release"]
    assert facts.model_signers[0][1].subject == RELEASE.hint
    assert (facts.builder_id, facts.build_type) == (CI_BUILDER_ID, CI_BUILD_TYPE)
    # The evaluator's numbers win over the training job's for the keys it attests.
    assert facts.metrics == {"auc": 0.95, "auc[segment=retail]": 0.9}
    assert facts.metric("auc@segment=retail") == 0.9
    assert facts.metric("auc[segment=retail]") == 0.9
    assert facts.metric("missing") is None
    assert facts.datasets == (
        ("holdout", HOLDOUT.uri, HOLDOUT.digest),
        ("train", TRAIN.uri, TRAIN.digest),
    )
    kinds = sorted((a.kind, a.role, a.signer_name) for a in facts.attestations)
    assert kinds == [
        ("attestation", "builder", "ci"),
        ("attestation", "evaluator", "evaluator"),
        ("bom", "model-signer", "release"),
        ("model-card", "model-signer", "release"),
        ("provenance", "model-signer", "release"),
    ]
    assert facts.to_json()["builder_id"] == CI_BUILDER_ID


def test_metrics_without_evaluator_come_from_the_signed_documents() -> None:
    child = _family()[0]
    report = verify_snapshot(child, full_trust())
    assert report.facts.metrics == {"auc": 0.93, "auc[segment=retail]": 0.9}


def test_edited_metric_keeps_the_signed_value() -> None:
    report = _run(metric_edited)
    assert report.facts.metrics["auc"] == 0.93


def test_unsigned_metric_is_absent_from_facts() -> None:
    report = _run(unsigned_metric)
    assert "val/f1" not in report.facts.metrics
    assert report.facts.metric("val/f1") is None


def test_evaluation_by_the_model_signer_is_not_an_evaluator_s_metric() -> None:
    child = _family()[0]
    own = evaluation(child.record, RELEASE, {"auc": 0.999, "val/f1": 0.8})
    report = verify_snapshot(with_evidence(child, own), full_trust())
    assert report.passed
    assert report.facts.metrics["auc"] == 0.93
    assert "val/f1" not in report.facts.metrics
    assert ("attestation", "model-signer") in {(a.kind, a.role) for a in report.facts.attestations}


def test_revoked_signer_proves_nothing() -> None:
    report = _run(revoked_key)
    assert report.facts.model_signers == ()
    assert report.facts.attestations == ()
    assert report.facts.metrics == {}


def test_licences_formats_and_card_sections_from_the_signed_documents() -> None:
    card = {
        "license": "Apache-2.0",
        "intended_use": {"primary_uses": ["credit scoring"]},
        "caveats_and_recommendations": {"technical_limitations": []},
    }
    manifest = manifest_of({"m.bin": b"x"})
    record = record_for("carded", 1, manifest, card=card)
    snapshot = VersionSnapshot(
        record, manifest, (oms_signature(manifest, RELEASE), *documents(record, RELEASE))
    )
    report = verify_snapshot(snapshot, full_trust())
    assert report.passed, [c for c in report.checks if c.status == CheckStatus.FAILED]
    assert report.facts.licenses == ("Apache-2.0",)
    assert report.facts.card_sections == frozenset({"license", "intended_use"})
    assert report.facts.formats == ()


def test_depth_one_reports_the_skipped_grandparent() -> None:
    report = _run(depth_one)
    parent = next(c for c in report.checks if c.id == "lineage.parent:credit-risk/1")
    assert parent.status == CheckStatus.PASSED
    assert "skipped" in parent.message


def test_lineage_cycle_is_reported() -> None:
    maker = VersionMaker(RELEASE)
    a = maker.make("loop", 1)
    b = maker.make("loop", 2, parents=[("parent", a)])
    # A corrupted store: loop/1 names loop/2 as its parent.
    a_cyclic = replace(
        edited(
            a,
            lineage=[
                LineageEdge(
                    relation="parent", target=b.ref, digest=b.record.digest, registered=True
                )
            ],
        ),
        ancestors={b.ref: b},
    )
    b_cyclic = replace(b, ancestors={a.ref: a_cyclic})
    object.__setattr__(a_cyclic, "ancestors", {b.ref: b_cyclic})
    report = verify_snapshot(b_cyclic, full_trust())
    assert not report.passed
    assert "lineage cycle" in " ".join(c.message for c in report.checks)


def test_raising_twin() -> None:
    built = unsigned()
    with pytest.raises(VerificationError) as raised:
        verify_snapshot_or_raise(built.snapshot, built.trust)
    assert raised.value.exit_code == EXIT_VERIFICATION
    assert "signature: unsigned" in raised.value.message
    ok = passing()
    assert verify_snapshot_or_raise(ok.snapshot, ok.trust).passed


def test_empty_trust_trusts_nothing() -> None:
    report = verify_snapshot(_family()[0], TrustSet())
    signature = next(c for c in report.checks if c.id == "signature")
    assert signature.status == CheckStatus.FAILED
    assert "no signer is trusted as model-signer" in signature.message


def test_trust_of_another_method_is_not_tried() -> None:
    report = verify_snapshot(_family()[0], trust_of(CERT_SIGNER.trusted("model-signer")))
    signature = next(c for c in report.checks if c.id == "signature")
    assert "no trusted model-signer uses the key method" in signature.message


def test_verification_does_not_change_the_snapshot() -> None:
    built = passing()
    before = repr(built.snapshot)
    bundles = [e.bundle for e in built.snapshot.evidence]
    first = verify_snapshot(built.snapshot, built.trust)
    second = verify_snapshot(built.snapshot, built.trust)
    assert first == second
    assert repr(built.snapshot) == before
    assert [e.bundle for e in built.snapshot.evidence] == bundles


def test_attestation_signed_for_a_model_whose_subject_is_a_file_of_another() -> None:
    child = _family()[0]
    bogus = "ab" * 32
    report = verify_snapshot(
        with_evidence(
            child, attestation(child.record, CI, "https://example.com/scan/v1", {}, subject=bogus)
        ),
        full_trust(),
    )
    check = next(c for c in report.checks if c.id == "evidence.attestation")
    assert check.status == CheckStatus.FAILED
    assert "nor any of its files' SHA-256" in check.message
