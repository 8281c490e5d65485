"""Formats: DSSE PAE, bounded JSON, deterministic statements, bundles against OMS schemas."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import mlprov.signing as signing
from mlprov.config import Limits
from mlprov.errors import InvalidInputError, MalformedDocumentError
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.signing import (
    CertificateSigner,
    KeySigner,
    build_statement,
    inspect_signature,
    pae,
    parse_statement,
    sign_manifest,
    sign_model,
)
from mlprov.signing._json import json_depth_exceeds, parse_json_object
from support.signing import KeyFiles, Keys, Pki, subprocess_env


def _manifest() -> Manifest:
    return Manifest.of(
        "sha256",
        [
            FileEntry("weights/b.bin", Digest.of_bytes(b"b")),
            FileEntry("a-c", Digest.of_bytes(b"ac")),
            FileEntry("a/b", Digest.of_bytes(b"ab")),
            FileEntry("config.json", Digest.of_bytes(b"{}")),
        ],
    )


def _key_signer(files: KeyFiles) -> KeySigner:
    return KeySigner.from_pem(files.private.read_bytes())


# --- DSSE ---------------------------------------------------------------------------------


def test_pae_matches_the_dsse_spec_vector() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t\u00e9", "\u00e9".encode()) == b"DSSEv1 3 t\xc3\xa9 2 \xc3\xa9"


# --- bounded JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "limit", "expected"),
    [
        pytest.param(b"{}", 1, False, id="flat-object"),
        pytest.param(b'{"a": [1, {"b": []}]}', 4, False, id="exactly-at-limit"),
        pytest.param(b'{"a": [1, {"b": []}]}', 3, True, id="one-over-limit"),
        pytest.param(b'{"a": "[[[[[[[[[["}', 1, False, id="brackets-inside-strings"),
        pytest.param(b'{"a": "\\"[[[["}', 1, False, id="escaped-quote-then-brackets"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, 64, True, id="ten-thousand-deep"),
        pytest.param(b"[[]", 64, None, id="unbalanced"),
    ],
)
def test_depth_scan(document: bytes, limit: int, expected: bool | None) -> None:
    assert json_depth_exceeds(document, limit) is expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(b"", "is empty", id="empty"),
        pytest.param(b"[]", "must be a JSON object", id="not-an-object"),
        pytest.param(b'{"a": 1, "a": 2}', "repeats the key 'a'", id="duplicate-key"),
        pytest.param(b'{"a": NaN}', "not acceptable JSON", id="nan"),
        pytest.param(b'{"a": 1', "not valid JSON", id="truncated"),
        pytest.param(b'{"a": "\xff"}', "not UTF-8", id="not-utf8"),
        pytest.param(b"[" * 100 + b"]" * 100, "nests deeper than 64", id="too-deep"),
        pytest.param(b'{"a": "' + b"x" * 2000 + b'"}', "more than the limit of 1000", id="too-big"),
    ],
)
def test_bounded_parser_refuses(document: bytes, message: str) -> None:
    with pytest.raises(MalformedDocumentError, match=message):
        parse_json_object(document, "doc", Limits(max_document_bytes=1000))


def test_deep_document_is_refused_quickly_with_bounded_memory() -> None:
    document = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    started = time.perf_counter()
    with pytest.raises(MalformedDocumentError, match="nests deeper"):
        parse_json_object(document, "bundle")
    assert time.perf_counter() - started < 0.5


# --- the statement ------------------------------------------------------------------------


def test_statement_is_deterministic_and_shaped_as_oms() -> None:
    first = build_statement(_manifest(), "my-model", ignore_paths=["cache"])
    second = build_statement(
        Manifest.of("sha256", reversed(_manifest().files)), "my-model", ignore_paths=["cache"]
    )
    assert first == second
    statement = json.loads(first)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["subject"] == [
        {"name": "my-model", "digest": {"sha256": _manifest().digest.hex}}
    ]
    # Path order as model_signing sorts (component by component), not string order.
    assert [r["name"] for r in statement["predicate"]["resources"]] == [
        "a/b",
        "a-c",
        "config.json",
        "weights/b.bin",
    ]
    assert statement["predicate"]["serialization"] == {
        "allow_symlinks": False,
        "hash_type": "sha256",
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "cache"],
        "method": "files",
    }
    assert b" " not in first.replace(b"my-model", b"")  # compact separators


_STATEMENT_IN_A_CHILD = """
import hashlib, sys
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.signing import build_statement
m = Manifest.of("sha256", [FileEntry(p, Digest.of_bytes(p.encode())) for p in sys.argv[1:]])
print(hashlib.sha256(build_statement(m, "m", ignore_paths=["z", "y"])).hexdigest())
"""


def test_statement_bytes_are_identical_across_processes() -> None:
    paths = ["b.bin", "a/c", "a-b", "\u00e9t\u00e9.txt"]
    digests = {
        subprocess.run(
            [sys.executable, "-c", _STATEMENT_IN_A_CHILD, *order],
            capture_output=True,
            text=True,
            check=True,
            env=subprocess_env() | {"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed, order in (("1", paths), ("2", list(reversed(paths))))
    }
    manifest = Manifest.of("sha256", [FileEntry(p, Digest.of_bytes(p.encode())) for p in paths])
    local = hashlib.sha256(build_statement(manifest, "m", ignore_paths=["y", "z"])).hexdigest()
    assert digests == {local}


def test_signing_the_same_folder_twice_signs_the_same_statement(model: Path, keys: Keys) -> None:
    signer = _key_signer(keys.p256)
    first = sign_model(model, signer, signature_path=model.parent / "1.sig")
    second = sign_model(model, signer, signature_path=model.parent / "2.sig")
    assert first.statement == second.statement
    assert first.bundle != second.bundle  # ECDSA signatures are randomised
    assert (model.parent / "1.sig").read_bytes() == first.bundle


def test_statement_round_trips(model: Path, keys: Keys) -> None:
    result = sign_model(model, _key_signer(keys.p256), hash_algorithm="blake2b")
    parsed = parse_statement(result.statement)
    assert parsed.manifest.digest == result.manifest.digest
    assert [e.path for e in parsed.manifest] == [e.path for e in result.manifest]
    assert parsed.model_name == "my-model"
    assert parsed.serialization.hash_type == "blake2b"
    assert "model.sig" in parsed.serialization.ignore_paths


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param("/abs", "relative to the model root", id="absolute"),
        pytest.param("a/../../x", "inside the model folder", id="parent"),
        pytest.param("*.bin", "glob characters", id="glob"),
    ],
)
def test_ignore_paths_are_checked_when_signing(bad: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_statement(_manifest(), "m", ignore_paths=[bad])


def _statement(**changes: Any) -> bytes:
    statement: dict[str, Any] = json.loads(build_statement(_manifest(), "m"))
    for dotted, value in changes.items():
        target = statement
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return json.dumps(statement).encode()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(_statement(_type="x"), "_type", id="statement-type"),
        pytest.param(_statement(predicateType="https://x/y"), "predicateType", id="predicate"),
        pytest.param(
            _statement(predicateType="https://model_signing/Digests/v0.1", subject__0__digest={}),
            "no sha256 digest",
            id="v0.2-predicate-without-digest",
        ),
        pytest.param(_statement(subject=[]), "exactly one subject", id="no-subject"),
        pytest.param(
            _statement(subject=[{"name": "a", "digest": {"sha256": "0" * 64}}] * 2),
            "exactly one subject",
            id="two-subjects",
        ),
        pytest.param(
            _statement(subject__0__digest={"sha256": "0" * 64}),
            "does not match its resources",
            id="subject-digest",
        ),
        pytest.param(_statement(predicate__serialization__method="shards"), "shard", id="shards"),
        pytest.param(_statement(predicate__serialization__hash_type="md5"), "hash_type", id="md5"),
        pytest.param(
            _statement(predicate__serialization__allow_symlinks="false"),
            "allow_symlinks",
            id="string-bool",
        ),
        pytest.param(_statement(predicate__resources=[]), "is empty", id="no-resources"),
        pytest.param(
            _statement(predicate__resources__0__algorithm="blake3"),
            "uses 'blake3'",
            id="mixed-algorithms",
        ),
        pytest.param(
            _statement(predicate__resources__0__digest="ABC"),
            "malformed sha256 digest",
            id="bad-digest",
        ),
        pytest.param(_statement(predicate__resources__0__name="../x"), "unsafe path", id="dotdot"),
        pytest.param(_statement(predicate__resources__0__name="/etc/x"), "unsafe path", id="abs"),
        pytest.param(
            _statement(predicate__resources__1__name="a/b"), "appears twice", id="duplicate"
        ),
    ],
)
def test_statement_checks(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedDocumentError, match=message):
        parse_statement(payload)


# --- bundles against the OMS JSON schemas ----------------------------------------------------


def _validators(schema_dir: Path) -> tuple[Any, Any]:

    schemas = {path.name: json.loads(path.read_text()) for path in schema_dir.glob("*.schema.json")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in schemas.values()
    )
    return (
        Draft202012Validator(schemas["bundle.schema.json"], registry=registry),
        Draft202012Validator(schemas["statement.schema.json"], registry=registry),
    )


def _key_bundle(keys: Keys, model: Path) -> bytes:
    return sign_model(model, _key_signer(keys.p384)).bundle


def _certificate_bundle(pki: Pki, model: Path) -> bytes:
    signer = CertificateSigner.from_pem(
        pki.leaf_key.read_bytes(), pki.leaf.read_bytes(), [pki.intermediate.read_bytes()]
    )
    return sign_model(model, signer).bundle


@pytest.mark.parametrize("method", ["key", "certificate"])
def test_bundles_validate_against_the_oms_schemas(
    method: str, schema_dir: Path, keys: Keys, pki: Pki, model: Path
) -> None:
    bundle_validator, statement_validator = _validators(schema_dir)
    data = _key_bundle(keys, model) if method == "key" else _certificate_bundle(pki, model)
    bundle = json.loads(data)
    bundle_validator.validate(bundle)
    statement_validator.validate(json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"])))
    material = bundle["verificationMaterial"]
    assert ("publicKey" in material) == (method == "key")
    assert ("x509CertificateChain" in material) == (method == "certificate")
    assert "certificate" not in material


def test_schema_validation_can_fail(schema_dir: Path, keys: Keys, model: Path) -> None:
    bundle_validator, _ = _validators(schema_dir)
    bundle = json.loads(_key_bundle(keys, model))
    bundle["dsseEnvelope"]["payloadType"] = "text/plain"
    with pytest.raises(ValidationError):
        bundle_validator.validate(bundle)


def test_certificate_bundle_puts_the_leaf_first(pki: Pki, model: Path) -> None:
    bundle = json.loads(_certificate_bundle(pki, model))
    chain = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
    subjects = [
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])).subject.rfc4514_string()
        for c in chain
    ]
    assert subjects == ["CN=model signer", "CN=mlprov test intermediate"]


def test_sign_manifest_signs_without_files(keys: Keys) -> None:
    bundle = sign_manifest(_manifest(), "stored", _key_signer(keys.p256), ignore_paths=["x"])
    inspected = inspect_signature(bundle)
    assert inspected.method == "key"
    assert inspected.statement.manifest == _manifest()
    assert inspected.statement.serialization.ignore_paths[-1] == "x"


# --- OMS spec test vectors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("invalid/empty.bundle.json", "signature bundle is empty"),
        ("invalid/missing-envelope.bundle.json", "has no dsseEnvelope"),
        ("invalid/missing-tlog-entries.bundle.json", "no transparency log entry"),
        ("invalid/missing-verification-material.bundle.json", "has no verificationMaterial"),
        ("invalid-payload/wrong-predicate.bundle.json", "predicateType"),
    ],
)
def test_invalid_spec_vectors_are_refused(testdata: Path, name: str, message: str) -> None:
    data = (testdata / "oms-spec" / "test-vectors" / name).read_bytes()
    with pytest.raises(MalformedDocumentError, match=message) as caught:
        inspect_signature(data)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "method"),
    [("key", "key"), ("certificate", "certificate"), ("sigstore", "sigstore")],
)
def test_valid_spec_vectors_parse(testdata: Path, name: str, method: str) -> None:
    data = (testdata / "oms-spec" / "test-vectors" / "valid" / f"{name}.bundle.json").read_bytes()
    inspected = inspect_signature(data)
    assert inspected.method == method
    assert {e.path for e in inspected.statement.manifest} == {"signme-1", "signme-2"}


# --- the public surface ----------------------------------------------------------------------


def test_public_api_is_pinned() -> None:
    assert sorted(signing.__all__) == sorted(
        [
            "BUNDLE_MEDIA_TYPE",
            "DEFAULT_SIGNATURE_NAME",
            "PREDICATE_TYPE",
            "CarriedSignature",
            "CertificateSigner",
            "CertificateTrust",
            "Check",
            "InspectedAttestation",
            "InspectedSignature",
            "KeySigner",
            "KeyTrust",
            "ModelStatement",
            "Serialization",
            "SignResult",
            "SignedBundle",
            "Signer",
            "SignerIdentity",
            "SigstoreSigner",
            "SigstoreTrust",
            "Trust",
            "VerificationReport",
            "VerifiedAttestation",
            "VerifiedSignature",
            "build_statement",
            "default_signature_path",
            "generate_private_key_pem",
            "inspect_attestation",
            "inspect_signature",
            "key_hint",
            "load_private_key",
            "load_public_key",
            "match_manifest",
            "pae",
            "parse_bundle",
            "parse_statement",
            "public_key_pem",
            "read_signature_file",
            "relative_ignore_paths",
            "sign_manifest",
            "sign_model",
            "verify_attestation",
            "verify_bundle",
            "verify_bundle_report",
            "verify_model",
            "verify_model_or_raise",
            "write_signature_file",
        ]
    )
    for name in signing.__all__:
        assert getattr(signing, name) is not None
