"""Signing a registered version later, recognising an OMS signature attached later, and
what `register` leaves out of a version; each refusal changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.registry_env import RegistryEnv, execute, make_model, one_line_error


@pytest.fixture
def keys(reg: RegistryEnv, tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    reg.cli("keys", "generate", "--out", str(private), check=True)
    reg.cli("keys", "public", str(private), "--out", str(public), check=True)
    return private, public


@pytest.fixture
def unsigned(reg: RegistryEnv, tmp_path: Path) -> Path:
    model = make_model(tmp_path / "model")
    reg.cli("register", str(model), "--name", "m", "--no-git", "-q", check=True)
    return model


def test_a_version_registered_unsigned_is_signed_later(
    reg: RegistryEnv, unsigned: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    unverifiable = reg.cli("verify", "m/1", "--key", str(keys[1]))
    assert unverifiable.returncode == 4, unverifiable.stderr  # no signature yet
    out = tmp_path / "m1.sig"
    signed = reg.cli("sign", "m/1", "--key", str(keys[0]), "--signature", str(out))
    assert signed.returncode == 0, signed.stderr
    assert "signed m/1" in signed.stdout
    registry = reg.registry()
    try:
        version = registry.get_version("m/1")
        assert [e.kind for e in version.evidence] == ["signature"]
        assert registry.signature_of("m/1") == out.read_bytes()
        entry = registry.audit_log()[-1]
        assert (entry.action, entry.subject) == ("evidence.add", "m/1")
        assert json.loads(entry.details)["kind"] == "signature"
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
    verified = reg.cli("verify", "m/1", "--key", str(keys[1]))
    assert verified.returncode == 0, verified.stderr
    # The signature is over the recorded manifest: the files on disk verify with it too.
    local = reg.cli("verify", str(unsigned), "--signature", str(out), "--key", str(keys[1]))
    assert local.returncode == 0, local.stderr


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["m/1"], 3, "already signed"),
        (["m/9"], 4, "m/9 not found"),
        (["no such thing!"], 4, "neither a file or folder nor a registered version"),
        (["m/1", "--hash", "blake3"], 2, "recorded manifest"),
        (["m/1", "--ignore-paths", "x"], 2, "recorded manifest"),
    ],
    ids=["twice", "unknown version", "neither", "hash", "ignore paths"],
)
def test_signing_a_registered_version_refuses_and_changes_nothing(
    reg: RegistryEnv,
    unsigned: Path,
    keys: tuple[Path, Path],
    args: list[str],
    code: int,
    words: str,
) -> None:
    reg.cli("sign", "m/1", "--key", str(keys[0]), check=True)
    before = reg.snapshot()
    result = reg.cli("sign", *args, "--key", str(keys[0]))
    assert result.returncode == code, result.stderr
    assert words in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_an_oms_signature_attached_later_is_the_versions_signature(
    reg: RegistryEnv, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    # Signed on disk first (model.sig lands in the folder), registered afterwards:
    # register leaves model.sig out, so the signature's manifest is the version's.
    reg.cli("sign", str(model), "--key", str(keys[0]), check=True)
    assert (model / "model.sig").is_file()
    reg.cli("register", str(model), "--name", "m", "--no-git", "-q", check=True)
    registry = reg.registry()
    try:
        assert "model.sig" not in registry.manifest("m/1").by_path()
    finally:
        registry.close()
    attached = reg.cli("attach", "m/1", str(model / "model.sig"), "--key", str(keys[1]))
    assert attached.returncode == 0, attached.stderr
    registry = reg.registry()
    try:
        assert [e.kind for e in registry.get_version("m/1").evidence] == ["signature"]
        assert registry.signature_of("m/1") == (model / "model.sig").read_bytes()
    finally:
        registry.close()
    assert reg.cli("verify", "m/1", "--key", str(keys[1])).returncode == 0


def test_an_oms_signature_of_other_files_is_refused(
    reg: RegistryEnv, unsigned: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    other = make_model(tmp_path / "other", {"w.bin": b"different bytes"})
    reg.cli("sign", str(other), "--key", str(keys[0]), check=True)
    before = reg.snapshot()
    result = reg.cli("attach", "m/1", str(other / "model.sig"), "--key", str(keys[1]))
    assert result.returncode == 1, result.stderr
    assert "not of m/1" in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_register_takes_ignore_paths(reg: RegistryEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", {"w.bin": b"w", "notes/todo.txt": "later\n"})
    result = reg.cli(
        "register", str(model), "--name", "m", "--no-git", "-q", "--ignore-paths", "notes"
    )
    assert result.returncode == 0, result.stderr
    registry = reg.registry()
    try:
        assert sorted(registry.manifest("m/1").by_path()) == ["w.bin"]
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--started", "2026-01-02T10:00:00Z", "--finished", "2026-01-02T09:59:59Z"],
            "finished",
        ),
        (["--parent", "m/2"], "m/2 not found"),  # the version being registered: itself
        (["--parent", "m/3"], "m/3 not found"),  # not registered yet
    ],
    ids=["finished before started", "parent is itself", "parent not yet registered"],
)
def test_impossible_runs_and_parents_are_refused(
    reg: RegistryEnv, unsigned: Path, tmp_path: Path, args: list[str], words: str
) -> None:
    before = reg.snapshot()
    model = make_model(tmp_path / "next", {"w.bin": b"next"})
    result = reg.cli("register", str(model), "--name", "m", "--no-git", *args)
    assert result.returncode in (2, 4), result.stderr
    assert words in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_the_schema_keeps_version_numbers_unique_without_the_writer_lock(
    reg: RegistryEnv, unsigned: Path
) -> None:
    """A second row with the same (model, number), written straight to the database and
    so past mlprov's writer lock and compare-and-set, is refused by the schema."""
    row = execute(
        reg,
        "SELECT model_id, digest, hash_algorithm, size, file_count, single_file, "
        "artifact_name, params, metrics, datasets, description, stage, created_at, "
        "created_by FROM versions WHERE number = 1",
    )[0]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        execute(
            reg,
            "INSERT INTO versions (model_id, number, digest, hash_algorithm, size, file_count, "
            "single_file, artifact_name, params, metrics, datasets, description, stage, "
            "created_at, created_by) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            *row,
        )


def test_a_signature_file_that_cannot_be_written_says_the_version_exists(
    reg: RegistryEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version is committed before ``model.sig`` lands; when the file then cannot be
    written (disk full, say), the error says the version exists and how to fetch it, and
    no signature file is left half written."""
    from mlprov.errors import StorageError
    from mlprov.fs import StagedFile
    from mlprov.signing import KeySigner, generate_private_key_pem

    def full_disk(self: StagedFile) -> None:
        raise StorageError("writing signature: no space left on device")

    monkeypatch.setattr(StagedFile, "commit", full_disk)
    model = make_model(tmp_path / "m")
    registry = reg.registry()
    try:
        signer = KeySigner.from_pem(generate_private_key_pem())
        with pytest.raises(StorageError) as caught:
            registry.sign_and_register(model, "m", signer)
        message = caught.value.message
        assert "m/1 is registered and signed" in message
        assert "fetch it with `mlprov evidence m/1`" in message
        assert registry.get_version("m/1").version == 1
        assert registry.signature_of("m/1")
    finally:
        registry.close()
    assert not (model / "model.sig").exists()
