"""The registration data path on SQLite and PostgreSQL: one read pass per file stores it,
bytes already stored are neither copied nor synced again, a file that changes while it
is registered is refused whatever the hash algorithm, and a corrupt blob is reported by
the file names it backs."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlprov.errors import DigestMismatchError, VerificationError
from mlprov.hashing import hash_model
from mlprov.registry import Registry
from support.registry_env import RegistryEnv, make_model, one_line_error

ALGORITHMS = ("sha256", "blake2b", "blake3")
MIB = 1024 * 1024


@pytest.fixture
def api(reg: RegistryEnv) -> Iterator[Registry]:
    registry = reg.registry()
    try:
        yield registry
    finally:
        registry.close()


def _weights(tmp_path: Path, label: str = "model") -> Path:
    """Three distinct files of 1 MiB (bigger than anything the metadata writes)."""
    return make_model(
        tmp_path / label,
        {f"weights/part-{i}.bin": bytes([i + 1]) * MIB for i in range(3)},
    )


class FsyncLog:
    """Every ``os.fsync`` this process makes, by the path of what was synced.

    Wraps the real call (it still syncs): the artefact store syncs blobs and their
    folder through ``os.fsync``; the metadata stores' own syncs happen in C, unseen."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, blobs: Path) -> None:
        self.paths: list[str] = []
        self._blobs = str(blobs)
        real = os.fsync

        def fsync(fd: int) -> None:
            self.paths.append(os.readlink(f"/proc/self/fd/{fd}"))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    def take(self) -> list[str]:
        """The blob store's syncs since the last call."""
        taken = [p for p in self.paths if p.startswith(self._blobs)]
        self.paths.clear()
        return taken


def _bytes_written() -> int:
    """Bytes this process passed to write(2) and the like so far (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text(encoding="ascii").splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_re_registering_stored_blobs_neither_copies_nor_syncs_them(
    reg: RegistryEnv,
    api: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    algorithm: str,
) -> None:
    model = _weights(tmp_path)
    syncs = FsyncLog(monkeypatch, reg.home / "blobs")

    first = api.register(model, "m", hash_algorithm=algorithm)
    # Durability of a first registration: every new blob's file and its folder are synced.
    synced = syncs.take()
    assert len([p for p in synced if "/tmp/put-" in p]) == 3, synced
    assert len([p for p in synced if "/sha256/" in p]) == 3, synced

    written = _bytes_written()
    again = api.register(model, "m", hash_algorithm=algorithm)
    assert _bytes_written() - written < MIB  # the metadata only, not 3 MiB of copies
    assert syncs.take() == []
    assert again.digest == first.digest == str(hash_model(model, algorithm).digest)
    assert [f.blob for f in api.version_files("m/2")] == [f.blob for f in api.version_files("m/1")]
    assert [f.path for f in api.version_files("m/2")] == sorted(
        f"weights/part-{i}.bin" for i in range(3)
    )


def test_the_same_bytes_under_another_name_are_not_synced_again(
    reg: RegistryEnv, api: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _weights(tmp_path)
    api.register(model, "first")
    blobs = api.artifacts.digests()
    syncs = FsyncLog(monkeypatch, reg.home / "blobs")

    api.register(model, "second")

    assert syncs.take() == []
    assert api.artifacts.digests() == blobs
    assert list((reg.home / "blobs" / "tmp").iterdir()) == []


def test_a_changed_file_of_the_same_size_is_stored_and_only_it(
    reg: RegistryEnv, api: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same path and size as in the latest version, so probably unchanged: hashed first,
    # then found new and stored from a second read that must give the same digest.
    model = _weights(tmp_path)
    api.register(model, "m", hash_algorithm="blake2b")
    (model / "weights" / "part-1.bin").write_bytes(b"\x09" * MIB)
    syncs = FsyncLog(monkeypatch, reg.home / "blobs")

    version = api.register(model, "m", hash_algorithm="blake2b")

    assert len(syncs.take()) == 2  # the new blob and its folder
    assert version.digest == str(hash_model(model, "blake2b").digest)
    blobs = {f.path: f.blob for f in api.version_files("m/2")}
    assert blobs["weights/part-1.bin"] == hashlib.sha256(b"\x09" * MIB).hexdigest()
    old = {f.path: f.blob for f in api.version_files("m/1")}
    assert blobs["weights/part-0.bin"] == old["weights/part-0.bin"]
    assert blobs["weights/part-1.bin"] != old["weights/part-1.bin"]


def _rewrite_start(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"\xff" * 4096)


def _append(path: Path) -> None:
    with open(path, "ab") as handle:
        handle.write(b"\xff" * 4096)


CHANGES: dict[str, Callable[[Path], None]] = {
    "rewritten behind the reader": _rewrite_start,
    "appended to": _append,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("registered_before", [False, True], ids=["new", "re-registered"])
def test_a_file_changed_while_registered_is_refused_for_every_algorithm(
    reg: RegistryEnv,
    api: Registry,
    tmp_path: Path,
    algorithm: str,
    change: Callable[[Path], None],
    registered_before: bool,
) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(6 * MIB))  # three 2 MiB chunks
    # An older modification time, so the change moves it whatever the clock's tick.
    os.utime(model, (1_700_000_000, 1_700_000_000))
    if registered_before:
        api.register(model, "m", hash_algorithm=algorithm)
    before = reg.snapshot()
    changed: list[bool] = []

    def progress(_count: int) -> None:
        if not changed:  # once, after the first chunk was read
            change(model)
            changed.append(True)

    with pytest.raises(VerificationError, match="changed while being") as raised:
        api.register(model, "m", hash_algorithm=algorithm, progress=progress)

    assert raised.value.exit_code == 1
    assert reg.snapshot() == before


def _corrupt(reg: RegistryEnv, blob: str) -> bytes:
    path = reg.home / "blobs" / "sha256" / blob[:2] / blob
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def test_a_corrupt_blob_is_named_by_the_files_it_backs(
    reg: RegistryEnv, api: Registry, tmp_path: Path
) -> None:
    from mlprov import signing

    private = signing.generate_private_key_pem()
    public = tmp_path / "signing.pub"
    public.write_bytes(signing.public_key_pem(signing.load_private_key(private).public_key()))
    shared = b"\x05" * 4096
    model = make_model(
        tmp_path / "model",
        {"a.bin": shared, "copy/a.bin": shared, "other.bin": b"\x06" * 4096},
    )
    api.sign_and_register(model, "m", signing.KeySigner.from_pem(private), with_documents=False)
    blob = hashlib.sha256(shared).hexdigest()
    actual = hashlib.sha256(_corrupt(reg, blob)).hexdigest()
    before = reg.snapshot()
    expected = [
        "m/1",
        "a.bin, copy/a.bin",
        f"expected sha256:{blob}",
        f"got sha256:{actual}",
    ]

    with pytest.raises(DigestMismatchError) as raised:
        api.download("m/1", tmp_path / "out")
    for part in expected:
        assert part in raised.value.message
    assert "other.bin" not in raised.value.message
    assert not (tmp_path / "out").exists()

    report = api.verify_version("m/1", signing.KeyTrust(public.read_bytes()))
    assert not report.passed
    assert isinstance(report.error, DigestMismatchError)
    for part in expected:
        assert part in report.error.message

    result = reg.cli("verify", "m/1", "--key", str(public))
    assert result.returncode == 1, result.stderr
    line = one_line_error(result.stderr)
    for part in expected:
        assert part in line
    assert reg.snapshot() == before
