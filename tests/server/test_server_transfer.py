"""``POST /api/v1/imports`` against a real ``mlprov serve``: an archive uploaded by the
client (``HttpRegistry.import_archive``, ``mlprov promote --to https://...``) is verified
with the server's own trust; a token that may not write the archive's model, or a hostile
archive, changes nothing but the audit log."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlprov.client import HttpRegistry
from mlprov.errors import InvalidInputError, PermissionDeniedError
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, one_line_error
from support.server_process import ServerProcess, running_server, token

BASIC = "- signatures: {count: 1, signers: [trainer]}\n"


@pytest.fixture
def source(tmp_path: Path) -> GateEnv:
    home = tmp_path / "source"
    home.mkdir()
    env = gate_env(RegistryEnv(home, f"sqlite:///{home / 'registry.db'}"), tmp_path / "src")
    env.apply(BASIC)
    return env


@pytest.fixture
def target(reg: RegistryEnv, source: GateEnv) -> GateEnv:
    env = GateEnv(reg, source.folder, source.keys)
    env.apply(BASIC)
    return env


@pytest.fixture
def server(target: GateEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(target.reg, tmp_path / "server.log") as running:
        yield running


def _export(source: GateEnv, tmp_path: Path) -> Path:
    number = source.sign_version("m", tmp_path / "model")
    archive = tmp_path / "m.tar"
    registry = source.reg.registry()
    try:
        registry.export(f"m/{number}", archive, source.signer("trainer"))
    finally:
        registry.close()
    return archive


def _without_audit(reg: RegistryEnv) -> dict[str, Any]:
    snapshot = reg.snapshot()
    snapshot["rows"] = {k: v for k, v in snapshot["rows"].items() if k != "audit_log"}
    snapshot.pop("audit_head")
    return snapshot


def test_an_uploaded_archive_is_imported_and_verifies_and_again_is_a_no_op(
    source: GateEnv, target: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    client = HttpRegistry(server.base_url, token(target.reg, "publisher", name="ci"))
    try:
        done = client.import_archive(archive)
        assert done.root.ref == "m/1"
        assert done.written == ("m/1",)
        before = target.reg.snapshot()
        again = client.import_archive(archive)
        assert again.written == ()
        assert target.reg.snapshot() == before
    finally:
        client.close()
    registry = target.reg.registry()
    try:
        assert not registry.verify("m/1").report.failures
        entry = [e for e in registry.audit_log() if e.action == "version.import"][-1]
        assert json.loads(entry.details)["archive"] == done.archive_digest
        assert entry.actor.startswith("token:ci ")
    finally:
        registry.close()


def test_a_token_for_other_models_is_refused_and_nothing_is_written(
    source: GateEnv, target: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    client = HttpRegistry(
        server.base_url, token(target.reg, "publisher", name="ci", models=("other-*",))
    )
    before = _without_audit(target.reg)
    try:
        with pytest.raises(PermissionDeniedError):
            client.import_archive(archive)
    finally:
        client.close()
    assert _without_audit(target.reg) == before
    registry = target.reg.registry()
    try:
        denial = registry.audit_log()[-1]
        assert "denied" in denial.action, denial
        assert denial.subject == "m"
    finally:
        registry.close()


def test_a_hostile_upload_is_refused_and_changes_nothing(
    source: GateEnv, target: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    with tarfile.open(archive) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [members[0], ("../../etc/cron.d/x", b"x"), *members[1:]]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    client = HttpRegistry(server.base_url, token(target.reg, "publisher", name="ci"))
    try:
        before = target.reg.snapshot()
        with pytest.raises(InvalidInputError):
            client.import_archive(bad)
        # A path naming no archive is refused before anything is sent (exit 2, as locally).
        with pytest.raises(InvalidInputError, match=r"missing\.tar") as missing:
            client.import_archive(tmp_path / "missing.tar")
        assert missing.value.exit_code == 2
        with pytest.raises(InvalidInputError, match="not a regular file"):
            client.import_archive(tmp_path)
    finally:
        client.close()
    assert target.reg.snapshot() == before


def test_cli_promote_to_a_server_moves_the_alias_through_its_gate(
    source: GateEnv, target: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    number = source.sign_version("m", tmp_path / "model")
    admin = token(target.reg, "admin", name="release")
    key = source.key_file("trainer")
    missing = source.reg.cli("promote", f"m/{number}", "--to", server.base_url, "--key", str(key))
    assert missing.returncode == 2
    assert "MLPROV_TARGET_TOKEN" in one_line_error(missing.stderr)
    env = {**source.reg.env, "MLPROV_TARGET_TOKEN": admin}
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mlprov", "promote", f"m/{number}", "--to", server.base_url,
         "--key", str(key), "--alias", "production", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"]["version"] == number
    registry = target.reg.registry()
    try:
        assert registry.get_alias("m", "production").version == number
    finally:
        registry.close()
