"""Export, import and promote of deployment versions (issue 11 item 2, REF|DEPLOYMENT_REF):
one archive with every member version and the signed bundle statement (exact bytes);
imported into a fresh registry it verifies there (deep) and pulls; tampered members,
swapped or widened bundle statements, taken numbers and ``--as`` are refused and change
nothing; a re-import is a no-op; ``promote --alias`` goes through the target's
deployment policies.

The source registry is SQLite; the importing registry runs on each backend (``reg``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mlprov.errors import MlprovError
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, one_line_error

BASIC = """
- signatures: {count: 1, signers: [trainer]}
"""

ROOT = "mlprov-archive"
RECORD = f"{ROOT}/deployments/search-stack/2/release.json"
BUNDLE = f"{ROOT}/deployments/search-stack/2/bundle.sig"
MEMBERS = {"encoder": "text-enc/1", "ranker": "ranker/1", "llm": "chat/1"}

Members = list[tuple[str, bytes]]


def _release(env: GateEnv, members: dict[str, str], **metadata: str) -> int:
    registry = env.reg.registry()
    try:
        return registry.release_deployment(
            "search-stack", members, env.signer("trainer"), metadata=metadata
        ).version
    finally:
        registry.close()


@pytest.fixture
def source(tmp_path: Path) -> GateEnv:
    """``search-stack`` 1 (two members) and 2 (three members, with a lineage parent)."""
    home = tmp_path / "source"
    home.mkdir()
    env = gate_env(RegistryEnv(home, f"sqlite:///{home / 'registry.db'}"), tmp_path / "src")
    env.apply(BASIC)
    from mlprov.registry import LineageInput

    env.sign_version("base-enc", tmp_path / "base-enc")
    env.sign_version(
        "text-enc", tmp_path / "text-enc", lineage=[LineageInput("base", "base-enc/1")]
    )
    env.sign_version("ranker", tmp_path / "ranker")
    env.sign_version("chat", tmp_path / "chat")
    registry = env.reg.registry()
    try:
        registry.create_deployment("search-stack", description="search")
    finally:
        registry.close()
    assert _release(env, {"encoder": "text-enc/1", "ranker": "ranker/1"}) == 1
    assert _release(env, MEMBERS, ticket="OPS-2") == 2
    return env


@pytest.fixture
def target(reg: RegistryEnv, source: GateEnv, tmp_path: Path) -> GateEnv:
    """The importing registry: the same keys trusted, its own policy folder."""
    folder = tmp_path / "target-policies"
    shutil.copytree(source.folder, folder)
    env = GateEnv(reg, folder, source.keys)
    env.apply(BASIC)
    return env


def _export(source: GateEnv, tmp_path: Path, ref: str = "search-stack/2") -> Path:
    archive = tmp_path / f"{ref.replace('/', '-').replace('@', '-')}.tar"
    registry = source.reg.registry()
    try:
        registry.export(ref, archive, source.signer("trainer"))
    finally:
        registry.close()
    return archive


def _import(env: GateEnv, archive: Path, **options: object):  # type: ignore[no-untyped-def]
    registry = env.reg.registry()
    try:
        return registry.import_archive(archive, **options)
    finally:
        registry.close()


def _source_bundle(source: GateEnv, ref: str) -> bytes:
    registry = source.reg.registry()
    try:
        return bytes(registry.deployment_version(ref).bundle)
    finally:
        registry.close()


def test_a_deployment_imports_verifies_deeply_and_pulls_in_a_fresh_registry(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    imported = _import(target, archive)
    assert imported.root is None
    assert imported.ref == "search-stack/2"
    assert set(imported.written) == {
        "base-enc/1",
        "text-enc/1",
        "ranker/1",
        "chat/1",
        "search-stack/2",
    }
    registry = target.reg.registry()
    try:
        version = registry.deployment_version("search-stack/2")
        assert version.bundle == _source_bundle(source, "search-stack/2")
        assert [(m.role, m.ref) for m in version.members] == [
            ("encoder", "text-enc/1"),
            ("llm", "chat/1"),
            ("ranker", "ranker/1"),
        ]
        assert version.meta == {"ticket": "OPS-2"}
        assert registry.get_deployment("search-stack").description == "search"
        deep = registry.verify("search-stack/2", deep=True)
        assert deep.report.passed, deep.report.failures
        assert {c.id for c in deep.report.checks} >= {
            "deployment.statement",
            "deployment.members",
            "files.deep",
        }
        entry = [e for e in registry.audit_log() if e.action == "deployment.import"][-1]
        assert entry.subject == "search-stack/2"
        assert json.loads(entry.details)["archive"] == imported.archive_digest
        # One webhook event for the deployment version, one per member version written.
        imported_events = [e for e in registry.outbox() if e.type.endswith(".imported")]
        assert [e.type for e in imported_events].count("deployment.imported") == 1
        assert {json.loads(e.payload)["subject"] for e in imported_events} >= {"search-stack/2"}
        assert [e.audit_seq for e in imported_events if e.type == "deployment.imported"] == [
            entry.seq
        ]
        assert registry.verify_audit() == len(registry.audit_log())
        registry.set_alias("search-stack", "production", 2, reason="imported")
    finally:
        registry.close()
    # The number is kept; the next release here is 3.
    assert _release(target, MEMBERS) == 3
    source_registry = source.reg.registry()
    try:
        exported = [e for e in source_registry.audit_log() if e.action == "deployment.export"][-1]
        assert json.loads(exported.details)["archive"] == imported.archive_digest
    finally:
        source_registry.close()
    verified = target.reg.cli("verify", "search-stack/2", "--deep")
    assert verified.returncode == 0, verified.stderr
    pulled = tmp_path / "serve"
    result = target.reg.cli("pull", "search-stack@production", "--to", str(pulled))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in pulled.iterdir()) == [
        "deployment.sig",
        "encoder",
        "llm",
        "ranker",
    ]
    assert (pulled / "deployment.sig").read_bytes() == _source_bundle(source, "search-stack/2")


def test_an_alias_names_the_deployment_version_to_export(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    registry = source.reg.registry()
    try:
        registry.set_alias("search-stack", "production", 1)
    finally:
        registry.close()
    archive = _export(source, tmp_path, "search-stack@production")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert f"{ROOT}/deployments/search-stack/1/bundle.sig" in names
    assert not any("/chat/" in n for n in names)  # not a member of version 1
    imported = _import(target, archive)
    assert imported.ref == "search-stack/1"
    assert imported.deployment is not None
    assert imported.deployment.bundle == _source_bundle(source, "search-stack/1")


def test_re_importing_is_a_no_op(source: GateEnv, target: GateEnv, tmp_path: Path) -> None:
    archive = _export(source, tmp_path)
    _import(target, archive)
    before = target.reg.snapshot()
    again = _import(target, archive)
    assert again.written == ()
    assert again.ref == "search-stack/2"
    assert target.reg.snapshot() == before
    # A new export of the same release (another archive digest) changes nothing either.
    fresh = tmp_path / "again"
    fresh.mkdir()
    other = _import(target, _export(source, fresh))
    assert other.archive_digest != again.archive_digest
    assert other.written == ()
    assert target.reg.snapshot() == before
    result = target.reg.cli("import", str(archive))
    assert result.returncode == 0, result.stderr
    assert "imported already" in result.stdout


def _members_of(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _write(out: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _relist(members: dict[str, bytes], signer) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Sign a new archive listing for ``members`` (the listing only protects integrity:
    any key may sign it), so what the importer refuses is the content itself."""
    from mlprov import provenance, signing

    statement = signing.inspect_attestation(members[f"{ROOT}/archive.sig"]).statement
    predicate = dict(statement["predicate"])
    predicate["members"] = [
        {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in members.items()
        if n != f"{ROOT}/archive.sig"
    ]
    subject = statement["subject"][0]
    members[f"{ROOT}/archive.sig"] = signer.sign(
        provenance.Statement(
            subject=(
                provenance.ResourceDescriptor(name=subject["name"], digest=subject["digest"]),
            ),
            predicate_type=statement["predicateType"],
            predicate=predicate,
        ).to_bytes()
    ).bundle
    return members


def _with_bundle(members: dict[str, bytes], bundle: bytes, record_members=None) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """``bundle`` as the release's bundle statement, the record binding it (and, when
    given, listing ``record_members``)."""
    record = json.loads(members[RECORD])
    record["bundle_digest"] = f"sha256:{hashlib.sha256(bundle).hexdigest()}"
    if record_members is not None:
        record["members"] = record_members
    members[BUNDLE] = bundle
    members[RECORD] = json.dumps(record, sort_keys=True).encode()
    return members


def _wider_bundle(source: GateEnv) -> tuple[bytes, list[dict[str, object]]]:
    """A bundle statement for search-stack/2, signed by the trusted signer, naming one
    member more (``extra:base-enc/1``) than the archive carries with its bytes."""
    from mlprov import provenance
    from mlprov.verification import DEPLOYMENT_PREDICATE_TYPE

    registry = source.reg.registry()
    try:
        version = registry.deployment_version("search-stack/2")
        extra_digest = registry.get_version("base-enc/1").digest
    finally:
        registry.close()
    members = [m.to_json() for m in version.members]
    members.append({"role": "extra", "model": "base-enc", "version": 1, "digest": extra_digest})
    members.sort(key=lambda m: str(m["role"]))
    statement = provenance.Statement(
        subject=tuple(
            provenance.ResourceDescriptor(
                name=f"{m['role']}:{m['model']}/{m['version']}",
                digest={"sha256": str(m["digest"]).partition(":")[2]},
            )
            for m in members
        ),
        predicate_type=DEPLOYMENT_PREDICATE_TYPE,
        predicate={
            "deployment": "search-stack",
            "version": 2,
            "members": members,
            "metadata": dict(version.meta),
        },
    ).to_bytes()
    return source.signer("trainer").sign(statement).bundle, members


def _tamper_blob(source: GateEnv, members: dict[str, bytes]) -> dict[str, bytes]:
    name = next(n for n in members if "/blobs/" in n)
    members[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])
    return members


