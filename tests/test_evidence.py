"""Signed evidence stored with versions: provenance, ML-BOM, card, attest and attach."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.registry_env import SHARED_TESTDATA, RegistryEnv, make_model, one_line_error

SIGSTORE = SHARED_TESTDATA / "sigstore-bundles"
CI_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
CI_ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    from mlprov import signing

    private = signing.generate_private_key_pem()
    key = tmp_path / "signing.key"
    key.write_bytes(private)
    public = tmp_path / "signing.pub"
    public.write_bytes(signing.public_key_pem(signing.load_private_key(private).public_key()))
    return key, public


def _signer(key: Path):  # type: ignore[no-untyped-def]
    from mlprov.signing import KeySigner

    return KeySigner.from_pem(key.read_bytes())


def _trust(public: Path):  # type: ignore[no-untyped-def]
    from mlprov.signing import KeyTrust

    return KeyTrust(public.read_bytes())


@pytest.fixture
def signed(reg: RegistryEnv, tmp_path: Path, keys: tuple[Path, Path]) -> RegistryEnv:
    from mlprov.registry import VersionInput

    model = make_model(tmp_path / "model")
    registry = reg.registry()
    try:
        registry.sign_and_register(
            model,
            "scorer",
            _signer(keys[0]),
            VersionInput(
                params={"optim": {"lr": 0.1}, "epochs": 3},
                metrics={"auc": 0.91, "auc[segment=retail]": 0.88},
                code_commit="ab" * 20,
                code_repo="https://token:secret@github.com/acme/scorer.git",
            ),
        )
    finally:
        registry.close()
    return reg


def test_every_signed_version_carries_signed_documents(
    signed: RegistryEnv, keys: tuple[Path, Path]
) -> None:
    from mlprov import signing

    registry = signed.registry()
    try:
        version = registry.get_version("scorer/1")
        kinds = [e.kind for e in version.evidence]
        assert kinds == ["signature", "provenance", "bom", "model-card"]
        model_hex = version.digest.partition(":")[2]
        for evidence in version.evidence[1:]:
            bundle = registry.evidence_content(version.ref, evidence.digest)
            verified = signing.verify_attestation(bundle, _trust(keys[1]))
            assert verified.subjects == (("scorer", {"sha256": model_hex}),)
            assert verified.predicate_type == evidence.predicate_type
        report = registry.verify_version("scorer/1", _trust(keys[1]))
        assert report.passed, report.checks
        assert [c.name for c in report.checks][-1] == "evidence"
        # Credentials never reach the record or the documents.
        assert version.code_repo == "https://github.com/acme/scorer.git"
    finally:
        registry.close()


def test_documents_print_readably_and_raw(signed: RegistryEnv) -> None:
    statement = json.loads(signed.cli("provenance", "scorer/1", check=True).stdout)
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["params"] == {
        "epochs": 3,
        "optim": {"lr": 0.1},
    }
    raw = json.loads(signed.cli("provenance", "scorer/1", "--raw", check=True).stdout)
    assert raw["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert "dsseEnvelope" in raw
    bom = json.loads(signed.cli("bom", "models:/scorer/1", check=True).stdout)
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.6"
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    card = signed.cli("card", "scorer@latest", check=True).stdout
    assert card.startswith("---\n")
    assert "## Quantitative analyses" in card
    listed = json.loads(signed.cli("versions", "show", "scorer/1", "--json", check=True).stdout)
    assert [e["kind"] for e in listed["evidence"]] == [
        "signature",
        "provenance",
        "bom",
        "model-card",
    ]


def test_tampered_stored_attestation_fails_verification(
    signed: RegistryEnv, keys: tuple[Path, Path]
) -> None:
    import sqlalchemy as sa

    registry = signed.registry()
    try:
        with registry.metadata.engine.begin() as connection:
            row = connection.execute(
                sa.text("SELECT id, content FROM evidence WHERE kind = 'provenance'")
            ).one()
            document = json.loads(bytes(row.content))
            document["dsseEnvelope"]["payload"] = (
                document["dsseEnvelope"]["payload"][:-8] + "AAAAAAA="
            )
            connection.execute(
                sa.text("UPDATE evidence SET content = :c WHERE id = :i"),
                {"c": json.dumps(document).encode(), "i": row.id},
            )
        report = registry.verify_version("scorer/1", _trust(keys[1]))
        assert not report.passed
        assert report.error is not None
        assert report.error.exit_code == 1
        assert "corrupt" in report.error.message
    finally:
        registry.close()


def test_attest_adds_signed_evidence(
    signed: RegistryEnv, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    predicate = tmp_path / "eval.json"
    predicate.write_text(json.dumps({"dataset": "holdout", "auc": 0.905}))
    result = signed.cli(
        "attest",
        "scorer/1",
        "--predicate-type",
        "https://example.com/eval/v1",
        "--predicate",
        str(predicate),
        "--key",
        str(keys[0]),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    evidence = json.loads(result.stdout)
    assert evidence["kind"] == "attestation"
    registry = signed.registry()
    try:
        from mlprov import signing

        bundle = registry.evidence_content("scorer/1", evidence["digest"])
        verified = signing.verify_attestation(bundle, _trust(keys[1]))
        assert verified.statement["predicate"] == {"auc": 0.905, "dataset": "holdout"}
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--predicate-type", "not-a-uri"], 2, "must be a URI"),
        (
            ["--predicate-type", "https://e.com/x", "--predicate", "missing.json"],
            4,
            "no such predicate file",
        ),
    ],
)
def test_bad_attest_changes_nothing(
    signed: RegistryEnv,
    keys: tuple[Path, Path],
    tmp_path: Path,
    args: list[str],
    code: int,
    needle: str,
) -> None:
    predicate = tmp_path / "p.json"
    predicate.write_text("{}")
    if "--predicate" not in args:
        args = [*args, "--predicate", str(predicate)]
    before = signed.snapshot()
    result = signed.cli("attest", "scorer/1", *args, "--key", str(keys[0]), cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert needle in one_line_error(result.stderr)
    assert signed.snapshot() == before


def _require_sigstore_bundles() -> None:
    if not SIGSTORE.is_dir():
        pytest.skip(f"shared Sigstore test bundles not found at {SIGSTORE}")


def test_attach_ci_provenance_to_the_file_it_attests(reg: RegistryEnv, tmp_path: Path) -> None:
    _require_sigstore_bundles()
    artefact = tmp_path / "a.txt"
    shutil.copy(SIGSTORE / "a.txt", artefact)
    reg.cli("register", str(artefact), "--name", "ci-model", "--no-git", check=True)
    bundle = SIGSTORE / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"
    result = reg.cli(
        "attach",
        "ci-model/1",
        str(bundle),
        "--identity",
        CI_IDENTITY,
        "--issuer",
        CI_ISSUER,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    evidence = json.loads(result.stdout)
    assert evidence["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert CI_IDENTITY in evidence["signer"]
    registry = reg.registry()
    try:
        stored = registry.evidence_content("ci-model/1", evidence["digest"])
    finally:
        registry.close()
    assert stored == bundle.read_bytes()  # exact bytes, never re-serialised


@pytest.mark.parametrize(
    ("identity", "issuer", "model", "needle"),
    [
        (
            "https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main",
            CI_ISSUER,
            "a.txt",
            "",
        ),
        (CI_IDENTITY, "https://accounts.google.com", "a.txt", ""),
        (CI_IDENTITY, CI_ISSUER, "other", "is not about ci-model/1"),
    ],
)
def test_attach_refuses_wrong_identity_or_subject(
    reg: RegistryEnv, tmp_path: Path, identity: str, issuer: str, model: str, needle: str
) -> None:
    _require_sigstore_bundles()
    if model == "a.txt":
        artefact = tmp_path / "a.txt"
        shutil.copy(SIGSTORE / "a.txt", artefact)
    else:
        artefact = make_model(tmp_path / "other")
    reg.cli("register", str(artefact), "--name", "ci-model", "--no-git", check=True)
    before = reg.snapshot()
    bundle = SIGSTORE / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"
    result = reg.cli(
        "attach", "ci-model/1", str(bundle), "--identity", identity, "--issuer", issuer
    )
    assert result.returncode == 1, result.stderr
    assert needle in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_training_run_records_everything_and_failure_registers_nothing(
    reg: RegistryEnv, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    import mlprov

    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n")
    out = make_model(tmp_path / "out", {"w.bin": b"trained"})
    registry = reg.registry()
    try:
        before = reg.snapshot()
        with (
            pytest.raises(RuntimeError),
            mlprov.training_run(
                name="tr", params={"lr": 0.1}, registry=registry, capture_environment=False
            ),
        ):
            raise RuntimeError("training crashed")
        assert reg.snapshot() == before
        with mlprov.training_run(
            name="tr",
            params={"optim": {"lr": 0.1}},
            datasets={"train": str(data), "eval": "s3://bucket/eval@sha256:" + "c" * 64},
            card={"license": "apache-2.0"},
            registry=registry,
        ) as run:
            run.log_metrics({"auc": 0.9})
            run.log_metric("auc", 0.8, subgroup={"segment": "retail"})
            version = run.sign_and_register(out, signer=_signer(keys[0]))
        assert version.metrics == {"auc": 0.9, "auc[segment=retail]": 0.8}
        assert version.started_at is not None
        assert version.finished_at is not None
        assert version.environment
        assert any(line.startswith("pytest==") for line in version.environment)
        assert {d.name for d in version.datasets} == {"train", "eval"}
        assert version.card is not None
        assert version.card["license"] == "apache-2.0"
        provenance = registry.document(version.ref, "provenance").statement
        dependencies = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
        kinds = {d["annotations"]["kind"] for d in dependencies}
        assert {"dataset", "environment-lock"} <= kinds
    finally:
        registry.close()
