"""Verification: release signatures verify offline; every kind of tampering exits 1.

Each negative case asserts the exit code, a one-line message naming what is wrong, and
that the model folder was left unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from mlprov.errors import (
    DigestMismatchError,
    MalformedSignatureError,
    SignatureError,
    VerificationError,
)
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.signing import (
    CertificateSigner,
    CertificateTrust,
    KeySigner,
    KeyTrust,
    SigstoreTrust,
    build_statement,
    match_manifest,
    read_signature_file,
    sign_model,
    verify_bundle,
    verify_model,
    verify_model_or_raise,
)
from mlprov.signing._keys import load_private_key
from mlprov.signing._x509 import load_certificates_pem
from support.signing import (
    RELEASE_IDENTITY,
    RELEASE_ISSUER,
    CliResult,
    Keys,
    Pki,
    make_model,
    one_error_line,
)

Cli = Callable[..., CliResult]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _key_signer(path: Path) -> KeySigner:
    return KeySigner.from_pem(path.read_bytes())


# --- signatures made by every model_signing release ---------------------------------------

RELEASES = [
    ("v1.0.0-elliptic-key", "signme-1", "key"),
    ("v1.1.0-elliptic-key", "", "key"),
    ("v1.0.0-certificate", "", "certificate"),
    ("v1.1.0-certificate", "", "certificate"),
    ("v1.0.0-sigstore", "", "sigstore"),
    ("v1.1.0-sigstore", "", "sigstore"),
]


def _trust_args(testdata: Path, kind: str) -> list[str]:
    keys = testdata / "oms-releases" / "keys"
    if kind == "key":
        return ["--key", str(keys / "signing-key-pub.pem")]
    if kind == "certificate":
        return ["--certificate-chain", str(keys / "ca-cert.pem")]
    return ["--identity", RELEASE_IDENTITY, "--issuer", RELEASE_ISSUER]


@pytest.mark.parametrize(("folder", "model", "kind"), RELEASES)
def test_release_signatures_verify_offline(
    testdata: Path, cli: Cli, folder: str, model: str, kind: str
) -> None:
    base = testdata / "oms-releases" / folder
    target = base / model if model else base
    result = cli("verify", target, "--signature", base / "model.sig", *_trust_args(testdata, kind))
    assert result.code == 0, result.err
    assert result.out.startswith(f"verified {target}: ")


def _release_copy(testdata: Path, folder: str, tmp_path: Path) -> Path:
    copy = tmp_path / folder
    shutil.copytree(testdata / "oms-releases" / folder, copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


def _flip_first_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


RELEASE_TAMPERING: list[tuple[str, Callable[[Path], None], str]] = [
    ("byte-flipped", lambda m: _flip_first_byte(m / "signme-1"), "'signme-1' does not match"),
    ("file-added", lambda m: (m / "new.bin").write_bytes(b"x"), "'new.bin' is in the model"),
    ("file-removed", lambda m: (m / "signme-2").unlink(), "'signme-2' is signed but missing"),
]


@pytest.mark.parametrize(("folder", "model", "kind"), [r for r in RELEASES if not r[1]])
@pytest.mark.parametrize(("case", "tamper", "message"), RELEASE_TAMPERING)
def test_release_signatures_refuse_tampered_models(
    testdata: Path,
    tmp_path: Path,
    cli: Cli,
    folder: str,
    model: str,
    kind: str,
    case: str,
    tamper: Callable[[Path], None],
    message: str,
) -> None:
    copy = _release_copy(testdata, folder, tmp_path)
    tamper(copy)
    result = cli("verify", copy, "--signature", copy / "model.sig", *_trust_args(testdata, kind))
    assert result.code == 1, (case, result.err)
    assert message in one_error_line(result.err)


def test_single_file_release_refuses_a_changed_file(
    testdata: Path, tmp_path: Path, cli: Cli
) -> None:
    copy = _release_copy(testdata, "v1.0.0-elliptic-key", tmp_path)
    _flip_first_byte(copy / "signme-1")
    result = cli("verify", copy / "signme-1", "--signature", copy / "model.sig",
                 *_trust_args(testdata, "key"))  # fmt: skip
    assert result.code == 1
    assert "'.' does not match its signed digest" in one_error_line(result.err)


@pytest.mark.parametrize(
    ("folder", "args", "message"),
    [
        pytest.param("v1.1.0-elliptic-key", ["--key", "{p256}"], "wrong key", id="key-wrong-key"),
        pytest.param(
            "v1.1.0-certificate",
            ["--certificate-chain", "{root}"],
            "does not chain",
            id="certificate-other-root",
        ),
        pytest.param(
            "v1.1.0-sigstore",
            ["--identity", "mallory@example.com", "--issuer", RELEASE_ISSUER],
            "Sigstore verification failed",
            id="sigstore-wrong-identity",
        ),
        pytest.param(
            "v1.1.0-sigstore",
            ["--identity", RELEASE_IDENTITY, "--issuer", "https://accounts.google.com"],
            "Sigstore verification failed",
            id="sigstore-wrong-issuer",
        ),
        pytest.param(
            "v1.0.0-sigstore",
            ["--identity", RELEASE_IDENTITY, "--issuer", "https://github.com/login/oauth"],
            "Sigstore verification failed",
            id="sigstore-v1.0-wrong-issuer",
        ),
    ],
)
def test_release_signatures_refuse_the_wrong_trust(
    testdata: Path, keys: Keys, pki: Pki, cli: Cli, folder: str, args: list[str], message: str
) -> None:
    base = testdata / "oms-releases" / folder
    filled = [a.format(p256=keys.p256.public, root=pki.root) for a in args]
    result = cli("verify", base, "--signature", base / "model.sig", *filled)
    assert result.code == 1
    assert message in one_error_line(result.err)


@pytest.mark.parametrize(
    ("folder", "args", "message"),
    [
        # model_signing 1.0 embedded the public key as raw bytes (no hint): the given key
        # must still be the one that verifies, not the one the bundle carries.
        pytest.param("v1.0.0-elliptic-key", ["--key", "{p256}"], "wrong key", id="raw-key"),
        pytest.param("v1.0.0-elliptic-key", ["--key", "{p384}"], "wrong key", id="raw-key-p384"),
        pytest.param(
            "v1.0.0-certificate",
            ["--certificate-chain", "{root}"],
            "does not chain",
            id="v1.0-certificate-other-root",
        ),
    ],
)
def test_v1_0_release_signatures_refuse_the_wrong_trust(
    testdata: Path, keys: Keys, pki: Pki, cli: Cli, folder: str, args: list[str], message: str
) -> None:
    base = testdata / "oms-releases" / folder
    target = base / "signme-1" if folder.endswith("elliptic-key") else base
    filled = [a.format(p256=keys.p256.public, p384=keys.p384.public, root=pki.root) for a in args]
    result = cli("verify", target, "--signature", base / "model.sig", *filled)
    assert result.code == 1
    assert message in one_error_line(result.err)


def _swap_sigstore_certificate(testdata: Path) -> Callable[[dict[str, Any]], None]:
    other = json.loads((testdata / "oms-releases" / "v1.0.0-sigstore" / "model.sig").read_text())

    def swap(bundle: dict[str, Any]) -> None:
        bundle["verificationMaterial"]["certificate"] = other["verificationMaterial"]["certificate"]

    return swap


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("payload", "DSSE: invalid signature"),
        ("signature", "DSSE: invalid signature"),
        ("certificate", "Sigstore verification failed"),
        ("log-entry", "Sigstore bundle does not parse"),
    ],
)
def test_tampered_sigstore_bundles_are_refused(
    testdata: Path, tmp_path: Path, cli: Cli, case: str, message: str
) -> None:
    copy = _release_copy(testdata, "v1.1.0-sigstore", tmp_path)
    edits: dict[str, Callable[[dict[str, Any]], None]] = {
        "payload": _edit_statement(_retarget_digest),
        "signature": _flip_signature,
        "certificate": _swap_sigstore_certificate(testdata),
        "log-entry": lambda b: b["verificationMaterial"]["tlogEntries"][0].pop("inclusionProof"),
    }
    _edit_bundle(copy / "model.sig", edits[case])
    result = cli("verify", copy, *_trust_args(testdata, "sigstore"))
    assert result.code == 1
    assert message in one_error_line(result.err)


@pytest.mark.parametrize(
    "vector",
    [
        "invalid/empty.bundle.json",
        "invalid/missing-envelope.bundle.json",
        "invalid/missing-tlog-entries.bundle.json",
        "invalid/missing-verification-material.bundle.json",
        "invalid-payload/wrong-predicate.bundle.json",
    ],
)
def test_invalid_spec_vectors_fail_verification_with_exit_1(
    testdata: Path, cli: Cli, vector: str
) -> None:
    base = testdata / "oms-releases" / "v1.1.0-elliptic-key"
    signature = testdata / "oms-spec" / "test-vectors" / vector
    result = cli("verify", base, "--signature", signature, *_trust_args(testdata, "key"))
    assert result.code == 1
    one_error_line(result.err)


def test_sigstore_verification_needs_no_network(testdata: Path) -> None:
    # Nothing here may refresh the trusted root: the bundle verifies from what is shipped.
    base = testdata / "oms-releases" / "v1.1.0-sigstore"
    verified = verify_model_or_raise(
        base,
        (base / "model.sig").read_bytes(),
        SigstoreTrust(RELEASE_IDENTITY, RELEASE_ISSUER),
        signature_path=base / "model.sig",
    )
    assert str(verified.signer) == f"sigstore:{RELEASE_IDENTITY} ({RELEASE_ISSUER})"


def test_spec_vector_signature_verifies_against_the_release_model(testdata: Path) -> None:
    vector = testdata / "oms-spec" / "test-vectors" / "valid" / "key.bundle.json"
    base = testdata / "oms-releases" / "v1.1.0-elliptic-key"
    key = (testdata / "oms-releases" / "keys" / "signing-key-pub.pem").read_bytes()
    report = verify_model(
        base, vector.read_bytes(), KeyTrust(key), signature_path=base / "model.sig"
    )
    assert report.passed, report.error


# --- tampering with our own signatures ------------------------------------------------------


def _edit_bundle(signature: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    bundle = json.loads(signature.read_bytes())
    edit(bundle)
    signature.write_text(json.dumps(bundle))


def _edit_statement(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        envelope = bundle["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        edit(statement)
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    return change


def _flip_signature(bundle: dict[str, Any]) -> None:
    signature = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    signature[10] ^= 0xFF
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(signature).decode()


def _retarget_digest(statement: dict[str, Any]) -> None:
    statement["predicate"]["resources"][0]["digest"] = "0" * 64


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = bundle
        for part in parents:
            target = target[part]
        target[last] = value

    return change


def _rename(model: Path) -> None:
    (model / "config.json").rename(model / "config.yaml")


def _huge(signature: Path) -> None:
    with signature.open("wb") as stream:
        stream.write(b'{"mediaType": "')
        stream.write(b"x" * (50 * 1024 * 1024))
        stream.write(b'"}')


def _deep(signature: Path) -> None:
    signature.write_bytes(b'{"a":' * 10_000 + b"1" + b"}" * 10_000)


_HINT = "verificationMaterial.publicKey.hint"

TAMPERING: list[Any] = [
    pytest.param(lambda m, s: _flip_first_byte(m / "weights" / "part-0.bin"),
                 "'weights/part-0.bin' does not match its signed digest: expected sha256",
                 id="byte-flipped"),
    pytest.param(lambda m, s: (m / "weights" / "extra.bin").write_bytes(b"!"),
                 "'weights/extra.bin' is in the model but not signed", id="file-added"),
    pytest.param(lambda m, s: (m / "config.json").unlink(),
                 "'config.json' is signed but missing", id="file-removed"),
    pytest.param(lambda m, s: _rename(m),
                 "'config.json' is signed but missing, and 'config.yaml' is present",
                 id="file-renamed"),
    pytest.param(lambda m, s: _edit_bundle(s, _edit_statement(_retarget_digest)),
                 "DSSE signature does not verify", id="payload-edited"),
    pytest.param(lambda m, s: _edit_bundle(s, _set("dsseEnvelope.payload", "!not base64!")),
                 "dsseEnvelope.payload is not base64", id="payload-not-base64"),
    pytest.param(lambda m, s: _edit_bundle(s, _set("dsseEnvelope.payloadType", "text/plain")),
                 "payloadType 'text/plain'", id="payload-type-edited"),
    pytest.param(lambda m, s: _edit_bundle(s, _flip_signature),
                 "DSSE signature does not verify", id="signature-edited"),
    pytest.param(lambda m, s: _edit_bundle(s, _set("dsseEnvelope.signatures", [])),
                 "dsseEnvelope has no signatures", id="no-signatures"),
    pytest.param(lambda m, s: _edit_bundle(s, _set(_HINT, "ab" * 32)),
                 "wrong key", id="material-hint-edited"),
    pytest.param(lambda m, s: _edit_bundle(s, _set("mediaType", "application/json")),
                 "mediaType 'application/json'", id="media-type-edited"),
    pytest.param(lambda m, s: s.write_bytes(s.read_bytes()[: len(s.read_bytes()) // 2]),
                 "signature bundle is not valid JSON", id="truncated"),
    pytest.param(lambda m, s: _huge(s), "more than the limit", id="50MB-bundle"),
    pytest.param(lambda m, s: _deep(s), "nests deeper than 64 levels", id="10000-deep-bundle"),
]  # fmt: skip


@pytest.mark.parametrize(("tamper", "message"), TAMPERING)
def test_tampering_is_refused_with_exit_1(
    model: Path, keys: Keys, cli: Cli, tamper: Callable[[Path, Path], None], message: str
) -> None:
    signature = model.parent / "model.sig"
    sign_model(model, _key_signer(keys.p256.private), signature_path=signature)
    assert cli("verify", model, "--signature", signature, "--key", keys.p256.public).code == 0
    tamper(model, signature)
    before = _tree(model)
    started = time.perf_counter()
    result = cli("verify", model, "--signature", signature, "--key", keys.p256.public)
    elapsed = time.perf_counter() - started
    assert result.code == 1, result.err
    assert message in one_error_line(result.err)
    assert _tree(model) == before
    assert elapsed < 5, "refusals must be quick"


def test_digest_mismatch_names_the_file_and_both_digests(model: Path, keys: Keys) -> None:
    result = sign_model(model, _key_signer(keys.p256.private))
    target = model / "weights" / "part-1.bin"
    expected = hashlib.sha256(target.read_bytes()).hexdigest()
    target.write_bytes(b"changed")
    actual = hashlib.sha256(b"changed").hexdigest()
    report = verify_model(model, result.bundle, KeyTrust(keys.p256.public.read_bytes()),
                          signature_path=result.signature_path)  # fmt: skip
    assert isinstance(report.error, DigestMismatchError)
    assert report.error.message == (
        f"file 'weights/part-1.bin' does not match its signed digest: "
        f"expected sha256 {expected}, got {actual}"
    )
    assert [(c.name, c.passed) for c in report.checks] == [
        ("bundle", True),
        ("trust", True),
        ("key", True),
        ("signature", True),
        ("statement", True),
        ("files", False),
    ]


def test_huge_bundle_is_refused_without_reading_it(tmp_path: Path) -> None:
    signature = tmp_path / "huge.sig"
    _huge(signature)
    started = time.perf_counter()
    with pytest.raises(MalformedSignatureError, match="refused without reading it"):
        read_signature_file(signature)
    assert time.perf_counter() - started < 0.1


def test_a_fifo_as_signature_does_not_hang(
    tmp_path: Path, model: Path, keys: Keys, cli: Cli
) -> None:
    fifo = tmp_path / "sig.fifo"
    os.mkfifo(fifo)
    result = cli("verify", model, "--signature", fifo, "--key", keys.p256.public)
    assert result.code == 2
    assert "is not a regular file" in one_error_line(result.err)


def test_huge_bundle_bytes_are_refused_before_parsing(model: Path, keys: Keys) -> None:
    data = b'{"mediaType": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    started = time.perf_counter()
    report = verify_model(model, data, KeyTrust(keys.p256.public.read_bytes()))
    assert time.perf_counter() - started < 0.5
    assert isinstance(report.error, MalformedSignatureError)
    assert report.error.exit_code == 1
    assert "refused without parsing" in report.error.message


# --- the wrong trust -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trust", "message"),
    [
        pytest.param("p256_other", "wrong key", id="another-p256-key"),
        pytest.param("p384", "wrong key", id="p384-key"),
        pytest.param("rsa", "is RSA 2048; OMS signatures use ECDSA", id="rsa-key"),
        pytest.param("ed25519", "is Ed25519; OMS signatures use ECDSA", id="ed25519-key"),
    ],
)
def test_a_key_of_another_kind_is_refused(
    model: Path, keys: Keys, cli: Cli, trust: str, message: str
) -> None:
    sign_model(model, _key_signer(keys.p256.private))
    result = cli("verify", model, "--key", getattr(keys, trust).public)
    assert result.code == 1
    assert message in one_error_line(result.err)


def test_p384_signatures_verify_and_p256_keys_are_refused(
    model: Path, keys: Keys, cli: Cli
) -> None:
    sign_model(model, _key_signer(keys.p384.private))
    assert cli("verify", model, "--key", keys.p384.public).code == 0
    result = cli("verify", model, "--key", keys.p256.public)
    assert result.code == 1
    assert "wrong key" in one_error_line(result.err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--certificate-chain", "{root}"], "made with a key", id="certificate-trust"),
        pytest.param(["--identity", "a@b.c", "--issuer", "https://x"], "made with a key",
                     id="sigstore-trust"),
    ],
)  # fmt: skip
def test_a_trust_for_another_method_is_refused(
    model: Path, keys: Keys, pki: Pki, cli: Cli, args: list[str], message: str
) -> None:
    sign_model(model, _key_signer(keys.p256.private))
    result = cli("verify", model, *[a.format(root=pki.root) for a in args])
    assert result.code == 1
    assert message in one_error_line(result.err)


# --- certificates ---------------------------------------------------------------------------


def _certificate_signer(key: Path, leaf: Path, *chain: Path, now: datetime | None = None) -> Any:
    return CertificateSigner(
        load_private_key(key.read_bytes()),
        load_certificates_pem(leaf.read_bytes(), "leaf")[0],
        [c for path in chain for c in load_certificates_pem(path.read_bytes(), "chain")],
        now=now,
    )


def test_certificate_signature_verifies_to_the_root(model: Path, pki: Pki, cli: Cli) -> None:
    sign_model(model, _certificate_signer(pki.leaf_key, pki.leaf, pki.intermediate))
    result = cli("verify", model, "--certificate-chain", pki.root, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["verified"] is True
    assert report["signer"]["display"] == (
        "certificate:CN=model signer (CN=mlprov test intermediate)"
    )
    assert [c["name"] for c in report["checks"]] == [
        "bundle", "trust", "certificate-chain", "certificate-validity",
        "certificate-usage", "signature", "statement", "files",
    ]  # fmt: skip


def test_trusting_the_intermediate_is_enough(model: Path, pki: Pki, cli: Cli) -> None:
    sign_model(model, _certificate_signer(pki.leaf_key, pki.leaf))
    assert cli("verify", model, "--certificate-chain", pki.intermediate).code == 0
    # Without the intermediate in the bundle, the root alone cannot be reached.
    result = cli("verify", model, "--certificate-chain", pki.root)
    assert result.code == 1
    assert "does not chain" in one_error_line(result.err)


def test_certificate_from_another_root_is_refused(model: Path, pki: Pki, cli: Cli) -> None:
    sign_model(model, _certificate_signer(pki.foreign_key, pki.foreign_leaf, pki.foreign_root))
    assert cli("verify", model, "--certificate-chain", pki.foreign_root).code == 0
    result = cli("verify", model, "--certificate-chain", pki.root)
    assert result.code == 1
    assert "'CN=model signer'" in one_error_line(result.err)
    assert "does not chain to any of the 1 trusted certificate(s)" in result.err


def test_an_impostor_chain_with_our_names_is_refused(model: Path, pki: Pki, cli: Cli) -> None:
    signer = _certificate_signer(pki.impostor_key, pki.impostor_leaf, pki.impostor_intermediate)
    sign_model(model, signer)
    result = cli("verify", model, "--certificate-chain", pki.root)
    assert result.code == 1
    assert "does not chain" in one_error_line(result.err)


def test_our_certificate_is_refused_by_a_foreign_root(model: Path, pki: Pki, cli: Cli) -> None:
    sign_model(model, _certificate_signer(pki.leaf_key, pki.leaf, pki.intermediate))
    result = cli("verify", model, "--certificate-chain", pki.foreign_root)
    assert result.code == 1
    assert "does not chain" in one_error_line(result.err)


def test_expired_certificate_is_refused(model: Path, pki: Pki, cli: Cli) -> None:
    signer = _certificate_signer(
        pki.expired_key, pki.expired_leaf, pki.intermediate, now=pki.expired_signing_time
    )
    sign_model(model, signer)
    result = cli("verify", model, "--certificate-chain", pki.root)
    assert result.code == 1
    line = one_error_line(result.err)
    assert "certificate 'CN=expired signer' expired on" in line
    # ... although it verified while the certificate was valid.
    report = verify_model(
        model,
        (model / "model.sig").read_bytes(),
        CertificateTrust([pki.root.read_bytes()]),
        signature_path=model / "model.sig",
        now=pki.expired_signing_time,
    )
    assert report.passed, report.error


def test_signing_with_an_expired_certificate_is_refused(model: Path, pki: Pki, cli: Cli) -> None:
    result = cli("sign", model, "--key", pki.expired_key, "--certificate", pki.expired_leaf)
    assert result.code == 2
    assert "expired on" in one_error_line(result.err)
    assert not (model / "model.sig").exists()


def test_swapped_certificate_material_is_refused(model: Path, pki: Pki, cli: Cli) -> None:
    sign_model(model, _certificate_signer(pki.leaf_key, pki.leaf, pki.intermediate))
    foreign = _certificate_signer(pki.foreign_key, pki.foreign_leaf, pki.foreign_root)
    foreign_bundle = json.loads(sign_model(model, foreign, write=False).bundle)

    def swap(bundle: dict[str, Any]) -> None:
        bundle["verificationMaterial"] = foreign_bundle["verificationMaterial"]

    _edit_bundle(model / "model.sig", swap)
    result = cli("verify", model, "--certificate-chain", pki.root, "--certificate-chain",
                 pki.foreign_root)  # fmt: skip
    assert result.code == 1
    assert "DSSE signature does not verify" in one_error_line(result.err)


# --- crafted statements, validly signed -----------------------------------------------------


def _crafted_statement(names: list[str]) -> bytes:
    digests = [Digest.of_bytes(name.encode()) for name in names]
    root = hashlib.sha256(b"".join(d.raw for d in digests)).hexdigest()
    statement = json.loads(
        build_statement(Manifest.of("sha256", [FileEntry("a", digests[0])]), "m")
    )
    statement["subject"][0]["digest"]["sha256"] = root
    statement["predicate"]["resources"] = [
        {"name": name, "algorithm": "sha256", "digest": d.hex}
        for name, d in zip(names, digests, strict=True)
    ]
    return json.dumps(statement).encode()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        pytest.param(["../x"], "unsafe path '../x' in manifest", id="parent-traversal"),
        pytest.param(["ok", "a/../../x"], "unsafe path 'a/../../x'", id="nested-traversal"),
        pytest.param(["/etc/passwd"], "unsafe path '/etc/passwd'", id="absolute"),
        pytest.param(["config.json", "config.json"], "'config.json' appears twice", id="twice"),
    ],
)
def test_hostile_manifest_paths_are_refused_after_the_signature_verifies(
    model: Path, keys: Keys, cli: Cli, names: list[str], message: str
) -> None:
    signed = _key_signer(keys.p256.private).sign(_crafted_statement(names))
    signature = model.parent / "crafted.sig"
    signature.write_bytes(signed.bundle)
    before = _tree(model)
    result = cli("verify", model, "--signature", signature, "--key", keys.p256.public)
    assert result.code == 1
    assert message in one_error_line(result.err)
    assert _tree(model) == before
    report = verify_model(model, signed.bundle, KeyTrust(keys.p256.public.read_bytes()))
    assert [(c.name, c.passed) for c in report.checks][-2:] == [
        ("signature", True),
        ("statement", False),
    ]


# --- the library's raising twins ------------------------------------------------------------


def test_verify_bundle_checks_a_signature_without_files(model: Path, keys: Keys) -> None:
    result = sign_model(model, _key_signer(keys.p256.private))
    verified = verify_bundle(result.bundle, KeyTrust(keys.p256.public.read_bytes()))
    assert verified.manifest == Manifest.of("sha256", [
        FileEntry(e.path, e.digest) for e in result.manifest
    ])  # fmt: skip
    assert verified.model_name == "my-model"
    match_manifest(verified.manifest, result.manifest)
    changed = Manifest.of("sha256", [*result.manifest.files[1:]])
    with pytest.raises(VerificationError, match="signed but missing"):
        match_manifest(verified.manifest, changed)
    with pytest.raises(SignatureError, match="wrong key"):
        verify_bundle(result.bundle, KeyTrust(keys.p256_other.public.read_bytes()))


def test_verify_model_or_raise_returns_the_signer(model: Path, keys: Keys) -> None:
    result = sign_model(model, _key_signer(keys.p256.private), hash_algorithm="blake3")
    verified = verify_model_or_raise(
        model, result.bundle, KeyTrust(keys.p256.public.read_bytes()),
        signature_path=result.signature_path, now=datetime.now(timezone.utc),
    )  # fmt: skip
    assert verified.signer == result.signer
    assert verified.serialization.hash_type == "blake3"


def test_ignored_paths_are_signed_and_honoured(tmp_path: Path, keys: Keys, cli: Cli) -> None:
    model = make_model(tmp_path / "m", {"w.bin": b"w", "cache/tmp": b"1", ".git/HEAD": b"ref"})
    assert cli("sign", model, "--key", keys.p256.private, "--ignore-paths", "cache").code == 0
    (model / "cache" / "tmp").write_bytes(b"changed")
    (model / "cache" / "new").write_bytes(b"new")
    (model / ".git" / "HEAD").write_bytes(b"other")
    assert cli("verify", model, "--key", keys.p256.public).code == 0
    (model / "cache2").write_bytes(b"not ignored: whole components only")
    result = cli("verify", model, "--key", keys.p256.public)
    assert result.code == 1
    assert "'cache2' is in the model but not signed" in one_error_line(result.err)