def _swap_bundle(source: GateEnv, members: dict[str, bytes]) -> dict[str, bytes]:
    # Version 1's genuine, trusted bundle in place of version 2's, everything relisted.
    return _relist(
        _with_bundle(members, _source_bundle(source, "search-stack/1")), source.signer("trainer")
    )


def _swap_bundle_only(source: GateEnv, members: dict[str, bytes]) -> dict[str, bytes]:
    members[BUNDLE] = _source_bundle(source, "search-stack/1")
    return _relist(members, source.signer("mallory"))


def _wider_statement(source: GateEnv, members: dict[str, bytes]) -> dict[str, bytes]:
    bundle, _listed = _wider_bundle(source)
    return _relist(_with_bundle(members, bundle), source.signer("trainer"))


def _wider_statement_and_record(source: GateEnv, members: dict[str, bytes]) -> dict[str, bytes]:
    bundle, listed = _wider_bundle(source)
    return _relist(_with_bundle(members, bundle, listed), source.signer("trainer"))


def _untrusted_bundle(source: GateEnv, members: dict[str, bytes]) -> dict[str, bytes]:
    from mlprov import signing

    payload = signing.inspect_attestation(members[BUNDLE]).payload
    bundle = source.signer("mallory").sign(payload).bundle
    return _relist(_with_bundle(members, bundle), source.signer("trainer"))


