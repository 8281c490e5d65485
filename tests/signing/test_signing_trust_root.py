"""The Sigstore trusted root: sigstore's bundled public-good root read offline through its
public API (``ClientTrustConfig.production(offline=True)``), in a clean HOME with no
network, and a trusted root file given instead."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlprov.errors import ConfigError, NotFoundError, SignatureError
from mlprov.signing import SigstoreTrust, verify_model_or_raise
from support.signing import (
    RELEASE_IDENTITY,
    RELEASE_ISSUER,
    CliResult,
    one_error_line,
    subprocess_env,
)

Cli = Callable[..., CliResult]


@pytest.fixture
def clean_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with no sigstore cache, and no network: any connection attempt fails."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network access in an offline verification")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    return home


def _release(testdata: Path) -> Path:
    return testdata / "oms-releases" / "v1.1.0-sigstore"


def _sigstore_args() -> list[str]:
    return ["--identity", RELEASE_IDENTITY, "--issuer", RELEASE_ISSUER]


def test_public_good_root_verifies_offline_in_a_clean_home(
    testdata: Path, clean_home: Path, cli: Cli
) -> None:
    result = cli("verify", _release(testdata), "--ignore-paths", "ignore-me", *_sigstore_args())
    assert result.code == 0, result.err
    # sigstore seeded its own cache (under the clean HOME) from the root it bundles.
    seeded = list(clean_home.glob(".cache/sigstore-python/tuf/*/trusted_root.json"))
    assert len(seeded) == 1


def test_offline_verification_prints_only_its_result(testdata: Path, tmp_path: Path) -> None:
    # In a process of its own, where no test harness captures logging: sigstore's "loaded
    # in offline mode" warning would reach stderr there.
    env = {**subprocess_env(), "HOME": str(tmp_path)}
    env.pop("XDG_CACHE_HOME", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlprov",
            "verify",
            str(_release(testdata)),
            "--ignore-paths",
            "ignore-me",
            *_sigstore_args(),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"verified {_release(testdata)}: 2 files match")
    assert len(result.stdout.splitlines()) == 1


def test_unwritable_sigstore_cache_is_a_one_line_config_error(
    testdata: Path, clean_home: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file where the cache folder should be: no permission tricks needed (tests may run
    # as root).
    blocker = clean_home / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    result = cli("verify", _release(testdata), "--ignore-paths", "ignore-me", *_sigstore_args())
    assert result.code == ConfigError.exit_code
    line = one_error_line(result.err)
    assert "Sigstore's trust cache cannot be prepared" in line
    assert "XDG_CACHE_HOME" in line
    assert blocker.read_text() == ""


def test_a_given_trusted_root_replaces_the_public_good_one(
    testdata: Path, clean_home: Path
) -> None:
    release = _release(testdata)
    signature = (release / "model.sig").read_bytes()
    # First the public good root, which seeds sigstore's cache with a copy of it.
    verify_model_or_raise(
        release,
        signature,
        SigstoreTrust(RELEASE_IDENTITY, RELEASE_ISSUER),
        ignore_paths=["ignore-me"],
        signature_path=release / "model.sig",
    )
    public_good = next(clean_home.glob(".cache/sigstore-python/tuf/*/trusted_root.json"))
    copy = clean_home / "public-good-root.json"
    copy.write_bytes(public_good.read_bytes())
    verified = verify_model_or_raise(
        release,
        signature,
        SigstoreTrust(RELEASE_IDENTITY, RELEASE_ISSUER, trusted_root=copy),
        ignore_paths=["ignore-me"],
        signature_path=release / "model.sig",
    )
    assert verified.signer.method == "sigstore"
    # Another instance's root (from the conformance suite) does not vouch for this bundle.
    other = testdata / "sigstore-bundles" / "intoto-expired-certificate_fail" / "trusted_root.json"
    if not other.is_file():
        pytest.skip(f"shared Sigstore test bundles not found at {other.parent}")
    with pytest.raises(SignatureError, match="Sigstore verification failed"):
        verify_model_or_raise(
            release,
            signature,
            SigstoreTrust(RELEASE_IDENTITY, RELEASE_ISSUER, trusted_root=other),
            ignore_paths=["ignore-me"],
            signature_path=release / "model.sig",
        )


@pytest.mark.parametrize(("content", "error"), [(None, NotFoundError), (b"{not json", ConfigError)])
def test_a_missing_or_malformed_trusted_root_is_refused(
    testdata: Path, tmp_path: Path, content: bytes | None, error: type[Exception]
) -> None:
    release = _release(testdata)
    root = tmp_path / "trusted_root.json"
    if content is not None:
        root.write_bytes(content)
    with pytest.raises(error, match="Sigstore trusted root"):
        verify_model_or_raise(
            release,
            (release / "model.sig").read_bytes(),
            SigstoreTrust(RELEASE_IDENTITY, RELEASE_ISSUER, trusted_root=root),
            ignore_paths=["ignore-me"],
            signature_path=release / "model.sig",
        )
