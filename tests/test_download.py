"""Downloads and the serving call: what lands at DIR (modes, model.sig, a mount point),
what is refused before a byte is written (an ephemeral store, a manifest edited in the
database, a signature that does not verify), and a download killed mid-way."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import mlprov
from mlprov.config import RegistryConfig
from mlprov.errors import ConfigError, SignatureError, VerificationError
from support.mounts import mounted
from support.registry_env import RegistryEnv, make_model, one_line_error


def _keys(tmp_path: Path) -> tuple[bytes, Path]:
    """A private key PEM and the path of its public key."""
    from mlprov import signing

    private = signing.generate_private_key_pem()
    public = tmp_path / "signer.pub"
    public.write_bytes(signing.public_key_pem(signing.load_private_key(private).public_key()))
    return private, public


def _trust(public: Path) -> Any:
    from mlprov.signing import KeyTrust

    return KeyTrust(public.read_bytes())


@pytest.fixture
def signed(reg: RegistryEnv, tmp_path: Path) -> tuple[RegistryEnv, Path]:
    """``clf/1`` signed (model folder), ``clf/2`` signed, ``clf@production -> 1``,
    ``one/1`` a signed single-file model, ``plain/1`` unsigned. Returns the public key."""
    from mlprov.signing import KeySigner

    private, public = _keys(tmp_path)
    signer = KeySigner.from_pem(private)
    single = tmp_path / "one.bin"
    single.write_bytes(b"a single-file model")
    registry = reg.registry()
    try:
        registry.sign_and_register(
            make_model(tmp_path / "m1"), "clf", signer, write_signature=False
        )
        registry.sign_and_register(
            make_model(tmp_path / "m2", {"config.json": "{}", "w.bin": b"\x09" * 4096}),
            "clf",
            signer,
            write_signature=False,
        )
        registry.set_alias("clf", "production", 1)
        registry.sign_and_register(single, "one", signer, write_signature=False)
        registry.register(make_model(tmp_path / "plain"), "plain")
    finally:
        registry.close()
    return reg, public


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _model_signing_verify(
    model: Path, signature: Path, public: Path
) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("model_signing", reason="the reference tool model_signing is needed")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "model_signing",
            "verify",
            "key",
            str(model),
            "--signature",
            str(signature),
            "--public_key",
            str(public),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# -- memory:// ----------------------------------------------------------------------------


def test_an_ephemeral_artefact_store_is_refused_outside_tests(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    before = reg.snapshot()
    env = {**reg.env, "MLPROV_ARTIFACTS": "memory://"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlprov",
            "register",
            str(make_model(tmp_path / "m")),
            "--name",
            "m",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "memory://" in one_line_error(result.stderr)
    assert reg.snapshot() == before
    # From the API too, and a registry that does not exist yet is not created.
    fresh = tmp_path / "fresh"
    config = RegistryConfig(home=fresh, artifact_uri="memory://")
    with pytest.raises(ConfigError, match="tests only") as refused:
        mlprov.open_registry(config)
    assert refused.value.exit_code == 2
    assert not fresh.exists()


# -- what lands at DIR ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("umask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)]
)
def test_installed_modes_follow_the_umask(
    reg: RegistryEnv, tmp_path: Path, umask: int, folder_mode: int, file_mode: int
) -> None:
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "m"), "m")
    finally:
        registry.close()
    out = tmp_path / "out"
    result = reg.cli("download", "m/1", "--to", str(out), "-q", umask=umask)
    assert result.returncode == 0, result.stderr
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    assert stat.S_IMODE(out.stat().st_mode) == folder_mode
    assert modes == {
        "config.json": file_mode,
        "weights": folder_mode,
        "weights/part-0.bin": file_mode,
        "weights/part-1.bin": file_mode,
    }


def test_the_download_carries_model_sig_and_the_reference_tool_accepts_it(
    signed: tuple[RegistryEnv, Path], tmp_path: Path
) -> None:
    reg, public = signed
    registry = reg.registry()
    try:
        stored = registry.signature_of("clf/1")
        stored_single = registry.signature_of("one/1")
    finally:
        registry.close()
    out = tmp_path / "out"
    folder, single, plain = out / "clf", out / "one", out / "plain"
    for ref, target in (("clf@production", folder), ("one/1", single), ("plain/1", plain)):
        result = reg.cli("download", ref, "--to", str(target), "-q")
        assert result.returncode == 0, result.stderr

    assert (folder / "model.sig").read_bytes() == stored
    accepted = _model_signing_verify(folder, folder / "model.sig", public)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    # A single-file model's signature goes beside the file, where `mlprov verify` looks.
    assert sorted(p.name for p in single.iterdir()) == ["one.bin", "one.bin.sig"]
    assert (single / "one.bin.sig").read_bytes() == stored_single
    accepted = _model_signing_verify(single / "one.bin", single / "one.bin.sig", public)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    ours = reg.cli("verify", str(folder), "--key", str(public))
    assert ours.returncode == 0, ours.stderr
    # A version without a signature downloads without one.
    assert "model.sig" not in _tree(plain)
    assert set(_tree(plain)) == {"config.json", "weights/part-0.bin", "weights/part-1.bin"}


def _edit_manifest(reg: RegistryEnv) -> None:
    """Point clf/1's config.json row at the bytes of weights/part-0.bin (digest, size,
    blob): a consistent row, so only the signature can tell."""
    import sqlalchemy as sa

    registry = reg.registry()
    try:
        with registry.metadata.engine.begin() as connection:
            version = connection.execute(
                sa.text(
                    "SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id "
                    "WHERE m.name = 'clf' AND v.number = 1"
                )
            ).scalar_one()
            donor = connection.execute(
                sa.text(
                    "SELECT size, digest, blob FROM version_files "
                    "WHERE version_id = :v AND path = 'weights/part-0.bin'"
                ),
                {"v": version},
            ).one()
            connection.execute(
                sa.text(
                    "UPDATE version_files SET size = :s, digest = :d, blob = :b "
                    "WHERE version_id = :v AND path = 'config.json'"
                ),
                {"s": donor.size, "d": donor.digest, "b": donor.blob, "v": version},
            )
    finally:
        registry.close()


def test_a_manifest_edited_in_the_database_is_refused_and_nothing_is_written(
    signed: tuple[RegistryEnv, Path], tmp_path: Path
) -> None:
    reg, public = signed
    _edit_manifest(reg)
    before = reg.snapshot()
    out = tmp_path / "out"
    result = reg.cli("download", "clf/1", "--to", str(out), "-q")
    assert result.returncode == 1, result.stderr
    assert "not the signed one" in one_line_error(result.stderr)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if ".mlprov-" in p.name] == []
    assert reg.snapshot() == before
    registry = reg.registry()
    try:
        with pytest.raises(VerificationError, match="not the signed one"):
            registry.install_verified("clf/1", out, _trust(public))
        assert not out.exists()
        # The version that was not edited still installs.
        registry.install_verified("clf/2", out, _trust(public))
    finally:
        registry.close()
    assert (out / "w.bin").read_bytes() == b"\x09" * 4096


def test_a_signed_version_with_its_own_model_sig_file_is_refused(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    """Signed with the signature kept elsewhere, the folder's own model.sig is a signed
    file: writing the stored signature there would replace it, so nothing is written."""
    from mlprov.signing import KeySigner

    private, _public = _keys(tmp_path)
    model = make_model(tmp_path / "m", {"w.bin": b"weights", "model.sig": "not a signature"})
    registry = reg.registry()
    try:
        registry.sign_and_register(
            model, "own", KeySigner.from_pem(private), signature_path=tmp_path / "elsewhere.sig"
        )
    finally:
        registry.close()
    before = reg.snapshot()
    out = tmp_path / "out"
    result = reg.cli("download", "own/1", "--to", str(out), "-q")
    assert result.returncode == 3, result.stderr
    assert "model.sig" in one_line_error(result.stderr)
    assert not out.exists()
    assert reg.snapshot() == before


# -- an existing folder, a mount point ---------------------------------------------------


def test_an_empty_mount_point_is_filled_not_renamed_over(reg: RegistryEnv, tmp_path: Path) -> None:
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "m"), "m")
    finally:
        registry.close()
    mount = tmp_path / "mnt"
    mount.mkdir()
    with mounted(["-t", "tmpfs", "-o", "size=4m,mode=0751", "tmpfs"], mount) as on_tmpfs:
        if not on_tmpfs:
            if os.environ.get("CI"):
                pytest.fail("CI runs as root and must be able to mount a tmpfs")
            pytest.skip("cannot mount a tmpfs here (needs root and mount)")
        device = mount.stat().st_dev
        result = reg.cli("download", "m/1", "--to", str(mount), "-q")
        assert result.returncode == 0, result.stderr
        assert os.path.ismount(mount)
        assert mount.stat().st_dev == device
        # The folder itself is kept as the operator made it (owner, mode).
        assert stat.S_IMODE(mount.stat().st_mode) == 0o751
        assert _tree(mount) == _tree(tmp_path / "m")
        assert sorted(p.name for p in mount.iterdir()) == ["config.json", "weights"]
        # Now it is not empty: refused, unchanged.
        again = reg.cli("download", "m/1", "--to", str(mount), "-q")
        assert again.returncode == 3, again.stderr
        assert "not an empty folder" in one_line_error(again.stderr)
        assert _tree(mount) == _tree(tmp_path / "m")


def test_an_interrupted_install_into_a_folder_is_cleared_or_refused(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    from mlprov.fs import INSTALL_MARKER_PREFIX

    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "m"), "m")
    finally:
        registry.close()
    # Killed while filling: only its staging folder is left, which the next install clears.
    stale = tmp_path / "stale"
    (stale / f"{INSTALL_MARKER_PREFIX}dead" / "weights").mkdir(parents=True)
    (stale / f"{INSTALL_MARKER_PREFIX}dead" / "config.json").write_text("partial")
    result = reg.cli("download", "m/1", "--to", str(stale), "-q")
    assert result.returncode == 0, result.stderr
    assert _tree(stale) == _tree(tmp_path / "m")
    # Killed while moving entries up: a partial install, refused and left for a human.
    partial = tmp_path / "partial"
    (partial / f"{INSTALL_MARKER_PREFIX}dead").mkdir(parents=True)
    (partial / "config.json").write_text('{"layers": 2}\n')
    result = reg.cli("download", "m/1", "--to", str(partial), "-q")
    assert result.returncode == 3, result.stderr
    assert "partial install" in one_line_error(result.stderr)
    assert sorted(p.name for p in partial.iterdir()) == [
        f"{INSTALL_MARKER_PREFIX}dead",
        "config.json",
    ]
    # Another install holding the folder's lock: refused, nothing written.
    busy = tmp_path / "busy"
    busy.mkdir()
    handle = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = reg.cli("download", "m/1", "--to", str(busy), "-q")
    finally:
        os.close(handle)
    assert result.returncode == 3, result.stderr
    assert "another install" in one_line_error(result.stderr)
    assert list(busy.iterdir()) == []


# -- the serving call --------------------------------------------------------------------


def test_install_verified_resolves_once_verifies_and_installs(
    signed: tuple[RegistryEnv, Path], tmp_path: Path
) -> None:
    reg, public = signed
    registry = reg.registry()
    out = tmp_path / "served"
    moved: list[int] = []

    def move_alias_once(_size: int) -> None:
        # The alias moves while the files are written: the install stays on the version
        # resolved at the start.
        if not moved:
            moved.append(1)
            registry.set_alias("clf", "production", 2, reason="moved mid-install")

    try:
        installed = registry.install_verified(
            "models:/clf@production", out, _trust(public), progress=move_alias_once
        )
        assert registry.get_alias("clf", "production").version == 2
        stored = registry.signature_of("clf/1")
    finally:
        registry.close()
    assert moved == [1]
    assert installed.version.ref == "clf/1"
    assert installed.path == out
    assert installed.signature_path == out / "model.sig"
    assert installed.signature.signer.method == "key"
    tree = _tree(out)
    record = tree.pop(".mlprov-installed.json")  # the install record (docs/serving.md)
    assert tree == {**_tree(tmp_path / "m1"), "model.sig": stored}
    assert json.loads(record)["signature"] == "model.sig"


def test_install_verified_raises_and_leaves_nothing(
    signed: tuple[RegistryEnv, Path], tmp_path: Path
) -> None:
    reg, _public = signed
    (tmp_path / "other").mkdir()
    _other_private, other_public = _keys(tmp_path / "other")
    config = RegistryConfig(home=reg.home, metadata_uri=reg.metadata_uri)
    before = reg.snapshot()
    out = tmp_path / "served"
    cases: dict[str, tuple[str, type[Exception], str]] = {
        "another signer's key": ("models:/clf@production", SignatureError, "signature"),
        "unsigned version": ("plain/1", VerificationError, "no stored signature"),
    }
    for name, (ref, error, words) in cases.items():
        with pytest.raises(error, match=words) as raised:
            mlprov.install_verified(ref, to=out, trust=_trust(other_public), config=config)
        assert raised.value.exit_code == 1, name
        assert not out.exists(), name
    assert [p.name for p in tmp_path.iterdir() if ".mlprov-" in p.name] == []
    assert reg.snapshot() == before


def test_download_with_a_trust_option_installs_only_what_verifies(
    signed: tuple[RegistryEnv, Path], tmp_path: Path
) -> None:
    reg, public = signed
    (tmp_path / "other").mkdir()
    _other_private, other_public = _keys(tmp_path / "other")
    out = tmp_path / "served"
    ok = reg.cli("download", "clf@production", "--to", str(out), "--key", str(public), "--json")
    assert ok.returncode == 0, ok.stderr
    document = json.loads(ok.stdout)
    assert document["ref"] == "clf/1"
    assert document["verified_signer"].startswith("key:")
    assert set(_tree(out)) == {
        "config.json",
        "weights/part-0.bin",
        "weights/part-1.bin",
        "model.sig",
        ".mlprov-installed.json",
    }
    before = reg.snapshot()
    for ref, key, words in (
        ("clf/2", other_public, "signature"),
        ("plain/1", public, "no stored signature"),
    ):
        target = tmp_path / f"refused-{ref.replace('/', '-')}"
        result = reg.cli("download", ref, "--to", str(target), "--key", str(key), "-q")
        assert result.returncode == 1, result.stderr
        assert words in one_line_error(result.stderr)
        assert not target.exists()
    assert reg.snapshot() == before


# -- killed mid-way ------------------------------------------------------------------------


def test_a_download_killed_mid_way_leaves_nothing_at_dir(reg: RegistryEnv, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "weights.bin", "wb") as handle:
        block = os.urandom(1 << 20)
        for _ in range(200):
            handle.write(block)
    registry = reg.registry()
    try:
        registry.register(big, "big")
    finally:
        registry.close()
    (big / "weights.bin").unlink()
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "mlprov", "download", "big/1", "--to", str(out), "-q"],
        env=reg.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        written = 0
        while time.monotonic() < deadline and process.poll() is None:
            partial = list(tmp_path.glob(".out.mlprov-*/weights.bin"))
            written = partial[0].stat().st_size if partial else 0
            if written > 0:
                break
            time.sleep(0.005)
        assert process.poll() is None, "the download ended before it could be killed"
        assert 0 < written < 200 << 20, "not caught mid-write"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    assert [
        p.name.startswith(".out.mlprov-") for p in tmp_path.iterdir() if p.name.startswith(".")
    ] == [True]
    result = reg.cli("download", "big/1", "--to", str(out), "-q", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ref"] == "big/1"
    assert (out / "weights.bin").stat().st_size == 200 << 20
