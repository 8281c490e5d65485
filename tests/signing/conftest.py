"""Fixtures for the signing tests: keys, a small PKI, models, testdata and CLI runners.

The PKI is made with ``cryptography``: root CA -> intermediate CA -> leaf (code
signing), an expired leaf under the same intermediate, and a foreign root with its own
leaf. Keys: P-256, a second P-256, P-384, RSA and Ed25519.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlprov.cli import main
from support.signing import (
    SHARED_TESTDATA,
    CliResult,
    KeyFiles,
    Keys,
    Pki,
    make_model,
    subprocess_env,
)


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The shared testdata folder (``<repo root>/../shared/testdata``), or skip."""
    if not (SHARED_TESTDATA / "oms-releases").is_dir():
        pytest.skip(f"shared testdata not found at {SHARED_TESTDATA} (needed for this test)")
    return SHARED_TESTDATA


@pytest.fixture(scope="session")
def schema_dir() -> Path:
    """The OMS v1.0 JSON schemas from the shared testdata, or skip saying what is missing.

    (The schemas are data from the OMS spec repository: tests read them from
    ``../shared/testdata`` and never commit copies.)
    """
    names = ("bundle", "envelope", "statement", "predicate")
    base = SHARED_TESTDATA / "oms-spec" / "schemas"
    for candidate in (base / "v1.0", base):
        files = [candidate / f"{name}.schema.json" for name in names]
        if all(f.is_file() and f.stat().st_size > 0 for f in files):
            return candidate
    pytest.skip(
        f"the OMS v1.0 JSON schemas ({', '.join(n + '.schema.json' for n in names)}) are not "
        f"in {base}: the shared testdata holds no usable schema files"
    )


def _pem_private(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _pem_public(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    made: dict[str, KeyFiles] = {}
    for name, key in (
        ("p256", ec.generate_private_key(ec.SECP256R1())),
        ("p256_other", ec.generate_private_key(ec.SECP256R1())),
        ("p384", ec.generate_private_key(ec.SECP384R1())),
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ed25519", ed25519.Ed25519PrivateKey.generate()),
    ):
        private, public = folder / f"{name}.pem", folder / f"{name}.pub"
        private.write_bytes(_pem_private(key))
        public.write_bytes(_pem_public(key))
        made[name] = KeyFiles(private, public)
    return Keys(**made)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    public_key: Any,
    issuer: str,
    issuer_key: Any,
    *,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(timezone.utc)
    long_ago, far_away = now - timedelta(days=3650), now + timedelta(days=3650)

    def write(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    def pem(certificate: x509.Certificate) -> bytes:
        return certificate.public_bytes(serialization.Encoding.PEM)

    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _certificate(
        "mlprov test root", root_key.public_key(), "mlprov test root", root_key,
        ca=True, not_before=long_ago, not_after=far_away,
    )  # fmt: skip
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _certificate(
        "mlprov test intermediate", inter_key.public_key(), "mlprov test root", root_key,
        ca=True, not_before=long_ago, not_after=far_away,
    )  # fmt: skip
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(
        "model signer", leaf_key.public_key(), "mlprov test intermediate", inter_key,
        ca=False, not_before=now - timedelta(days=1), not_after=far_away,
    )  # fmt: skip
    expired_key = ec.generate_private_key(ec.SECP256R1())
    expired_from, expired_to = now - timedelta(days=400), now - timedelta(days=30)
    expired = _certificate(
        "expired signer", expired_key.public_key(), "mlprov test intermediate", inter_key,
        ca=False, not_before=expired_from, not_after=expired_to,
    )  # fmt: skip
    foreign_root_key = ec.generate_private_key(ec.SECP256R1())
    foreign_root = _certificate(
        "foreign root", foreign_root_key.public_key(), "foreign root", foreign_root_key,
        ca=True, not_before=long_ago, not_after=far_away,
    )  # fmt: skip
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    foreign_leaf = _certificate(
        "model signer", foreign_key.public_key(), "foreign root", foreign_root_key,
        ca=False, not_before=now - timedelta(days=1), not_after=far_away,
    )  # fmt: skip
    # An impostor chain: every name is ours, every key is someone else's.
    impostor_inter_key = ec.generate_private_key(ec.SECP256R1())
    impostor_inter = _certificate(
        "mlprov test intermediate", impostor_inter_key.public_key(), "mlprov test root",
        foreign_root_key, ca=True, not_before=long_ago, not_after=far_away,
    )  # fmt: skip
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor_leaf = _certificate(
        "model signer", impostor_key.public_key(), "mlprov test intermediate",
        impostor_inter_key, ca=False, not_before=now - timedelta(days=1), not_after=far_away,
    )  # fmt: skip
    return Pki(
        root=write("root.pem", pem(root)),
        intermediate=write("intermediate.pem", pem(inter)),
        leaf=write("leaf.pem", pem(leaf)),
        leaf_key=write("leaf.key", _pem_private(leaf_key)),
        expired_leaf=write("expired.pem", pem(expired)),
        expired_key=write("expired.key", _pem_private(expired_key)),
        expired_signing_time=expired_from + timedelta(days=10),
        foreign_root=write("foreign-root.pem", pem(foreign_root)),
        foreign_leaf=write("foreign-leaf.pem", pem(foreign_leaf)),
        foreign_key=write("foreign.key", _pem_private(foreign_key)),
        impostor_intermediate=write("impostor-intermediate.pem", pem(impostor_inter)),
        impostor_leaf=write("impostor-leaf.pem", pem(impostor_leaf)),
        impostor_key=write("impostor.key", _pem_private(impostor_key)),
    )


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "my-model")


Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def mlprov_cli() -> Runner:
    """Run ``python -m mlprov.cli ARGS`` in a fresh process."""

    def run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlprov.cli", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=subprocess_env(),
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def model_signing_cli() -> Runner:
    """Run the reference tool, ``python -m model_signing ARGS``."""
    pytest.importorskip("model_signing", reason="the reference tool model_signing is needed")

    def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "model_signing", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=subprocess_env(),
            check=False,
        )

    return run


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``mlprov.cli.main(ARGS)`` in this process; returns code, stdout, stderr."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
