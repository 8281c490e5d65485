"""Signing keys: ECDSA P-256 / P-384 private keys in PEM, public keys, key hints.

OMS key and certificate signatures are ECDSA with the hash matched to the curve
(P-256 with SHA-256, P-384 with SHA-384, P-521 with SHA-512; OMS algorithm registry),
DER-encoded. The key hint written in a key-mode bundle is the lower-case hex SHA-256
of the public key's PEM text (SubjectPublicKeyInfo, as ``cryptography`` writes it,
trailing newline included), which is what the reference tool ``model_signing`` 1.1
writes and recomputes.

``cryptography`` is imported inside the functions so importing mlprov stays cheap.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from mlprov.errors import InvalidInputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

__all__ = [
    "CURVES",
    "describe_key",
    "ecdsa_hash_for",
    "generate_private_key_pem",
    "key_hint",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "require_ecdsa_key",
]

#: Curves mlprov generates keys on (CLI name -> cryptography curve name).
CURVES: dict[str, str] = {"p256": "secp256r1", "p384": "secp384r1"}

#: Curves accepted when verifying (OMS algorithm registry) -> hash name.
_VERIFY_CURVES: dict[str, str] = {
    "secp256r1": "sha256",
    "secp384r1": "sha384",
    "secp521r1": "sha512",
}

_CURVE_LABELS = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def generate_private_key_pem(curve: str = "p256", passphrase: bytes | None = None) -> bytes:
    """A new ECDSA private key as PKCS#8 PEM, encrypted when a passphrase is given."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    curves = {"p256": ec.SECP256R1, "p384": ec.SECP384R1}
    if curve not in curves:
        raise InvalidInputError(f"unsupported curve {curve!r}; use one of {', '.join(curves)}")
    key = ec.generate_private_key(curves[curve]())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> EllipticCurvePrivateKey:
    """Load an ECDSA private key from PEM; errors are one line and say what to do."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError as e:
        if passphrase:
            raise InvalidInputError("the private key is not encrypted; drop the passphrase") from e
        raise InvalidInputError(
            "the private key is encrypted; give its passphrase with --passphrase-env VAR"
        ) from e
    except ValueError as e:
        if passphrase:
            raise InvalidInputError(
                "cannot load the private key: wrong passphrase or not a PEM private key"
            ) from e
        raise InvalidInputError("cannot load the private key: not a PEM private key") from e
    except Exception as e:  # cryptography raises UnsupportedAlgorithm for odd keys
        raise InvalidInputError(f"cannot load the private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInputError(
            f"the private key is {describe_key(key.public_key())}; "
            "OMS signing needs an ECDSA P-256 or P-384 key (mlprov keys generate)"
        )
    require_ecdsa_key(key.public_key(), "the private key")
    return key


def load_public_key(pem: bytes) -> PublicKeyTypes:
    """Load a public key of any type from PEM (its type is checked when it is used)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    if b"PRIVATE KEY-----" in pem and b"PUBLIC KEY-----" not in pem:
        raise InvalidInputError(
            "this is a private key; verify with the public key (mlprov keys public KEY)"
        )
    try:
        return serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise InvalidInputError("cannot load the public key: not a PEM public key") from e
    except Exception as e:
        raise InvalidInputError(f"cannot load the public key: {e}") from e


def public_key_pem(key: PublicKeyTypes) -> bytes:
    """The SubjectPublicKeyInfo PEM text of a public key, as ``cryptography`` writes it."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: PublicKeyTypes) -> str:
    """Lower-case hex SHA-256 of the public key's PEM text: the OMS ``publicKey.hint``."""
    return hashlib.sha256(public_key_pem(key)).hexdigest()


def describe_key(key: PublicKeyTypes) -> str:
    """A short human name for a key: ``ECDSA P-256``, ``RSA 2048``, ``Ed25519``."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {_CURVE_LABELS.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    name = type(key).__name__.removeprefix("_").removesuffix("PublicKey")
    return name or "unknown key"


def require_ecdsa_key(key: PublicKeyTypes, what: str) -> EllipticCurvePublicKey:
    """Return ``key`` if it is an ECDSA key on a curve OMS allows, else raise."""
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _VERIFY_CURVES:
        raise InvalidInputError(
            f"{what} is {describe_key(key)}; OMS signatures use ECDSA P-256, P-384 or P-521"
        )
    return key


def ecdsa_hash_for(key: EllipticCurvePublicKey) -> HashAlgorithm:
    """The hash matched to the curve: SHA-256 for P-256, SHA-384 for P-384, SHA-512 for P-521."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415

    name = _VERIFY_CURVES[key.curve.name]
    if name == "sha384":
        return hashes.SHA384()
    if name == "sha512":
        return hashes.SHA512()
    return hashes.SHA256()
