"""Builders for the policy engine tests: policy folders as bytes, verification reports with
facts, gate contexts. Everything is built in the test; nothing is read from disk."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from mlprov.policy import (
    GateContext,
    Move,
    PolicyDecision,
    PolicySet,
    Target,
    evaluate,
    load_policy_set,
)
from mlprov.records import LineageEdge, ModelVersion, Stage
from mlprov.signing import (
    SignerIdentity,
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
)
from mlprov.verification import (
    CheckResult,
    CheckStatus,
    VerificationReport,
    VerifiedAttestation,
    VerifiedFacts,
)

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=timezone.utc)
PRODUCTION = Target("alias", "production")
STAGING = Target("alias", "staging")


def public_key() -> bytes:
    """A fresh P-256 public key (PEM); its private half is thrown away."""
    return public_key_pem(load_private_key(generate_private_key_pem()).public_key())


def identity(subject: str, issuer: str | None = "https://accounts.example") -> SignerIdentity:
    return SignerIdentity("sigstore", subject, issuer, None)


def key_identity(hint: str) -> SignerIdentity:
    return SignerIdentity("key", hint, None, hint)


#: The trust of the test policy set: keys for signers, builders, evaluators; approvers
#: alice (two keys: one person), bob, carol, dave (the creator's name), a Sigstore
#: pattern for a team of approvers.
def trust_yaml() -> str:
    return textwrap.dedent(
        """\
        version: 1
        trust:
          signers:
            - name: ci
              roles: [model-signer]
              keys: [{file: keys/ci.pub}]
            - name: other-signer
              roles: [model-signer]
              keys: [{file: keys/other.pub}]
            - name: builder
              roles: [builder]
              keys: [{file: keys/builder.pub}]
              builder_ids: [https://ci.example/builder@v1]
            - name: evaluator
              roles: [evaluator]
              keys: [{file: keys/evaluator.pub}]
            - name: alice
              roles: [approver]
              keys: [{file: keys/alice-1.pub}, {file: keys/alice-2.pub}]
            - name: bob
              roles: [approver]
              keys: [{file: keys/bob.pub}]
            - name: carol
              roles: [approver]
              sigstore: {issuer: https://accounts.example, subject: carol@example.org}
            - name: dave
              roles: [approver]
              sigstore: {issuer: https://accounts.example, subject: dave@example.org}
            - name: reviewers
              roles: [approver]
              sigstore:
                issuer: https://accounts.example
                subject_regex: ^[a-z]+@reviewers\\.example\\.org$
        """
    )


KEY_FILES = (
    "ci",
    "other",
    "builder",
    "evaluator",
    "alice-1",
    "alice-2",
    "bob",
)


def policy_files(policy_yaml: str, *, extra: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """A policy folder: the shared trust, one policy file, the key files it names."""
    files = {
        "trust.yaml": trust_yaml().encode(),
        "policy.yaml": textwrap.dedent(policy_yaml).encode(),
    }
    for name in KEY_FILES:
        files[f"keys/{name}.pub"] = public_key()
    files.update(extra or {})
    return files


def policy_with(requirements: str, *, options: str = "", name: str = "prod") -> str:
    """A policy selecting every model's ``production`` alias, with these requirements
    (YAML list items, indented freely) and policy-level options."""
    body = textwrap.indent(textwrap.dedent(requirements).strip("\n"), "      ")
    extra = textwrap.indent(textwrap.dedent(options).strip("\n"), "    ") if options else ""
    return (
        "version: 1\n"
        "policies:\n"
        f"  - name: {name}\n"
        '    models: ["*"]\n'
        "    targets: {aliases: [production], stages: [Production]}\n"
        "    require:\n"
        f"{body}\n"
        f"{extra}\n"
    )


def load(requirements: str, *, options: str = "") -> PolicySet:
    return load_policy_set(policy_files(policy_with(requirements, options=options)))


def attestation(
    kind: str,
    signer_name: str,
    role: str,
    predicate_type: str = "https://example.org/predicate/v1",
    predicate: Mapping[str, Any] | None = None,
) -> VerifiedAttestation:
    return VerifiedAttestation(
        kind,
        predicate_type,
        key_identity(f"{signer_name}-hint"),
        signer_name,
        role,
        predicate or {},
    )


def good_facts(**changes: Any) -> VerifiedFacts:
    facts = VerifiedFacts(
        model_signers=(("ci", key_identity("ci-hint")),),
        builder_id="https://ci.example/builder@v1",
        build_type="https://mlprov.dev/training/v1",
        attestations=(
            attestation("provenance", "builder", "builder", "https://slsa.dev/provenance/v1"),
            attestation("bom", "ci", "model-signer", "https://cyclonedx.org/bom"),
            attestation("model-card", "ci", "model-signer", "https://mlprov.dev/model-card/v1"),
            attestation("attestation", "evaluator", "evaluator", "https://mlprov.dev/eval/v1"),
        ),
        metrics={"val/auc": 0.93, "val/auc[segment=retail]": 0.88},
        datasets=(("train", "s3://data/credit/train.parquet", "sha256:" + "ab" * 32),),
        licenses=("Apache-2.0",),
        formats=("safetensors",),
        card_sections=frozenset({"intended_use", "limitations"}),
    )
    return replace(facts, **changes)


def passed_checks(*extra: CheckResult, subject: str = "credit/2") -> tuple[CheckResult, ...]:
    return (
        CheckResult("signature", CheckStatus.PASSED, "verified by ci", subject),
        CheckResult("artifact", CheckStatus.PASSED, "every file matches", subject),
        *extra,
    )


def report(
    facts: VerifiedFacts | None = None,
    checks: tuple[CheckResult, ...] | None = None,
    subject: str = "credit/2",
) -> VerificationReport:
    return VerificationReport(
        subject,
        checks if checks is not None else passed_checks(subject=subject),
        facts if facts is not None else good_facts(),
    )


def version_record(
    number: int = 2,
    *,
    created_by: str = "dave",
    metrics: Mapping[str, Any] | None = None,
    lineage: tuple[LineageEdge, ...] = (),
    size: int = 1024,
) -> ModelVersion:
    return ModelVersion(
        name="credit",
        version=number,
        digest="sha256:" + "cd" * 32,
        hash_algorithm="sha256",
        size=size,
        file_count=1,
        single_file=False,
        artifact_name="credit",
        stage=Stage.NONE,
        params={},
        metrics=dict(metrics or {}),
        tags={},
        description="",
        datasets=[],
        lineage=list(lineage),
        source_uri=None,
        run_id=None,
        code_repo=None,
        code_commit=None,
        created_at="2026-12-01T00:00:00Z",
        created_by=created_by,
    )


def context(**changes: Any) -> GateContext:
    base = GateContext(now=NOW, move=Move(1, 2), version=version_record())
    return replace(base, **changes)


def decide(
    policy_set: PolicySet,
    candidate: VerificationReport | None = None,
    gate: GateContext | None = None,
    *,
    target: Target = PRODUCTION,
    model: str = "credit",
) -> PolicyDecision:
    return evaluate(
        policy_set,
        model=model,
        target=target,
        report=candidate if candidate is not None else report(),
        context=gate if gate is not None else context(),
    )


def later(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)
