"""Pre-1.0 model_signing signatures, and the X.509 chain check.

model_signing 0.2 signed ``DSSEV1 <n> <type> <n> b'<payload repr>'`` (its PAE put the
payload bytes into a text string) over a ``Digests/v0.1`` statement, and, for
certificates, always with SHA-256. No such signature is in the shared testdata, so these
tests make them the way that signer did (model-transparency v0.2.0,
``signature/encoding.py`` and ``signature/key.py``) and check that mlprov accepts
exactly what the reference verifier (model_signing 1.1, run here too) accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlprov.errors import SignatureError
from mlprov.signing import (
    CertificateSigner,
    CertificateTrust,
    KeySigner,
    sign_model,
    verify_model,
)
from mlprov.signing._dsse import pae
from mlprov.signing._x509 import load_certificates_pem
from support.signing import CliResult, make_model, one_error_line

Cli = Callable[..., CliResult]
IN_TOTO = "application/vnd.in-toto+json"


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _v02_statement(model: Path) -> bytes:
    """A Digests/v0.1 statement as model_signing 0.2 wrote it: one subject per file."""
    subjects = [
        {
            "name": path.relative_to(model).as_posix(),
            "digest": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
            "annotations": {"actual_hash_algorithm": "file-sha256"},
        }
        for path in sorted(model.rglob("*"))
        if path.is_file() and path.name != "model.sig"
    ]
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://model_signing/Digests/v0.1",
        "predicate": {"unused": "Unused, just passed due to API requirements"},
    }
    return json.dumps(statement, indent=2).encode()


def _v02_message(payload: bytes, prefix: str = "DSSEV1") -> bytes:
    # model_signing 0.2's encoder: the payload bytes formatted into a str, then encoded.
    return f"{prefix} {len(IN_TOTO)} {IN_TOTO} {len(payload)} {payload}".encode()


def _bundle(material: dict[str, Any], payload: bytes, signature: bytes) -> bytes:
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": base64.b64encode(payload).decode(),
                "payloadType": IN_TOTO,
                "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": None}],
            },
        }
    ).encode()


def _chain_material(*certificates: x509.Certificate) -> dict[str, Any]:
    return {
        "x509CertificateChain": {
            "certificates": [
                {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
                for c in certificates
            ]
        }
    }


def _key_material(private: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"publicKey": {"rawBytes": base64.b64encode(pem).decode(), "keyDetails": 5}}


@dataclass(frozen=True)
class SigningPki:
    """A root, and P-256 and P-384 code-signing leaves issued by it (PEM files)."""

    root: Path
    root_cert: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    leaves: dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    extra: tuple[tuple[x509.ExtensionType, bool], ...] = (),
) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def signing_pki(tmp_path_factory: pytest.TempPathFactory) -> SigningPki:
    folder = tmp_path_factory.mktemp("compat-pki")
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue("compat root", root_key, "compat root", root_key, ca=True)
    leaves = {}
    for curve_name, curve in (("p256", ec.SECP256R1()), ("p384", ec.SECP384R1())):
        key = ec.generate_private_key(curve)
        leaves[curve_name] = (
            _issue(f"signer {curve_name}", key, "compat root", root_key, ca=False),
            key,
        )
    path = folder / "root.pem"
    path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return SigningPki(path, root, root_key, leaves)


def _reference_verifies(model: Path, bundle: Path, **trust: Path) -> bool:
    """Whether model_signing 1.1 (the reference verifier) accepts the signature."""
    verifying = pytest.importorskip("model_signing.verifying")
    config = verifying.Config()
    if "key" in trust:
        config = config.use_elliptic_key_verifier(public_key=trust["key"])
    else:
        config = config.use_certificate_verifier(certificate_chain=[trust["root"]])
    try:
        config.verify(model, bundle)
    except Exception:
        return False
    return True


def _write_signature(model: Path, bundle: bytes) -> Path:
    path = model.parent / f"{model.name}.v02.sig"
    path.write_bytes(bundle)
    return path


# (curve of the certificate, hash the pre-1.0 signer used, PAE prefix, accepted?)
CERTIFICATE_CASES = [
    pytest.param("p256", "sha256", "DSSEV1", True, id="v0.2-p256-sha256"),
    pytest.param("p384", "sha256", "DSSEV1", True, id="v0.2-p384-sha256-hardcoded"),
    pytest.param("p384", "sha384", "DSSEV1", False, id="p384-curve-hash-refused"),
    pytest.param("p256", "sha256", "DSSEv1", False, id="lower-case-v-refused"),
    pytest.param("p256", "sha256", "DSSEV2", False, id="other-prefix-refused"),
]


@pytest.mark.parametrize(("curve", "digest", "prefix", "accepted"), CERTIFICATE_CASES)
def test_pre_1_0_certificate_signatures_are_accepted_exactly_as_the_reference_does(
    curve: str,
    digest: str,
    prefix: str,
    accepted: bool,
    signing_pki: SigningPki,
    tmp_path: Path,
    cli: Cli,
) -> None:
    model = make_model(tmp_path / "model")
    leaf, key = signing_pki.leaves[curve]
    payload = _v02_statement(model)
    algorithm = hashes.SHA256() if digest == "sha256" else hashes.SHA384()
    signature = key.sign(_v02_message(payload, prefix), ec.ECDSA(algorithm))
    sig_path = _write_signature(model, _bundle(_chain_material(leaf), payload, signature))
    before = _tree(model)

    result = cli("verify", model, "--signature", sig_path, "--certificate-chain", signing_pki.root)

    assert _reference_verifies(model, sig_path, root=signing_pki.root) is accepted
    if accepted:
        assert result.code == 0, result.err
        assert "3 files match" in result.out
    else:
        assert result.code == 1
        assert "DSSE signature does not verify" in one_error_line(result.err)
    assert _tree(model) == before


@pytest.mark.parametrize(
    ("curve", "digest", "accepted"),
    [
        pytest.param("p256", "sha256", True, id="p256-sha256"),
        pytest.param("p384", "sha384", True, id="p384-curve-hash"),
        pytest.param("p384", "sha256", False, id="p384-sha256-refused"),
    ],
)
def test_pre_1_0_key_signatures_use_the_curve_hash(
    curve: str, digest: str, accepted: bool, tmp_path: Path, cli: Cli
) -> None:
    model = make_model(tmp_path / "model")
    key = ec.generate_private_key(ec.SECP256R1() if curve == "p256" else ec.SECP384R1())
    public = tmp_path / "key.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    payload = _v02_statement(model)
    algorithm = hashes.SHA256() if digest == "sha256" else hashes.SHA384()
    signature = key.sign(_v02_message(payload), ec.ECDSA(algorithm))
    sig_path = _write_signature(model, _bundle(_key_material(key), payload, signature))

    result = cli("verify", model, "--signature", sig_path, "--key", public)

    assert _reference_verifies(model, sig_path, key=public) is accepted
    assert result.code == (0 if accepted else 1), result.err


def test_a_pre_1_0_signature_still_fails_on_a_changed_or_added_file(
    signing_pki: SigningPki, tmp_path: Path, cli: Cli
) -> None:
    model = make_model(tmp_path / "model")
    leaf, key = signing_pki.leaves["p256"]
    payload = _v02_statement(model)
    signature = key.sign(_v02_message(payload), ec.ECDSA(hashes.SHA256()))
    sig_path = _write_signature(model, _bundle(_chain_material(leaf), payload, signature))
    trust = ["--signature", sig_path, "--certificate-chain", signing_pki.root]

    (model / "extra.bin").write_bytes(b"x")
    result = cli("verify", model, *trust)
    assert result.code == 1
    assert "'extra.bin' is in the model but not signed" in one_error_line(result.err)
    (model / "extra.bin").unlink()
    (model / "config.json").write_bytes(b"{}")
    result = cli("verify", model, *trust)
    assert result.code == 1
    assert "does not match its signed digest" in one_error_line(result.err)


def test_the_pre_1_0_encoding_is_reported_in_the_signature_check(
    signing_pki: SigningPki, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    leaf, key = signing_pki.leaves["p256"]
    # model_signing 1.1 also accepts the 0.2 encoding over a v1.0 statement.
    payload = sign_model(model, KeySigner(key), write=False).statement
    signature = key.sign(_v02_message(payload), ec.ECDSA(hashes.SHA256()))
    bundle = _bundle(_chain_material(leaf), payload, signature)
    root_pem = signing_pki.root.read_bytes()

    report = verify_model(model, bundle, CertificateTrust([root_pem]))

    assert report.passed, report.error
    detail = {c.name: c.detail for c in report.checks}["signature"]
    assert "pre-1.0 model_signing encoding" in detail
    # The real DSSE PAE over the same payload is, of course, still accepted.
    proper = key.sign(pae(IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    report = verify_model(
        model, _bundle(_chain_material(leaf), payload, proper), CertificateTrust([root_pem])
    )
    assert report.passed
    assert "pre-1.0" not in {c.name: c.detail for c in report.checks}["signature"]


# --- the certificate chain: cryptography's X.509 verifier ----------------------------------

UNKNOWN = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.7.1"), b"\x05\x00")


@pytest.mark.parametrize(
    ("where", "critical", "accepted"),
    [
        pytest.param("leaf", True, False, id="leaf-unknown-critical-refused"),
        pytest.param("intermediate", True, False, id="intermediate-unknown-critical-refused"),
        pytest.param("leaf", False, True, id="leaf-unknown-non-critical-accepted"),
    ],
)
def test_unknown_critical_extensions_are_refused(
    where: str, critical: bool, accepted: bool, signing_pki: SigningPki, tmp_path: Path, cli: Cli
) -> None:
    extra = ((UNKNOWN, critical),)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _issue(
        "compat intermediate", inter_key, "compat root", signing_pki.root_key, ca=True,
        extra=extra if where == "intermediate" else (),
    )  # fmt: skip
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue(
        "extension signer", leaf_key, "compat intermediate", inter_key, ca=False,
        extra=extra if where == "leaf" else (),
    )  # fmt: skip
    model = make_model(tmp_path / "model")
    signer = CertificateSigner(leaf_key, leaf, [inter])
    sign_model(model, signer)
    before = _tree(model)

    result = cli("verify", model, "--certificate-chain", signing_pki.root)

    if accepted:
        assert result.code == 0, result.err
    else:
        assert result.code == 1
        line = one_error_line(result.err)
        assert "does not chain" in line
        assert "unaccounted-for critical extensions" in line
    assert _tree(model) == before


def test_a_ca_without_key_cert_sign_cannot_issue(signing_pki: SigningPki, tmp_path: Path) -> None:
    # An "intermediate" that is a CA by basicConstraints but may only sign documents.
    inter_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    inter = (
        x509.CertificateBuilder()
        .subject_name(_name("document signer"))
        .issuer_name(_name("compat root"))
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .sign(signing_pki.root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue("signer", leaf_key, "document signer", inter_key, ca=False)
    model = make_model(tmp_path / "model")
    bundle = sign_model(model, CertificateSigner(leaf_key, leaf, [inter])).bundle

    report = verify_model(model, bundle, CertificateTrust([signing_pki.root.read_bytes()]))

    assert not report.passed
    assert isinstance(report.error, SignatureError)
    assert "does not chain" in report.error.message


def test_the_oms_test_pki_leaf_needs_the_relaxed_leaf_policy(testdata: Path) -> None:
    # The reference PKI signs with a certificate asserting cA (keys/signing-key-cert.pem),
    # which the WebPKI leaf policy refuses; its release signatures still verify.
    from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store

    keys = testdata / "oms-releases" / "keys"
    leaf = load_certificates_pem((keys / "signing-key-cert.pem").read_bytes(), "leaf")[0]
    intermediate = load_certificates_pem((keys / "int-ca-cert.pem").read_bytes(), "ca")[0]
    root = load_certificates_pem((keys / "ca-cert.pem").read_bytes(), "root")[0]
    strict = (
        PolicyBuilder()
        .store(Store([root]))
        .time(datetime.now(timezone.utc))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.webpki_defaults_ee(),
        )
        .build_client_verifier()
    )
    with pytest.raises(Exception, match="cA must not be asserted"):
        strict.verify(leaf, [intermediate])
    folder = testdata / "oms-releases" / "v1.1.0-certificate"
    report = verify_model(
        folder,
        (folder / "model.sig").read_bytes(),
        CertificateTrust([(keys / "ca-cert.pem").read_bytes()]),
        signature_path=folder / "model.sig",
        ignore_paths=["ignore-me"],
    )
    assert report.passed, report.error
