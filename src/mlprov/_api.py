"""The top-level conveniences ``mlprov.sign`` and ``mlprov.verify`` (with a raising twin),
and ``mlprov.install_verified``, the one call a serving process needs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprov.config import RegistryConfig
    from mlprov.refs import ModelRef
    from mlprov.registry import RegistryApi, VerifiedInstall
    from mlprov.signing import Signer, SignResult, Trust, VerificationReport, VerifiedSignature

__all__ = ["connect", "install_verified", "load_verified", "sign", "verify", "verify_or_raise"]


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
    sync: bool = True,
) -> VerifiedInstall:
    """Install a registered version at ``to`` only if it verifies; raise otherwise.

    Opens the registry ``config`` names (default: the environment, as the CLI does),
    resolves ``ref`` (``models:/name@production``, ``name/3``) once, verifies the
    version's stored signature against ``trust``, checks that the registry's manifest is
    the signed one, writes every file checking its digest, and installs the folder with
    its ``model.sig`` atomically. Any failure raises an MlprovError (with its exit code)
    and leaves ``to`` as it was; there is no report to forget to check. ``sync=False``
    skips the fsyncs, for a volume a crash discards anyway (docs/serving.md).
    """
    registry = connect(config=config)
    try:
        return registry.install_verified(ref, Path(to), trust, sync=sync)
    finally:
        registry.close()


def _server_url(config: RegistryConfig | None) -> str | None:
    import os  # noqa: PLC0415

    from mlprov.config import is_server_uri  # noqa: PLC0415

    uri = config.metadata_uri if config is not None else os.environ.get("MLPROV_REGISTRY")
    return uri if is_server_uri(uri) else None


def connect(
    uri: str | None = None, *, token: str | None = None, config: RegistryConfig | None = None
) -> RegistryApi:
    """The registry ``uri`` names (default ``config``, else the environment as the CLI
    reads it): an :class:`~mlprov.client.HttpRegistry` for ``http(s)://`` (with
    ``token``, default ``$MLPROV_TOKEN``), else the local stores. Both implement
    :class:`~mlprov.registry.RegistryApi`; close it when done."""
    import dataclasses  # noqa: PLC0415

    from mlprov.config import RegistryConfig, is_server_uri  # noqa: PLC0415
    from mlprov.registry import open_registry  # noqa: PLC0415

    if uri is None:
        uri = _server_url(config)
        if uri is None:
            return open_registry(config)
    if is_server_uri(uri):
        # Only client mode needs the HTTP client (and httpx): a local open skips it.
        from mlprov.client import connect as connect_server  # noqa: PLC0415

        return connect_server(uri, token=token)
    return open_registry(dataclasses.replace(RegistryConfig.from_environment(), metadata_uri=uri))


def load_verified(
    ref: ModelRef | str,
    *,
    to: str | Path,
    config: RegistryConfig | None = None,
    trust: Trust | None = None,
    sync: bool = True,
) -> Path:
    """Install ``NAME@ALIAS`` at ``to`` only if it verifies with the registry's trust and
    passes the alias's policy (``mlprov pull``); return the installed folder.

    The trust and the policy are the registry's active policy set, never the caller's:
    serving cannot weaken them. Against a server (``MLPROV_REGISTRY=http(s)://...``)
    the server's gate judges the policy and the signature is verified here against
    ``trust``, which is then required (docs/client.md). Any failure raises an
    MlprovError and leaves ``to`` as it was. ``sync=False`` installs without fsync, for
    a volume a crash discards anyway (``mlprov pull --no-sync``, docs/serving.md).
    """
    from mlprov.errors import InvalidInputError  # noqa: PLC0415
    from mlprov.registry import open_registry  # noqa: PLC0415

    server = _server_url(config)
    if server is not None:
        from mlprov.client import connect as connect_server  # noqa: PLC0415

        if trust is None:
            raise InvalidInputError(
                "load_verified against a server verifies the signature here: pass trust="
            )
        with connect_server(server) as client:
            return client.pull(ref, Path(to), trust, sync=sync).path
    if trust is not None:
        raise InvalidInputError(
            "trust= is for loading from a server; locally the registry's policy set is the trust"
        )
    registry = open_registry(config)
    try:
        return registry.pull(ref, Path(to), sync=sync).path
    finally:
        registry.close()
