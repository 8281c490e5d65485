"""Export, import and promote (issue 11, items 2, 3 and 6): an exported version imported
into a fresh registry verifies there (mlprov verify and the real model_signing); hostile
or tampered archives are refused and change nothing; re-importing is a no-op.

The source registry is SQLite; the importing registry runs on each backend (``reg``).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mlprov.errors import (
    ConflictError,
    InvalidInputError,
    MlprovError,
    NotFoundError,
    VerificationError,
)
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, one_line_error

BASIC = """
- signatures: {count: 1, signers: [trainer]}
"""


@pytest.fixture
def source(tmp_path: Path) -> GateEnv:
    home = tmp_path / "source"
    home.mkdir()
    env = gate_env(RegistryEnv(home, f"sqlite:///{home / 'registry.db'}"), tmp_path / "src")
    env.apply(BASIC)
    return env


@pytest.fixture
def target(reg: RegistryEnv, source: GateEnv) -> GateEnv:
    """The importing registry, trusting the same keys as the source."""
    env = GateEnv(reg, source.folder, source.keys)
    env.apply(BASIC)
    return env


def _export(source: GateEnv, tmp_path: Path, name: str = "m", **info: object) -> Path:
    number = source.sign_version(name, tmp_path / f"model-{name}", **info)  # type: ignore[arg-type]
    archive = tmp_path / f"{name}.tar"
    registry = source.reg.registry()
    try:
        registry.export(f"{name}/{number}", archive, source.signer("trainer"))
    finally:
        registry.close()
    return archive


def _import(env: GateEnv, archive: Path, **options: object):  # type: ignore[no-untyped-def]
    registry = env.reg.registry()
    try:
        return registry.import_archive(archive, **options)
    finally:
        registry.close()


def test_an_exported_version_imports_and_verifies_in_a_fresh_registry(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    imported = _import(target, archive)
    assert imported.root.ref == "m/1"
    assert imported.written == ("m/1",)
    registry = target.reg.registry()
    try:
        judgement = registry.verify("m/1", deep=True)
        assert not judgement.report.failures, judgement.report.failures
        entry = [e for e in registry.audit_log() if e.action == "version.import"][-1]
        assert json.loads(entry.details)["archive"] == imported.archive_digest
        assert registry.signature_of("m/1") == _source_signature(source)
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
    source_registry = source.reg.registry()
    try:
        exported = [e for e in source_registry.audit_log() if e.action == "version.export"][-1]
        assert json.loads(exported.details)["archive"] == imported.archive_digest
    finally:
        source_registry.close()
    # The CLI's verify agrees.
    result = target.reg.cli("verify", "m/1")
    assert result.returncode == 0, result.stderr


def _source_signature(source: GateEnv) -> bytes:
    registry = source.reg.registry()
    try:
        return bytes(registry.signature_of("m/1"))
    finally:
        registry.close()


def test_the_imported_signature_verifies_with_model_signing(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    pytest.importorskip("model_signing")
    archive = _export(source, tmp_path)
    _import(target, archive)
    installed = tmp_path / "installed"
    result = target.reg.cli("download", "m/1", "--to", str(installed))
    assert result.returncode == 0, result.stderr
    public = tmp_path / "trainer.pub"
    public.write_bytes((source.folder / "keys" / "trainer.pub").read_bytes())
    checked = subprocess.run(
        [sys.executable, "-m", "model_signing", "verify", "key", str(installed),
         "--signature", str(installed / "model.sig"), "--public_key", str(public)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_re_importing_is_a_no_op(source: GateEnv, target: GateEnv, tmp_path: Path) -> None:
    archive = _export(source, tmp_path)
    _import(target, archive)
    before = target.reg.snapshot()
    again = _import(target, archive)
    assert again.written == ()
    assert again.root.ref == "m/1"
    assert target.reg.snapshot() == before


def test_an_import_is_one_webhook_event_per_version_written(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    imported = _import(target, archive)
    registry = target.reg.registry()
    try:
        events = [e for e in registry.outbox() if e.type == "version.imported"]
        assert [(e.model, json.loads(e.payload)["subject"]) for e in events] == [("m", "m/1")]
        details = json.loads(events[0].payload)["details"]
        assert details["archive"] == imported.archive_digest
        assert not [e for e in registry.outbox() if e.type == "version.registered"]
    finally:
        registry.close()
    _import(target, archive)  # a re-import writes nothing, so it is no event either
    registry = target.reg.registry()
    try:
        assert len([e for e in registry.outbox() if e.type == "version.imported"]) == 1
    finally:
        registry.close()


def _rewrite(archive: Path, out: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """A copy of ``archive`` with ``change(members) -> members`` applied (name, bytes)."""
    with tarfile.open(archive) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for item in change(members):
            if isinstance(item, tarfile.TarInfo):
                tar.addfile(item)
                continue
            name, data = item
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _tamper_blob(members):  # type: ignore[no-untyped-def]
    return [(n, d[:-1] + bytes([d[-1] ^ 1])) if "/blobs/" in n else (n, d) for n, d in members]


def _extra_file(members):  # type: ignore[no-untyped-def]
    return [*members, ("mlprov-archive/blobs/extra", b"surprise")]


def _outside_root(members):  # type: ignore[no-untyped-def]
    return [*members[:1], ("../evil.txt", b"x"), *members[1:]]


def _link(members):  # type: ignore[no-untyped-def]
    info = tarfile.TarInfo("mlprov-archive/link")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    return [*members[:1], info, *members[1:]]


def _duplicate(members):  # type: ignore[no-untyped-def]
    return [*members[:2], members[1], *members[2:]]


def _tiny_entries(members):  # type: ignore[no-untyped-def]
    return [*members, *((f"mlprov-archive/t/{i}", b"") for i in range(100_000))]


def _absolute(members):  # type: ignore[no-untyped-def]
    return [*members[:1], ("/tmp/mlprov-absolute", b"x"), *members[1:]]


def _missing_member(members):  # type: ignore[no-untyped-def]
    return [m for m in members if "/evidence/" not in m[0]]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (_tamper_blob, VerificationError),
        (_extra_file, InvalidInputError),
        (_outside_root, InvalidInputError),
        (_absolute, InvalidInputError),
        (_link, InvalidInputError),
        (_duplicate, InvalidInputError),
        (_tiny_entries, InvalidInputError),
        (_missing_member, InvalidInputError),
    ],
    ids=[
        "tampered-blob",
        "extra-file",
        "outside-root",
        "absolute",
        "symlink",
        "duplicate",
        "100k-entries",
        "missing-member",
    ],
)
def test_a_hostile_archive_is_refused_and_changes_nothing(
    source: GateEnv,
    target: GateEnv,
    tmp_path: Path,
    change,
    error,  # type: ignore[no-untyped-def]
) -> None:
    archive = _rewrite(_export(source, tmp_path), tmp_path / "bad.tar", change)
    before = target.reg.snapshot()
    with pytest.raises(error):
        _import(target, archive)
    assert target.reg.snapshot() == before


def test_a_swapped_signature_is_refused_and_changes_nothing(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    """The OMS signature of the archived version replaced by one over other files, with
    the archive manifest re-signed by the attacker (mallory) so every listed digest holds."""
    from mlprov import signing
    from mlprov.manifest import Digest, FileEntry, Manifest

    archive = _export(source, tmp_path)
    other = signing.sign_manifest(
        Manifest.of("sha256", [FileEntry("w.bin", Digest.of_bytes(b"other"), 5)]),
        "m",
        source.signer("trainer"),
    )
    bad = _resign(archive, tmp_path / "swapped.tar", source.signer("mallory"), other)
    before = target.reg.snapshot()
    with pytest.raises(MlprovError) as caught:
        _import(target, bad)
    assert caught.value.exit_code == 1
    assert target.reg.snapshot() == before


def _resign(archive: Path, out: Path, signer, signature: bytes) -> Path:  # type: ignore[no-untyped-def]
    """Replace the version's OMS signature and re-sign the archive manifest with ``signer``."""
    from mlprov import provenance, signing

    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    record_name = next(n for n in members if n.endswith("record.json"))
    document = json.loads(members[record_name])
    old = next(e for e in document["evidence"] if e["kind"] == "signature")
    new_digest = f"sha256:{hashlib.sha256(signature).hexdigest()}"
    del members[record_name.replace("record.json", f"evidence/{old['digest'][7:]}")]
    members[record_name.replace("record.json", f"evidence/{new_digest[7:]}")] = signature
    old["digest"] = new_digest
    members[record_name] = json.dumps(document, sort_keys=True).encode()
    statement = signing.inspect_attestation(members["mlprov-archive/archive.sig"]).statement
    predicate = dict(statement["predicate"])
    predicate["members"] = [
        {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in members.items()
        if n != "mlprov-archive/archive.sig"
    ]
    subject = statement["subject"][0]
    signed = signer.sign(
        provenance.Statement(
            subject=(
                provenance.ResourceDescriptor(name=subject["name"], digest=subject["digest"]),
            ),
            predicate_type=statement["predicateType"],
            predicate=predicate,
        ).to_bytes()
    ).bundle
    members["mlprov-archive/archive.sig"] = signed
    order = [
        "mlprov-archive/archive.sig",
        *(n for n in members if "/evidence/" in n),
        *(n for n in members if n.endswith("record.json")),
        *(n for n in members if "/blobs/" in n),
    ]
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in order:
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    return out


def test_an_untrusted_signer_is_refused(source: GateEnv, reg: RegistryEnv, tmp_path: Path) -> None:
    """A registry that trusts nobody the archive's evidence names imports nothing."""
    other = gate_env(reg, tmp_path / "other")  # different keys
    other.apply(BASIC)
    archive = _export(source, tmp_path)
    before = reg.snapshot()
    with pytest.raises(VerificationError):
        _import(other, archive)
    assert reg.snapshot() == before


def test_a_taken_number_is_a_conflict_and_as_renames(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    target.sign_version("m", tmp_path / "local")  # m/1 here, other bytes
    archive = _export(source, tmp_path)
    before = target.reg.snapshot()
    with pytest.raises(ConflictError):
        _import(target, archive)
    assert target.reg.snapshot() == before
    renamed = _import(target, archive, rename="m-imported")
    assert renamed.root.ref == "m-imported/1"


def test_lineage_ancestors_come_as_records_and_the_child_verifies(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    from mlprov.registry import LineageInput

    source.sign_version("base", tmp_path / "base")
    number = source.sign_version(
        "child", tmp_path / "child", lineage=[LineageInput("parent", "base/1")]
    )
    archive = tmp_path / "child.tar"
    registry = source.reg.registry()
    try:
        registry.export(f"child/{number}", archive, source.signer("trainer"))
    finally:
        registry.close()
    imported = _import(target, archive)
    assert imported.written == ("base/1", "child/1")
    registry = target.reg.registry()
    try:
        assert not registry.verify("child/1").report.failures
        with registry.metadata.read() as tx:
            key = tx.versions.find(tx.models.find("base"), 1)
            origin = tx.origins.find(key.id)
        assert origin is not None
        assert origin.with_bytes is False
    finally:
        registry.close()


def test_cli_export_import_and_promote(source: GateEnv, target: GateEnv, tmp_path: Path) -> None:
    number = source.sign_version("m", tmp_path / "m")
    key = source.key_file("trainer")
    archive = tmp_path / "cli.tar"
    done = source.reg.cli("export", f"m/{number}", "--to", str(archive), "--key", str(key))
    assert done.returncode == 0, done.stderr
    before = target.reg.snapshot()
    bad = target.reg.cli("import", str(tmp_path / "missing.tar"))
    assert bad.returncode == 2, bad.stderr  # a path naming no archive is bad input
    assert "missing.tar" in one_line_error(bad.stderr)
    assert target.reg.snapshot() == before
    result = target.reg.cli("import", str(archive), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"]["version"] == number
    # promote: source -> a third registry given by path
    third_home = tmp_path / "third"
    third = GateEnv(RegistryEnv(third_home, f"sqlite:///{third_home / 'registry.db'}"),
                    source.folder, source.keys)  # fmt: skip
    third_home.mkdir()
    third.apply(BASIC)
    promoted = source.reg.cli(
        "promote", f"m/{number}", "--to", str(third_home), "--key", str(key), "--alias", "staging"
    )
    assert promoted.returncode == 0, promoted.stderr
    registry = third.reg.registry()
    try:
        assert registry.get_alias("m", "staging").version == number
    finally:
        registry.close()


def test_cli_refuses_a_hostile_archive_in_one_line_and_changes_nothing(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    archive = _rewrite(_export(source, tmp_path), tmp_path / "bad.tar", _outside_root)
    before = target.reg.snapshot()
    result = target.reg.cli("import", str(archive))
    assert result.returncode == 2, result.stderr
    assert "leaves the archive root" in one_line_error(result.stderr)
    tampered = _rewrite(_export(source, tmp_path, "n"), tmp_path / "tampered.tar", _tamper_blob)
    result = target.reg.cli("import", str(tampered))
    assert result.returncode == 1, result.stderr
    one_line_error(result.stderr)
    assert target.reg.snapshot() == before


def test_with_ancestors_brings_the_ancestors_bytes(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    from mlprov.registry import LineageInput

    source.sign_version("base", tmp_path / "base")
    source.sign_version("child", tmp_path / "child", lineage=[LineageInput("parent", "base/1")])
    archive = tmp_path / "child.tar"
    registry = source.reg.registry()
    try:
        registry.export("child/1", archive, source.signer("trainer"), with_ancestors=True)
    finally:
        registry.close()
    _import(target, archive)
    registry = target.reg.registry()
    try:
        assert not registry.verify("child/1", deep=True).report.failures
        registry.download("base/1", tmp_path / "base-installed")
    finally:
        registry.close()
    assert (tmp_path / "base-installed" / "w.bin").is_file()


def test_promote_goes_through_the_target_gate(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    """The target's policy for production wants auc >= 0.9: the version is imported (it
    verifies) but the alias does not move, exit 1, and the denial is audited there."""
    target.apply(BASIC + '- id: auc\n  metric: "auc >= 0.9"\n')
    number = source.sign_version("m", tmp_path / "m", metrics={"auc": 0.5})
    target_home = target.reg.home
    uri = target.reg.metadata_uri
    to = str(target_home) if uri.startswith("sqlite:") else uri
    extra = [] if uri.startswith("sqlite:") else ["--artifacts", f"file://{target_home / 'blobs'}"]
    result = source.reg.cli(
        "promote", f"m/{number}", "--to", to, *extra,
        "--key", str(source.key_file("trainer")), "--alias", "production",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    one_line_error(result.stderr)
    registry = target.reg.registry()
    try:
        assert registry.get_version("m/1").digest
        with pytest.raises(NotFoundError):
            registry.get_alias("m", "production")
        assert any(e.action.endswith(".denied") for e in registry.audit_log())
    finally:
        registry.close()


def test_a_listed_document_no_version_names_is_refused(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    """An extra member listed in a re-signed manifest (so its digest holds) is still
    refused: it is neither a record nor evidence of a version in the archive."""
    from mlprov import provenance, signing

    archive = _export(source, tmp_path)
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    extra = "mlprov-archive/versions/m/1/evidence/" + "0" * 64
    statement = signing.inspect_attestation(members["mlprov-archive/archive.sig"]).statement
    predicate = dict(statement["predicate"])
    predicate["members"] = [
        *predicate["members"],
        {"path": extra, "size": 5, "sha256": hashlib.sha256(b"extra").hexdigest()},
    ]
    subject = statement["subject"][0]
    members["mlprov-archive/archive.sig"] = (
        source.signer("mallory")
        .sign(
            provenance.Statement(
                subject=(
                    provenance.ResourceDescriptor(name=subject["name"], digest=subject["digest"]),
                ),
                predicate_type=statement["predicateType"],
                predicate=predicate,
            ).to_bytes()
        )
        .bundle
    )
    bad = tmp_path / "extra.tar"
    with tarfile.open(bad, "w", format=tarfile.PAX_FORMAT) as tar:
        items = list(members.items())
        for name, data in [items[0], (extra, b"extra"), *items[1:]]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    before = target.reg.snapshot()
    with pytest.raises(InvalidInputError, match="not a record or evidence"):
        _import(target, bad)
    assert target.reg.snapshot() == before


def test_an_export_of_a_corrupt_blob_fails_and_leaves_no_file(
    source: GateEnv, tmp_path: Path
) -> None:
    from mlprov.errors import DigestMismatchError

    number = source.sign_version("m", tmp_path / "model")
    registry = source.reg.registry()
    try:
        blob = registry.version_files(f"m/{number}")[0].blob
        stored = source.reg.home / "blobs" / "sha256" / blob[:2] / blob
        stored.chmod(0o644)
        stored.write_bytes(b"rotten" + stored.read_bytes()[6:])
        archive = tmp_path / "out.tar"
        with pytest.raises(DigestMismatchError):
            registry.export(f"m/{number}", archive, source.signer("trainer"))
    finally:
        registry.close()
    assert not archive.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tar")) == []


def test_the_archive_is_a_tar_that_tar_reads(source: GateEnv, tmp_path: Path) -> None:
    import shutil

    archive = _export(source, tmp_path)
    # tar is in every base system this project supports (and in CI): its absence is a
    # broken machine, not a reason to pass without checking the archive.
    tar = shutil.which("tar")
    assert tar is not None, "tar is not on PATH"
    listed = subprocess.run([tar, "tf", str(archive)], capture_output=True, text=True, check=True)
    names = listed.stdout.split()
    assert names[0] == "mlprov-archive/archive.sig"
    assert names[-1].startswith("mlprov-archive/blobs/")
    assert archive.stat().st_size % 10240 == 0


def test_two_imports_of_one_archive_at_once_write_it_once(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    import threading

    archive = _export(source, tmp_path)
    results: list[object] = []

    def run() -> None:
        try:
            results.append(_import(target, archive))
        except Exception as e:  # collected and asserted below
            results.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(not isinstance(r, Exception) for r in results), results
    written = [r.written for r in results]  # type: ignore[attr-defined]
    assert sorted(written) == [(), ("m/1",)]
    registry = target.reg.registry()
    try:
        assert [v.ref for v in registry.list_versions("m")] == ["m/1"]
        assert len([e for e in registry.audit_log() if e.action == "version.import"]) == 1
    finally:
        registry.close()
