"""Policy files: strict validation with file, line and key; the set's digest; the trust
the files declare; the shipped example policies."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlprov.errors import EXIT_INVALID, InvalidInputError, SignatureError
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.policy import PatternSigstoreTrust, PolicyError, lint_policy_set, load_policy_set
from mlprov.signing import (
    KeySigner,
    KeyTrust,
    SigstoreTrust,
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
    sign_manifest,
    verify_bundle,
)
from support.policy_samples import policy_files, policy_with
from support.signing import RELEASE_IDENTITY, RELEASE_ISSUER, REPO_ROOT, SHARED_TESTDATA


def _problems(policy_yaml: str, **extra: bytes) -> list[str]:
    files = policy_files(policy_yaml, extra={k.replace("__", "/"): v for k, v in extra.items()})
    return [str(p) for p in lint_policy_set(files)]


def _load_error(files: dict[str, bytes]) -> PolicyError:
    with pytest.raises(PolicyError) as raised:
        load_policy_set(files)
    return raised.value


TYPO = """\
version: 1
policies:
  - name: prod
    models: ["*"]
    targets: {aliases: [production]}
    require:
      - signatures: {count: 1}
      - metrc: "val/auc >= 0.9"
"""


def test_a_typo_names_the_file_line_and_key() -> None:
    error = _load_error(policy_files(TYPO))
    assert error.exit_code == EXIT_INVALID
    assert isinstance(error, InvalidInputError)
    assert str(error) == "policy.yaml: line 8: policies[0].require[1].metrc: unknown key 'metrc'"
    assert "\n" not in str(error)


def test_lint_reports_every_problem_of_every_file() -> None:
    files = policy_files(TYPO)
    files["other.yaml"] = b"version: 1\npolicies:\n  - name: x\n    modles: ['*']\n"
    problems = [str(p) for p in lint_policy_set(files)]
    assert problems == [
        "other.yaml: line 3: policies[0].models: missing required key 'models'",
        "other.yaml: line 3: policies[0].targets: missing required key 'targets'",
        "other.yaml: line 4: policies[0].modles: unknown key 'modles'",
        "policy.yaml: line 8: policies[0].require[1].metrc: unknown key 'metrc'",
    ]
    error = _load_error(files)
    assert len(error.problems) == 4
    assert str(error).endswith("(and 3 more problems)")


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (
            '- cel: "facts.metrics[ > 1"',
            "policy.yaml: line 7: policies[0].require[0].cel: 'facts.metrics[ > 1' is not a "
            "valid CEL expression: syntax error at column 16",
        ),
        (
            '- metric: "val/auc => 0.9"',
            "policy.yaml: line 7: policies[0].require[0].metric: 'val/auc => 0.9' is not a "
            "metric threshold",
        ),
        (
            "- min_time: {alias: staging, duration: 1 day}",
            "policy.yaml: line 7: policies[0].require[0].min_time.duration: '1 day' is not a "
            "duration",
        ),
        (
            "- signatures: {count: 0}",
            "policy.yaml: line 7: policies[0].require[0].signatures.count: Input should be "
            "greater than or equal to 1",
        ),
        (
            '- signatures: {count: "2"}',
            "policy.yaml: line 7: policies[0].require[0].signatures.count: Input should be a "
            "valid integer",
        ),
        (
            "- signatures: {}\n  metric: 'a >= 1'",
            "policy.yaml: line 7: policies[0].require[0]: a requirement needs exactly one of",
        ),
        (
            "- signatures: {signers: [nobody]}",
            "policy.yaml: line 7: policies[0].require[0].signatures.signers[0]: no trusted "
            "signer is called 'nobody'",
        ),
        (
            "- provenance: {builders: [ci]}",
            "policy.yaml: line 7: policies[0].require[0].provenance.builders[0]: the signer "
            "'ci' does not hold the builder role",
        ),
        (
            "- min_time: {stage: Testing, duration: 1h}",
            "policy.yaml: line 7: policies[0].require[0].min_time.stage: unknown stage 'Testing'",
        ),
    ],
)
def test_bad_requirements_are_refused_where_they_are(requirement: str, expected: str) -> None:
    problems = _problems(policy_with(requirement))
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def _trust_file(signer: str) -> str:
    return "version: 1\ntrust:\n  signers:\n" + textwrap.indent(textwrap.dedent(signer), "    ")


@pytest.mark.parametrize(
    ("signer", "expected"),
    [
        (
            """\
            - name: team
              roles: [approver]
              sigstore: {issuer: https://i.example, subject_regex: "^(alice@example.org$"}
            """,
            "extra.yaml: line 6: trust.signers[0].sigstore.subject_regex: '^(alice@example.org$'"
            " is not a valid regular expression: missing ), unterminated subpattern",
        ),
        (
            """\
            - name: team
              roles: [approver]
              sigstore: {issuer: https://i.example, subject_regex: ".*@example.org"}
            """,
            "extra.yaml: line 6: trust.signers[0].sigstore.subject_regex: the regular "
            "expression '.*@example.org' must be anchored at both ends",
        ),
        (
            """\
            - name: team
              roles: [wizard]
              keys: [{file: keys/ci.pub}]
            """,
            "extra.yaml: line 5: trust.signers[0].roles[0]: Input should be 'model-signer'",
        ),
        (
            """\
            - name: team
              roles: [approver]
              keys: [{file: keys/missing.pub}]
            """,
            "extra.yaml: line 4: trust.signers[0]: the file 'keys/missing.pub' is not in the "
            "policy folder",
        ),
        (
            """\
            - name: team
              roles: [approver]
              keys: [{file: ../secrets/key.pub}]
            """,
            "extra.yaml: line 4: trust.signers[0]: '../secrets/key.pub' must be relative",
        ),
        (
            """\
            - name: team
              roles: [approver]
              keys: [{pem: "not a key"}]
            """,
            "extra.yaml: line 4: trust.signers[0]: ",
        ),
        (
            """\
            - name: team
              roles: [approver]
              keys: [{file: keys/ci.pub}]
              sigstore: {issuer: https://i.example, subject: a@example.org}
            """,
            "extra.yaml: line 4: trust.signers[0]: a signer needs exactly one of keys, "
            "certificate_roots, sigstore; it has keys, sigstore",
        ),
        (
            """\
            - name: b
              roles: [builder]
              keys: [{file: keys/ci.pub}]
            """,
            "extra.yaml: line 4: trust.signers[0]: a builder needs builder_ids",
        ),
        (
            """\
            - name: ci
              roles: [model-signer]
              keys: [{file: keys/ci.pub}]
            """,
            # extra.yaml sorts first, so the shared trust.yaml is the one refused.
            "trust.yaml: line 4: trust.signers[0].name: the signer 'ci' is declared twice "
            "(also in extra.yaml)",
        ),
    ],
)
def test_bad_trust_declarations_are_refused_where_they_are(signer: str, expected: str) -> None:
    files = policy_files(policy_with("- signatures: {count: 1}"))
    files["extra.yaml"] = _trust_file(signer).encode()
    problems = [str(p) for p in lint_policy_set(files)]
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"version: 1\npolicies: [\n", "p2.yaml: line 3: is not valid YAML"),
        (b"version: 1\nversion: 1\n", "p2.yaml: line 2: repeats the key 'version'"),
        (b"version: 2\n", "p2.yaml: line 1: version: Input should be 1"),
        (b"- 1\n", "p2.yaml: line 1: a policy file must be a mapping"),
        (b"version: &v 1\ntrust: *v\n", "p2.yaml: line 2: YAML aliases"),
        (b"\xff\xfe", "p2.yaml: is not UTF-8 text (byte 0)"),
    ],
)
def test_malformed_files_are_one_line_problems(data: bytes, expected: str) -> None:
    files = policy_files(policy_with("- signatures: {count: 1}"))
    files["p2.yaml"] = data
    problems = [str(p) for p in lint_policy_set(files)]
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_an_empty_folder_and_a_duplicate_policy_are_refused() -> None:
    assert [str(p) for p in lint_policy_set({"README.md": b"hi"})] == [
        "(policy folder): no policy file (*.yaml, *.yml) in it"
    ]
    files = policy_files(policy_with("- signatures: {count: 1}"))
    files["again.yml"] = policy_with("- signatures: {count: 2}").encode()
    assert [str(p) for p in lint_policy_set(files)] == [
        "policy.yaml: line 3: policies[0].name: a policy called 'prod' is also in again.yml"
    ]


def test_waiver_and_rollback_ids_must_exist() -> None:
    options = "waivers: {requirements: [nope], max_duration: 1h}\nrollback: {skip: [nada]}"
    problems = _problems(policy_with("- signatures: {count: 1}", options=options))
    assert problems == [
        "policy.yaml: line 8: policies[0].waivers.requirements[0]: the policy has no "
        "requirement with the id 'nope' (it has: signatures)",
        "policy.yaml: line 9: policies[0].rollback.skip[0]: the policy has no requirement "
        "with the id 'nada' (it has: signatures)",
    ]


def test_two_requirements_of_one_kind_get_numbered_ids_unless_named() -> None:
    policy_set = load_policy_set(
        policy_files(policy_with('- metric: "a >= 1"\n- metric: "b >= 1"\n- id: c\n  cel: "true"'))
    )
    (policy,) = policy_set.policies
    assert [r.id for r in policy.requirements] == ["metric-1", "metric-2", "c"]
    problems = _problems(policy_with('- id: x\n  metric: "a >= 1"\n- id: x\n  cel: "true"'))
    assert problems == [
        "policy.yaml: line 7: policies[0].require[0]: two requirements have the id 'x'",
        "policy.yaml: line 9: policies[0].require[1]: two requirements have the id 'x'",
    ]


# -- the digest ---------------------------------------------------------------------------


def test_the_digest_covers_documents_and_referenced_files_in_any_order() -> None:
    files = policy_files(policy_with("- signatures: {count: 1}"))
    files["README.md"] = b"not a policy"
    files["keys/unused.pub"] = b"never read"
    policy_set = load_policy_set(files)
    assert policy_set.digest.startswith("sha256:")
    assert set(policy_set.files) == {"policy.yaml", "trust.yaml"} | {
        n for n in files if n.startswith("keys/") and n != "keys/unused.pub"
    }
    reordered = dict(reversed(list(files.items())))
    assert load_policy_set(reordered).digest == policy_set.digest
    # Ignored files do not count; a changed byte in a used one does.
    without = {k: v for k, v in files.items() if k not in ("README.md", "keys/unused.pub")}
    assert load_policy_set(without).digest == policy_set.digest
    changed = {**files, "policy.yaml": files["policy.yaml"] + b"\n"}
    assert load_policy_set(changed).digest != policy_set.digest
    other_key = {**files, "keys/ci.pub": files["keys/alice-1.pub"]}
    assert load_policy_set(other_key).digest != policy_set.digest
    renamed = {**without}
    renamed["policy2.yaml"] = renamed.pop("policy.yaml")
    assert load_policy_set(renamed).digest != policy_set.digest


def test_the_digest_is_the_documented_encoding() -> None:
    import hashlib

    import rfc8785

    files = policy_files(policy_with("- signatures: {count: 1}"))
    policy_set = load_policy_set(files)
    expected = {
        "format": "mlprov-policy-set/1",
        "files": {
            name: "sha256:" + hashlib.sha256(data).hexdigest()
            for name, data in policy_set.files.items()
        },
    }
    assert policy_set.digest == "sha256:" + hashlib.sha256(rfc8785.dumps(expected)).hexdigest()


# -- trust --------------------------------------------------------------------------------


def test_declared_keys_verify_what_their_private_key_signed() -> None:
    private = generate_private_key_pem()
    public = public_key_pem(load_private_key(private).public_key())
    files = policy_files(policy_with("- signatures: {count: 1}"))
    files["keys/ci.pub"] = public
    trust = load_policy_set(files).trust
    (ci,) = [s for s in trust.signers if s.name == "ci"]
    assert ci.roles == frozenset({"model-signer"})
    assert isinstance(ci.trust, KeyTrust)
    manifest = Manifest.of("sha256", [FileEntry("weights.bin", Digest.of_bytes(b"w"), 1)])
    bundle = sign_manifest(manifest, "m", KeySigner.from_pem(private))
    assert verify_bundle(bundle, ci.trust).signer.subject == ci.trust.hint
    (other,) = [s for s in trust.signers if s.name == "other-signer"]
    with pytest.raises(SignatureError):
        verify_bundle(bundle, other.trust)


def test_trust_declarations_become_signers_by_role() -> None:
    trust = load_policy_set(policy_files(policy_with("- signatures: {count: 1}"))).trust
    assert [s.name for s in trust.for_role("approver")] == [
        "alice",
        "alice",
        "bob",
        "carol",
        "dave",
        "reviewers",
    ]
    (builder,) = trust.for_role("builder")
    assert builder.builder_ids == ("https://ci.example/builder@v1",)
    carol = next(s for s in trust.signers if s.name == "carol")
    assert isinstance(carol.trust, SigstoreTrust)
    reviewers = next(s for s in trust.signers if s.name == "reviewers")
    assert isinstance(reviewers.trust, PatternSigstoreTrust)


def _release_signature() -> bytes:
    path = SHARED_TESTDATA / "oms-releases" / "v1.1.0-sigstore" / "model.sig"
    if not path.is_file():
        pytest.skip(f"shared testdata not found at {path} (a real Sigstore bundle)")
    return path.read_bytes()


def test_a_sigstore_pattern_verifies_a_real_bundle_as_its_exact_identity() -> None:
    signature = _release_signature()
    domain = RELEASE_IDENTITY.partition("@")[2]
    pattern = PatternSigstoreTrust(
        subject_regex=f"^[a-z]+@{domain.replace('.', '[.]')}$", issuer=RELEASE_ISSUER
    )
    verified = verify_bundle(signature, pattern)
    assert verified.signer.subject == RELEASE_IDENTITY
    assert verified.signer.issuer == RELEASE_ISSUER
    issuer_pattern = PatternSigstoreTrust(
        subject=RELEASE_IDENTITY, issuer_regex=r"^https://sigstore\.verify\.ibm\.com/.*$"
    )
    assert verify_bundle(signature, issuer_pattern).signer.subject == RELEASE_IDENTITY


@pytest.mark.parametrize(
    ("subject_regex", "issuer", "says"),
    [
        ("^alice@example[.]org$", RELEASE_ISSUER, "matches identity ~ '^alice@example[.]org$'"),
        # Anchored at both ends: a pattern matching only a part of the SAN does not do.
        ("^stefanb$", RELEASE_ISSUER, "matches identity ~"),
        ("^.*$", "https://accounts.google.com", "issuer"),
    ],
)
def test_a_sigstore_pattern_refuses_other_identities(
    subject_regex: str, issuer: str, says: str
) -> None:
    signature = _release_signature()
    with pytest.raises(SignatureError) as raised:
        verify_bundle(signature, PatternSigstoreTrust(subject_regex=subject_regex, issuer=issuer))
    assert says in str(raised.value)


# -- the shipped examples -----------------------------------------------------------------


def test_the_shipped_policies_load() -> None:
    folder = REPO_ROOT / "policies"
    files = {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    assert lint_policy_set(files) == ()
    policy_set = load_policy_set(files)
    assert [p.name for p in policy_set.policies] == ["production", "research-sandbox", "staging"]
    assert "README.md" not in policy_set.files
    assert "keys/offline-evaluator.pub" in policy_set.files
    kinds = {r.kind for p in policy_set.policies for r in p.requirements}
    assert {"signatures", "approvals", "min_time", "formats", "cel"} <= kinds


def test_docs_policies_examples_load(tmp_path: Path) -> None:
    """Every complete example in docs/policies.md (a ```yaml block with ``version: 1``)
    loads together with the shipped trust."""
    text = (REPO_ROOT / "docs" / "policies.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    complete = [b for b in blocks if b.startswith("version: 1")]
    assert complete
    folder = REPO_ROOT / "policies"
    shipped = {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    for index, block in enumerate(complete):
        files = {**shipped, f"doc-example-{index}.yaml": block.encode()}
        assert [str(p) for p in lint_policy_set(files)] == [], block
