"""``mlprov export`` and ``mlprov promote`` from a server (client mode, ADR 0054) against a
real ``mlprov serve`` on each backend: the archive built here from what the server sends
lists the same members as the server's own export, imports into a fresh local registry
and verifies there deeply; both audit logs carry the archive's digest. A reader without
access to a model of the closure, a blob corrupt in the server's store and a server that
lies about bytes all make the export fail with no file written and nothing audited as an
export."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlprov.client import HttpRegistry
from mlprov.registry import LineageInput
from support.client_mode import client_cli, losing_proxy, lying_proxy
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, one_line_error
from support.server_process import ServerProcess, running_server, state_without_audit, token

BASIC = "- signatures: {count: 1, signers: [trainer]}\n"
SIGNATURE = "mlprov-archive/archive.sig"


@pytest.fixture
def source(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    """The server's registry: ``base/1`` and ``child/1`` (lineage parent ``base/1``)."""
    env = gate_env(reg, tmp_path / "src")
    env.apply(BASIC)
    env.sign_version("base", tmp_path / "base")
    env.sign_version("child", tmp_path / "child", lineage=[LineageInput("parent", "base/1")])
    return env


@pytest.fixture
def target(source: GateEnv, tmp_path: Path) -> GateEnv:
    """A fresh local registry folder trusting the same keys."""
    home = tmp_path / "target"
    home.mkdir()
    env = GateEnv(
        RegistryEnv(home, f"sqlite:///{home / 'registry.db'}"), source.folder, source.keys
    )
    env.apply(BASIC)
    return env


