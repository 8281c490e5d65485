"""Evidence over HTTP (waivers and attestations signed by their holders, verified before
they are stored), a corrupt blob never delivered whole, and `mlprov serve` refusing to
start on a registry no request could share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlprov.canonical import canonical_json
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, one_line_error
from support.server_process import ServerProcess, b64, running_server, token, upload

WEIGHTS = bytes(range(256)) * 8192  # 2 MiB: more than one chunk of the artefact store


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _register(client: httpx.Client) -> dict[str, object]:
    digest = upload(client, WEIGHTS)
    created = client.post(
        "/api/v1/models/m/versions",
        json={"files": [{"path": "w.bin", "sha256": digest, "size": len(WEIGHTS)}]},
    )
    assert created.status_code == 201, created.text
    version: dict[str, object] = created.json()
    return version


def _statement(version: dict[str, object], predicate_type: str, predicate: object) -> bytes:
    return canonical_json(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "m", "digest": {"sha256": str(version["digest"]).split(":")[1]}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    )


def test_waivers_and_attestations_signed_elsewhere_are_checked_then_stored(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess
) -> None:
    admin = server.client(token(reg, "admin"))
    promoter = server.client(token(reg, "promoter", name="release"))
    evaluator = server.client(token(reg, "evaluator", name="eval"))
    folder = env.write_policy("- signatures: {count: 1, signers: [trainer]}\n")
    files = {p.name: b64(p.read_bytes()) for p in folder.iterdir() if p.is_file()}
    files.update({f"keys/{p.name}": b64(p.read_bytes()) for p in (folder / "keys").iterdir()})
    assert admin.put("/api/v1/policy", json={"files": files}).status_code == 200
    version = _register(admin)

    waiver = {
        "for": "production",
        "version": "m/1",
        "requirements": ["prod/signatures"],
        "reason": "hotfix",
        "granted": "2026-12-01T00:00:00.000000Z",
        "expires": "2026-12-02T00:00:00Z",
    }
    bundle = (
        env.signer("alice").sign(_statement(version, "https://mlprov.dev/waiver/v1", waiver)).bundle
    )
    stored = promoter.post("/api/v1/models/m/versions/1/waivers", content=bundle)
    assert stored.status_code == 201, stored.text
    listed = promoter.get("/api/v1/models/m/versions/1/waivers").json()
    assert [(w["target"], w["reason"]) for w in listed] == [("production", "hotfix")]
    log = admin.get("/api/v1/audit", params={"subject": "m/1"}).json()
    assert "waiver.grant" in [e["action"] for e in log]

    # A waiver about another version is refused and stores nothing.
    before = reg.snapshot()
    other = (
        env.signer("alice")
        .sign(_statement(version, "https://mlprov.dev/waiver/v1", {**waiver, "version": "m/2"}))
        .bundle
    )
    refused = promoter.post("/api/v1/models/m/versions/1/waivers", content=other)
    assert refused.status_code == 400, refused.text
    assert reg.snapshot() == before

    # An evaluation signed by a trusted evaluator is attached; one by an untrusted key not.
    evaluation = _statement(version, "https://example.com/eval/v1", {"auc": 0.93})
    attached = evaluator.post(
        "/api/v1/models/m/versions/1/evidence",
        content=env.signer("evaluator").sign(evaluation).bundle,
    )
    assert attached.status_code == 201, attached.text
    assert attached.json()["kind"] == "attestation"
    before = reg.snapshot()
    untrusted = evaluator.post(
        "/api/v1/models/m/versions/1/evidence",
        content=env.signer("mallory").sign(evaluation).bundle,
    )
    assert untrusted.status_code == 400, untrusted.text
    assert untrusted.json()["error"]["type"] == "SignatureError"
    assert reg.snapshot() == before
    digest = attached.json()["digest"]
    content = evaluator.get(f"/api/v1/models/m/versions/1/evidence/{digest}")
    assert content.status_code == 200
    assert json.loads(content.content)["dsseEnvelope"]["payload"]


def test_a_corrupt_blob_is_never_delivered_whole(reg: RegistryEnv, server: ServerProcess) -> None:
    admin = server.client(token(reg, "admin"))
    version = _register(admin)
    del version
    files = [p for p in (reg.home / "blobs" / "sha256").rglob("*") if p.is_file()]
    assert len(files) == 1, files
    path = files[0]
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last byte: every chunk before it is sent, the last is held
    path.write_bytes(bytes(data))
    received = bytearray()
    with admin.stream("GET", f"/api/v1/blobs/{path.name}") as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == len(WEIGHTS)
        with pytest.raises(httpx.RemoteProtocolError):
            _read_into(response, received)
    assert len(received) < len(WEIGHTS)
    assert bytes(received) == WEIGHTS[: len(received)]


def _read_into(response: httpx.Response, received: bytearray) -> None:
    for chunk in response.iter_bytes():
        received += chunk


def test_serve_refuses_a_registry_only_one_process_could_see(reg: RegistryEnv) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlprov", "serve", "--port", "18081"],
        env={**reg.env, "MLPROV_REGISTRY": "sqlite://"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "memory" in one_line_error(result.stderr)
    bad_port = reg.cli("serve", "--port", "70000")
    assert bad_port.returncode == 2
    assert "--port" in one_line_error(bad_port.stderr)


def test_a_revocation_signed_elsewhere_is_stored_and_audited(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess
) -> None:
    admin = server.client(token(reg, "admin", name="security"))
    reader = server.client(token(reg, "reader"))
    version = _register(admin)
    statement = canonical_json(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "m/1", "digest": {"sha256": str(version["digest"])[7:]}}],
            "predicateType": "https://mlprov.dev/revocation/v1",
            "predicate": {
                "kind": "version",
                "value": "m/1",
                "reason": "leaked training data",
                "time": "2026-12-01T00:00:00.000000Z",
            },
        }
    )
    bundle = env.signer("alice").sign(statement).bundle
    before = reg.snapshot()
    refused = reader.post("/api/v1/revocations", content=bundle)
    assert refused.status_code == 403, refused.text
    assert reg.snapshot()["rows"]["revocations"] == before["rows"]["revocations"]
    stored = admin.post("/api/v1/revocations", content=bundle)
    assert stored.status_code == 201, stored.text
    listed = reader.get("/api/v1/revocations").json()
    assert [(r["kind"], r["value"], r["reason"]) for r in listed] == [
        ("version", "m/1", "leaked training data")
    ]
    again = admin.post("/api/v1/revocations", content=bundle)
    assert again.status_code == 409, again.text
    entries = admin.get("/api/v1/audit", params={"subject": "m/1"}).json()
    added = [e for e in entries if e["action"] == "revocation.add"]
    assert len(added) == 1
    assert added[0]["actor"].startswith("token:security (tok_")


def test_stages_and_alias_deletion_go_through_the_gate(
    reg: RegistryEnv, server: ServerProcess
) -> None:
    admin = server.client(token(reg, "admin"))
    promoter = server.client(token(reg, "promoter", name="release"))
    _register(admin)
    staged = promoter.put(
        "/api/v1/models/m/versions/1/stage", json={"stage": "Staging", "reason": "try it"}
    )
    assert staged.status_code == 200, staged.text
    assert [e["to_stage"] for e in staged.json()] == ["Staging"]
    history = promoter.get("/api/v1/models/m/stages/history").json()
    assert [(e["version"], e["to_stage"], e["reason"]) for e in history] == [
        (1, "Staging", "try it")
    ]
    bad = promoter.put("/api/v1/models/m/versions/1/stage", json={"stage": "Shipped"})
    assert bad.status_code == 422, bad.text

    assert promoter.put("/api/v1/models/m/aliases/canary", json={"version": 1}).status_code == 200
    stale = promoter.delete("/api/v1/models/m/aliases/canary", headers={"If-Match": '"5"'})
    assert stale.status_code == 412, stale.text
    deleted = promoter.delete(
        "/api/v1/models/m/aliases/canary", params={"reason": "done"}, headers={"If-Match": '"1"'}
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["kind"] == "delete"
    # A deleted alias keeps its generation (a stale If-Match can never succeed again).
    gone = promoter.get("/api/v1/models/m/aliases/canary").json()
    assert (gone["version"], gone["generation"]) == (None, 2)
    assert promoter.get("/api/v1/models/m/aliases").json() == {}
    kinds = [e["kind"] for e in promoter.get("/api/v1/models/m/aliases/canary/history").json()]
    assert kinds == ["set", "delete"]
