"""The top-level conveniences ``mlprov.sign`` and ``mlprov.verify`` (with a raising twin),
and ``mlprov.install_verified``, the one call a serving process needs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprov.config import RegistryConfig
    from mlprov.refs import ModelRef
    from mlprov.registry import VerifiedInstall
    from mlprov.signing import Signer, SignResult, Trust, VerificationReport, VerifiedSignature

__all__ = ["install_verified", "load_verified", "sign", "verify", "verify_or_raise"]


def sign(path: str | Path, *, signer: Signer, **options: Any) -> SignResult:
    """Hash a model file or folder, sign it (OMS v1.0) and write the detached signature
    (default ``model.sig`` inside the folder). Options: ``signature_path``,
    ``hash_algorithm`` (sha256, blake2b, blake3), ``ignore_paths``, ``allow_symlinks``,
    ``shard_size`` (bytes: OMS shard serialization)."""
    from mlprov.signing import sign_model  # noqa: PLC0415

    return sign_model(Path(path), signer, **options)


def _signature_bytes(path: Path, signature: bytes | str | Path | None) -> tuple[bytes, Path | None]:
    from mlprov.signing import default_signature_path, read_signature_file  # noqa: PLC0415

    if isinstance(signature, bytes):
        return signature, None
    location = Path(signature) if signature is not None else default_signature_path(path)
    return read_signature_file(location), location


def verify(
    path: str | Path,
    *,
    signature: bytes | str | Path | None = None,
    trust: Trust,
    **options: Any,
) -> VerificationReport:
    """Verify a model against its detached signature and ``trust``: a report with one
    check per step (``report.passed``, ``report.checks``); never raises for a failed
    check. ``signature`` is the bundle's bytes or its path (default ``model.sig``).
    Options: ``ignore_paths``, ``ignore_unsigned_files`` (files present but not signed
    are tolerated and listed in ``report.unsigned_files``), ``limits``, ``now``."""
    from mlprov.signing import verify_model  # noqa: PLC0415

    model = Path(path)
    data, location = _signature_bytes(model, signature)
    return verify_model(model, data, trust, signature_path=location, **options)


def verify_or_raise(
    path: str | Path,
    *,
    signature: bytes | str | Path | None = None,
    trust: Trust,
    **options: Any,
) -> VerifiedSignature:
    """Like :func:`verify`, but raise the first failure (an MlprovError with its exit
    code); return who signed what."""
    report = verify(path, signature=signature, trust=trust, **options)
    report.raise_for_failure()
    assert report.signature is not None
    return report.signature


def install_verified(
    ref: ModelRef | str,
    *,
    to: str | Path,
    trust: Trust,
    config: RegistryConfig | None = None,
) -> VerifiedInstall:
    """Install a registered version at ``to`` only if it verifies; raise otherwise.

    Opens the registry ``config`` names (default: the environment, as the CLI does),
    resolves ``ref`` (``models:/name@production``, ``name/3``) once, verifies the
    version's stored signature against ``trust``, checks that the registry's manifest is
    the signed one, writes every file checking its digest, and installs the folder with
    its ``model.sig`` atomically. Any failure raises an MlprovError (with its exit code)
    and leaves ``to`` as it was; there is no report to forget to check.
    """
    from mlprov.registry import open_registry  # noqa: PLC0415

    registry = open_registry(config)
    try:
        return registry.install_verified(ref, Path(to), trust)
    finally:
        registry.close()


def load_verified(
    ref: ModelRef | str, *, to: str | Path, config: RegistryConfig | None = None
) -> Path:
    """Install ``NAME@ALIAS`` at ``to`` only if it verifies with the registry's trust and
    passes the alias's policy (``mlprov pull``); return the installed folder.

    The trust and the policy are the registry's active policy set, never the caller's:
    serving cannot weaken them. Any failure raises an MlprovError and leaves ``to`` as it
    was.
    """
    from mlprov.registry import open_registry  # noqa: PLC0415

    registry = open_registry(config)
    try:
        return registry.pull(ref, Path(to)).path
    finally:
        registry.close()