def _drop_member_blobs(source: GateEnv, members: dict[str, bytes]) -> dict[str, bytes]:
    record = json.loads(members[f"{ROOT}/versions/chat/1/record.json"])
    record["with_bytes"] = False
    members[f"{ROOT}/versions/chat/1/record.json"] = json.dumps(record, sort_keys=True).encode()
    for f in record["files"]:
        members.pop(f"{ROOT}/blobs/{f['blob']}", None)
    return _relist(members, source.signer("trainer"))


CASES: dict[str, tuple[Callable[[GateEnv, dict[str, bytes]], dict[str, bytes]], int, str]] = {
    "tampered member blob": (_tamper_blob, 1, "do not match"),
    "swapped bundle statement": (_swap_bundle, 1, "deployment.statement"),
    "swapped bundle bytes only": (_swap_bundle_only, 1, "not the one its release record binds"),
    "bundle naming a member not in the archive": (_wider_statement, 1, "deployment.members"),
    "record and bundle naming a member not in the archive": (
        _wider_statement_and_record,
        2,
        "is not in the archive with its bytes",
    ),
    "bundle signed by an untrusted key": (_untrusted_bundle, 1, "deployment.statement"),
    "a member without its bytes": (_drop_member_blobs, 2, "is not in the archive with its bytes"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_deployment_archive_is_refused_and_changes_nothing(
    case: str, source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    change, code, words = CASES[case]
    archive = _export(source, tmp_path)
    bad = _write(tmp_path / "bad.tar", change(source, _members_of(archive)))
    before = target.reg.snapshot()
    with pytest.raises(MlprovError) as caught:
        _import(target, bad)
    assert caught.value.exit_code == code, caught.value.message
    assert words in caught.value.message
    assert target.reg.snapshot() == before
    result = target.reg.cli("import", str(bad))
    assert result.returncode == code, result.stderr
    one_line_error(result.stderr)
    assert target.reg.snapshot() == before


def test_a_taken_deployment_version_number_is_a_conflict(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    target.sign_version("other", tmp_path / "other")
    registry = target.reg.registry()
    try:
        registry.create_deployment("search-stack")
    finally:
        registry.close()
    _release(target, {"main": "other/1"})
    _release(target, {"main": "other/1"}, ticket="mine")
    archive = _export(source, tmp_path)
    before = target.reg.snapshot()
    with pytest.raises(MlprovError) as caught:
        _import(target, archive)
    assert caught.value.exit_code == 3
    assert "another bundle statement" in caught.value.message
    assert target.reg.snapshot() == before
    result = target.reg.cli("import", str(archive))
    assert result.returncode == 3, result.stderr
    one_line_error(result.stderr)
    assert target.reg.snapshot() == before


def test_as_is_refused_for_a_deployment_archive(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    archive = _export(source, tmp_path)
    before = target.reg.snapshot()
    result = target.reg.cli("import", str(archive), "--as", "other-stack")
    assert result.returncode == 2, result.stderr
    assert "deployment archive keeps its names" in one_line_error(result.stderr)
    assert target.reg.snapshot() == before


DENYING_POLICY = """\
version: 1
deployments:
  - name: stack-prod
    deployments: ['search-*']
    targets:
      aliases: [production]
    require:
      - id: no-chat
        cel: "!('llm' in members)"
"""


def test_promote_with_alias_goes_through_the_target_deployment_policy(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    (target.folder / "deployments.yaml").write_text(DENYING_POLICY)
    target.apply(BASIC)
    home, uri = target.reg.home, target.reg.metadata_uri
    to = str(home) if uri.startswith("sqlite:") else uri
    extra = [] if uri.startswith("sqlite:") else ["--artifacts", f"file://{home / 'blobs'}"]
    key = str(source.key_file("trainer"))
    promoted = source.reg.cli(
        "promote", "search-stack/1", "--to", to, *extra, "--key", key, "--alias", "production"
    )
    assert promoted.returncode == 0, promoted.stderr
    assert "search-stack@production -> 1" in promoted.stdout
    before = target.reg.snapshot()
    denied = source.reg.cli(
        "promote", "search-stack/2", "--to", to, *extra, "--key", key, "--alias", "production"
    )
    assert denied.returncode == 1, denied.stderr
    assert "no-chat" in one_line_error(denied.stderr)
    after = target.reg.snapshot()
    registry = target.reg.registry()
    try:
        # The release verified and came in; the alias did not move, and the denial is
        # audited in the target.
        assert registry.deployment_version("search-stack/2").version == 2
        assert registry.get_alias("search-stack", "production").version == 1
        assert after["rows"]["deployment_aliases"] == before["rows"]["deployment_aliases"]
        denial = registry.audit_log()[-1]
        assert (denial.action, denial.subject) == (
            "deployment.alias.set.denied",
            "search-stack@production",
        )
    finally:
        registry.close()


def _without_audit(reg: RegistryEnv) -> dict[str, object]:
    snapshot = reg.snapshot()
    snapshot["rows"] = {k: v for k, v in snapshot["rows"].items() if k != "audit_log"}
    snapshot.pop("audit_head")
    return snapshot


def test_a_deployment_archive_uploaded_to_a_server_is_imported_with_role_checks(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    """``POST /api/v1/imports``: a token that may write every member model but not the
    deployment is refused (403, audited, nothing else changed); a publisher's import
    verifies; ``promote --to https://...`` moves the deployment alias there."""
    from mlprov.client import HttpRegistry
    from mlprov.errors import PermissionDeniedError
    from support.server_process import running_server, token

    archive = _export(source, tmp_path)
    with running_server(target.reg, tmp_path / "server.log") as server:
        members_only = token(
            target.reg, "publisher", name="ci", models=("text-enc", "base-enc", "ranker", "chat")
        )
        before = _without_audit(target.reg)
        client = HttpRegistry(server.base_url, members_only)
        try:
            with pytest.raises(PermissionDeniedError):
                client.import_archive(archive)
        finally:
            client.close()
        assert _without_audit(target.reg) == before
        registry = target.reg.registry()
        try:
            denial = registry.audit_log()[-1]
            assert "denied" in denial.action
            assert denial.subject == "search-stack"
        finally:
            registry.close()
        client = HttpRegistry(server.base_url, token(target.reg, "publisher", name="pub"))
        try:
            done = client.import_archive(archive)
            assert done.root is None
            assert done.deployment is not None
            assert done.deployment.ref == "search-stack/2"
            assert "search-stack/2" in done.written
            assert client.import_archive(archive).written == ()
        finally:
            client.close()
        admin = token(target.reg, "admin", name="release")
        import subprocess
        import sys

        promoted = subprocess.run(
            [sys.executable, "-m", "mlprov", "promote", "search-stack/2", "--to", server.base_url,
             "--key", str(source.key_file("trainer")), "--alias", "production", "--json"],
            env={**source.reg.env, "MLPROV_TARGET_TOKEN": admin},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert promoted.returncode == 0, promoted.stderr
        assert json.loads(promoted.stdout)["deployment"]["version"] == 2
    registry = target.reg.registry()
    try:
        assert registry.get_alias("search-stack", "production").version == 2
        assert registry.verify("search-stack/2", deep=True).report.passed
    finally:
        registry.close()


def test_two_imports_of_one_deployment_archive_at_once_write_it_once(
    source: GateEnv, target: GateEnv, tmp_path: Path
) -> None:
    import threading

    archive = _export(source, tmp_path)
    _import(target, _export(source, tmp_path, "search-stack/1"))  # some members there already
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
    assert [r.ref for r in results] == ["search-stack/2"] * 2  # type: ignore[attr-defined]
    registry = target.reg.registry()
    try:
        assert [v.version for v in registry.deployment_versions("search-stack")] == [1, 2]
        imports = [e for e in registry.audit_log() if e.action == "deployment.import"]
        assert [e.subject for e in imports] == ["search-stack/1", "search-stack/2"]
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