@pytest.fixture
def server(source: GateEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(source.reg, tmp_path / "server.log") as running:
        yield running


def _listing(archive: Path) -> list[tuple[str, int, str]]:
    """Every member but the signed listing, with its size and bytes' SHA-256."""
    import hashlib

    with tarfile.open(archive) as tar:
        return [
            (m.name, m.size, hashlib.sha256(tar.extractfile(m).read()).hexdigest())  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name != SIGNATURE
        ]


def _exports(reg: RegistryEnv) -> list[dict[str, Any]]:
    registry = reg.registry()
    try:
        return [
            {"action": e.action, "actor": e.actor, **json.loads(e.details)}
            for e in registry.audit_log()
            if e.action.endswith(".export")
        ]
    finally:
        registry.close()


def _imports(reg: RegistryEnv) -> list[str]:
    registry = reg.registry()
    try:
        return [
            json.loads(e.details)["archive"]
            for e in registry.audit_log()
            if e.action.endswith(".import")
        ]
    finally:
        registry.close()


def test_an_export_from_a_server_imports_verifies_deeply_and_both_audits_agree(
    source: GateEnv, target: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    reader = token(source.reg, "reader", name="release")
    key = str(source.key_file("trainer"))
    archive = tmp_path / "child.tar"
    done = client_cli(
        server.base_url, reader, "export", "child/1", "--to", str(archive),
        "--key", key, "--with-ancestors", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["root"] == "child/1"
    assert answer["versions"] == ["base/1", "child/1"]
    assert answer["size"] == archive.stat().st_size

    # The same members, byte for byte, as the server's registry exports itself.
    local = tmp_path / "local.tar"
    registry = source.reg.registry()
    try:
        registry.export("child/1", local, source.signer("trainer"), with_ancestors=True)
    finally:
        registry.close()
    assert _listing(archive) == _listing(local)

    imported = target.reg.cli("import", str(archive), "--json")
    assert imported.returncode == 0, imported.stderr
    digest = json.loads(imported.stdout)["archive_digest"]
    assert digest == answer["archive_digest"]
    for ref in ("base/1", "child/1"):
        verified = target.reg.cli("verify", ref, "--deep")
        assert verified.returncode == 0, (ref, verified.stdout, verified.stderr)

    # Both audit logs carry the archive's digest; the server's names the token.
    exported = [e for e in _exports(source.reg) if e["archive"] == digest]
    assert len(exported) == 1, _exports(source.reg)
    assert exported[0]["action"] == "version.export"
    assert exported[0]["actor"].startswith("token:release ")
    assert exported[0]["versions"] == ["base/1", "child/1"]
    assert exported[0]["with_ancestors"] is True
    assert digest in _imports(target.reg)

    # An existing file is never overwritten (exit 2, nothing asked of the server).
    before = state_without_audit(source.reg)
    again = client_cli(
        server.base_url, reader, "export", "child/1", "--to", str(archive), "--key", key
    )
    assert again.returncode == 2, again.stderr
    assert "exists already" in one_line_error(again.stderr)
    assert state_without_audit(source.reg) == before


def test_promote_from_a_server_into_a_local_folder_moves_the_alias(
    source: GateEnv, target: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    reader = token(source.reg, "reader", name="release")
    done = client_cli(
        server.base_url, reader, "promote", "child@latest", "--to", str(target.reg.home),
        "--key", str(source.key_file("trainer")), "--alias", "staging", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["written"] == ["base/1", "child/1"]
    registry = target.reg.registry()
    try:
        assert registry.get_alias("child", "staging").version == 1
        assert not registry.verify("child/1").report.failures
    finally:
        registry.close()
    assert [e["archive"] for e in _exports(source.reg)] == [answer["archive_digest"]]
    assert set(_imports(target.reg)) == {answer["archive_digest"]}


def test_a_deployment_exports_from_a_server_and_verifies_deeply_where_imported(
    source: GateEnv, target: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    source.sign_version("ranker", tmp_path / "ranker")
    registry = source.reg.registry()
    try:
        registry.create_deployment("search-stack", description="search")
        released = registry.release_deployment(
            "search-stack",
            {"encoder": "child/1", "ranker": "ranker/1"},
            source.signer("trainer"),
            metadata={"ticket": "OPS-2"},
        )
    finally:
        registry.close()
    archive = tmp_path / "stack.tar"
    client = HttpRegistry(server.base_url, token(source.reg, "reader", name="release"))
    try:
        written = client.export("search-stack/1", archive, source.signer("trainer"))
    finally:
        client.close()
    assert written.root == "search-stack/1"
    assert written.versions == ("base/1", "child/1", "ranker/1")
    local = tmp_path / "local.tar"
    registry = source.reg.registry()
    try:
        registry.export("search-stack/1", local, source.signer("trainer"))
    finally:
        registry.close()
    assert _listing(archive) == _listing(local)

    imported = target.reg.cli("import", str(archive), "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["deployment"]["bundle_digest"] == released.bundle_digest
    verified = target.reg.cli("verify", "search-stack/1", "--deep")
    assert verified.returncode == 0, (verified.stdout, verified.stderr)
    exported = [e for e in _exports(source.reg) if e["archive"] == written.archive_digest]
    assert [(e["action"], e["bundle_digest"]) for e in exported] == [
        ("deployment.export", released.bundle_digest)
    ]
    assert written.archive_digest in _imports(target.reg)


def test_a_reader_without_access_to_an_ancestor_gets_403_and_no_file(
    source: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    limited = token(source.reg, "reader", name="child-only", models=("child",))
    before = state_without_audit(source.reg)
    archive = tmp_path / "child.tar"
    refused = client_cli(
        server.base_url, limited, "export", "child/1", "--to", str(archive),
        "--key", str(source.key_file("trainer")),
    )  # fmt: skip
    assert refused.returncode == 6, refused.stderr
    assert "base" in one_line_error(refused.stderr)
    assert not archive.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".child.tar")] == []
    after = state_without_audit(source.reg)
    assert after.pop("audit_rows") == before.pop("audit_rows") + 1  # the denial
    assert after == before
    registry = source.reg.registry()
    try:
        denial = registry.audit_log()[-1]
        assert "denied" in denial.action, denial
        assert denial.subject == "base", denial
    finally:
        registry.close()
    assert _exports(source.reg) == []
    # The audit route itself refuses the same token: no export entry can be forged.
    client = HttpRegistry(server.base_url, limited)
    try:
        answer = client.transport.request(
            "POST",
            "/api/v1/exports",
            json={"ref": "child/1", "archive_digest": "sha256:" + "0" * 64},
            accept=(403,),
        )
        assert answer.status_code == 403
    finally:
        client.close()
    assert _exports(source.reg) == []


def test_a_blob_corrupt_on_the_server_fails_the_export_and_leaves_no_file(
    source: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    reader = token(source.reg, "reader", name="release")
    registry = source.reg.registry()
    try:
        blob = registry.version_files("child/1")[0].blob
    finally:
        registry.close()
    stored = source.reg.home / "blobs" / "sha256" / blob[:2] / blob
    stored.chmod(0o644)
    stored.write_bytes(b"rotten" + stored.read_bytes()[6:])
    archive = tmp_path / "child.tar"
    failed = client_cli(
        server.base_url, reader, "export", "child/1", "--to", str(archive),
        "--key", str(source.key_file("trainer")),
    )  # fmt: skip
    assert failed.returncode == 5, failed.stderr
    assert blob[:16] in one_line_error(failed.stderr)
    assert not archive.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".child.tar")] == []
    assert _exports(source.reg) == []


def _flip_last_byte(body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 1])


def test_a_server_that_lies_about_bytes_fails_the_export_and_leaves_no_file(
    source: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    reader = token(source.reg, "reader", name="release")
    lies = {
        "a blob's bytes": "/api/v1/blobs/",
        "a piece of evidence": "/evidence/sha256",
    }
    for lie, marker in lies.items():

        def rewrite(path: str, body: bytes, marker: str = marker) -> bytes:
            return _flip_last_byte(body) if marker in path else body

        archive = tmp_path / "child.tar"
        with lying_proxy(server.base_url, rewrite) as proxy:
            failed = client_cli(
                proxy.base_url, reader, "export", "child/1", "--to", str(archive),
                "--key", str(source.key_file("trainer")),
            )  # fmt: skip
        assert failed.returncode == 1, (lie, failed.stderr)
        assert "hash" in one_line_error(failed.stderr), lie
        assert not archive.exists(), lie
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".child.tar")] == []
    assert _exports(source.reg) == []


def test_an_export_record_whose_answer_is_lost_is_retried_and_audited_once(
    source: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    """The client sends one ``Idempotency-Key`` per export, so the transport repeats the
    POST whose answer a proxy lost (503); the server answers the repeat as the first and
    audits the export once."""
    reader = token(source.reg, "reader", name="release")
    archive = tmp_path / "child.tar"
    with losing_proxy(server.base_url, "/api/v1/exports") as proxy:
        client = HttpRegistry(proxy.base_url, reader, timeout=30, retries=3)
        client.transport.backoff = 0.01
        try:
            written = client.export("child/1", archive, source.signer("trainer"))
        finally:
            client.close()
    posts = [
        key for method, path, key in proxy.seen if (method, path) == ("POST", "/api/v1/exports")
    ]
    assert len(posts) == 2, proxy.seen
    assert posts[0] is not None
    assert posts[0] == posts[1]
    assert archive.exists()
    assert [e["archive"] for e in _exports(source.reg)] == [written.archive_digest]
    assert source.reg.snapshot()["rows"]["export_keys"] == 1


def _record(digest: str = "sha256:" + "1" * 64, **fields: Any) -> dict[str, Any]:
    return {"ref": "child/1", "archive_digest": digest, "with_ancestors": True, **fields}


def test_a_repeated_export_record_gets_the_first_answer_and_writes_nothing(
    source: GateEnv, server: ServerProcess
) -> None:
    client = server.client(token(source.reg, "reader", name="release"))
    key = {"Idempotency-Key": "export-7"}
    first = client.post("/api/v1/exports", json=_record(), headers=key)
    assert first.status_code == 201, first.text
    assert first.json()["versions"] == ["base/1", "child/1"]
    before = source.reg.snapshot()
    again = client.post("/api/v1/exports", json=_record(), headers=key)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert source.reg.snapshot() == before
    assert len(_exports(source.reg)) == 1
    # Without a key every POST is audited (a client that never retries needs none).
    plain = client.post("/api/v1/exports", json=_record())
    assert plain.status_code == 201, plain.text
    assert len(_exports(source.reg)) == 2


#: name -> (headers, body, status, error type): each refused with nothing written.
REFUSED_RECORDS: dict[str, tuple[dict[str, str], dict[str, Any], int, str]] = {
    "the key with another archive digest": (
        {"Idempotency-Key": "export-7"},
        _record("sha256:" + "2" * 64),
        409,
        "ConflictError",
    ),
    "the key with another reference": (
        {"Idempotency-Key": "export-7"},
        _record(ref="base/1", with_ancestors=False),
        409,
        "ConflictError",
    ),
    "the key without the ancestors": (
        {"Idempotency-Key": "export-7"},
        _record(with_ancestors=False),
        409,
        "ConflictError",
    ),
    "a key with a space": (
        {"Idempotency-Key": "export 8"},
        _record(),
        422,
        "InvalidInputError",
    ),
    "a key longer than 128": (
        {"Idempotency-Key": "k" * 129},
        _record(),
        422,
        "ValidationError",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED_RECORDS))
def test_a_bad_idempotency_key_on_an_export_record_is_refused_and_writes_nothing(
    source: GateEnv, server: ServerProcess, case: str
) -> None:
    headers, body, status, kind = REFUSED_RECORDS[case]
    client = server.client(token(source.reg, "reader", name="release"))
    first = client.post("/api/v1/exports", json=_record(), headers={"Idempotency-Key": "export-7"})
    assert first.status_code == 201, first.text
    before = source.reg.snapshot()
    refused = client.post("/api/v1/exports", json=body, headers=headers)
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    assert error["type"] == kind, error
    assert "\n" not in error["message"]
    assert source.reg.snapshot() == before
    assert len(_exports(source.reg)) == 1
