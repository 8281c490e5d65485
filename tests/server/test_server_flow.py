"""The whole flow through real ``mlprov serve`` processes, on SQLite and PostgreSQL:
upload blobs, register with a signature made locally, approve with a signature made
locally, promote through the gate (denied first, with the failed requirements), download
(whole and by range), resolve; the audit log names each token's principal."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlprov.canonical import canonical_json
from mlprov.manifest import Digest, FileEntry, Manifest
from mlprov.signing import KeySigner, sign_manifest
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv
from support.server_process import ServerProcess, b64, running_server, token, upload

POLICY = """
- signatures: {count: 1, signers: [trainer]}
- approvals: {count: 1}
"""

FILES = {"config.json": b'{"layers": 2}\n', "weights/part-0.bin": bytes(range(256)) * 4096}


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _policy_files(env: GateEnv) -> dict[str, str]:
    folder = env.write_policy(POLICY)
    files = {p.name: b64(p.read_bytes()) for p in folder.iterdir() if p.is_file()}
    files.update({f"keys/{p.name}": b64(p.read_bytes()) for p in (folder / "keys").iterdir()})
    return files


def _manifest() -> Manifest:
    return Manifest.of(
        "sha256",
        (
            FileEntry(path, Digest("sha256", hashlib.sha256(data).hexdigest()), len(data))
            for path, data in FILES.items()
        ),
    )


def _approval(version: dict[str, object], signer: KeySigner, target: str) -> bytes:
    """An approval statement as `mlprov approve` makes it, signed here by the approver."""
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": version["name"], "digest": {"sha256": str(version["digest"]).split(":")[1]}}
        ],
        "predicateType": "https://mlprov.dev/approval/v1",
        "predicate": {
            "for": target,
            "version": f"{version['name']}/{version['version']}",
            "comment": "looks good",
            "time": "2026-12-01T00:00:00.000000Z",
        },
    }
    return signer.sign(canonical_json(statement, "approval")).bundle


def test_sign_approve_promote_download(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess
) -> None:
    admin = server.client(token(reg, "admin", name="ops"))
    publisher = server.client(token(reg, "publisher", name="ci", models=("credit-*",)))
    approver = server.client(token(reg, "approver", name="alice"))
    promoter = server.client(token(reg, "promoter", name="release"))
    reader = server.client(token(reg, "reader", name="serving"))

    applied = admin.put("/api/v1/policy", json={"files": _policy_files(env), "reason": "go"})
    assert applied.status_code == 200, applied.text

    digests = {path: upload(publisher, data) for path, data in FILES.items()}
    signature = sign_manifest(_manifest(), "credit-risk", env.signer("trainer"))
    body = {
        "files": [
            {"path": path, "sha256": digests[path], "size": len(data)}
            for path, data in FILES.items()
        ],
        "metrics": {"auc": 0.93},
        "signature": b64(signature),
    }
    created = publisher.post(
        "/api/v1/models/credit-risk/versions", json=body, headers={"Idempotency-Key": "run-1"}
    )
    assert created.status_code == 201, created.text
    version = created.json()
    assert version["version"] == 1
    assert version["created_by"] == "token:ci (" + version["created_by"].split("(")[1]
    # A retry with the same key is the same version; nothing new is made.
    again = publisher.post(
        "/api/v1/models/credit-risk/versions", json=body, headers={"Idempotency-Key": "run-1"}
    )
    assert again.status_code == 201, again.text
    assert again.json()["version"] == 1
    assert len(reader.get("/api/v1/models/credit-risk/versions").json()) == 1

    stored = reader.get("/api/v1/models/credit-risk/versions/1/signature")
    assert stored.status_code == 200
    assert stored.content == signature
    manifest = reader.get("/api/v1/models/credit-risk/versions/1/manifest").json()
    assert manifest["digest"] == version["digest"] == str(_manifest().digest)

    # Without an approval the gate refuses, with the failed requirement in the body.
    denied = promoter.put(
        "/api/v1/models/credit-risk/aliases/production",
        json={"version": 1, "reason": "release"},
        headers={"If-Match": '"0"'},
    )
    assert denied.status_code == 403, denied.text
    error = denied.json()["error"]
    assert error["type"] == "PolicyDenied"
    assert any("approval" in reason for reason in error["reasons"]), error

    approval = _approval(version, env.signer("alice"), "production")
    approved = approver.post("/api/v1/models/credit-risk/versions/1/approvals", content=approval)
    assert approved.status_code == 201, approved.text
    listed = reader.get("/api/v1/models/credit-risk/versions/1/approvals").json()
    assert [a["target"] for a in listed] == ["production"]

    moved = promoter.put(
        "/api/v1/models/credit-risk/aliases/production",
        json={"version": 1, "reason": "release"},
        headers={"If-Match": '"0"'},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["moved"] is True
    assert moved.headers["ETag"] == '"1"'
    assert reader.get("/api/v1/models/credit-risk/aliases/production").json()["version"] == 1

    resolved = reader.get("/api/v1/resolve", params={"ref": "credit-risk@production"})
    assert resolved.json()["version"]["digest"] == version["digest"]

    # Download every file by its blob, whole and resumed from the middle (Range).
    files = reader.get("/api/v1/models/credit-risk/versions/1/files").json()
    for item in files:
        whole = reader.get(f"/api/v1/blobs/{item['blob']}")
        assert whole.status_code == 200
        assert whole.content == FILES[item["path"]]
        middle = len(whole.content) // 2
        rest = reader.get(f"/api/v1/blobs/{item['blob']}", headers={"Range": f"bytes={middle}-"})
        assert rest.status_code == 206
        assert (
            rest.headers["Content-Range"]
            == f"bytes {middle}-{len(whole.content) - 1}/{len(whole.content)}"
        )
        assert whole.content[:middle] + rest.content == FILES[item["path"]]
    size = len(FILES["config.json"])
    beyond = reader.get(
        f"/api/v1/blobs/{digests['config.json']}", headers={"Range": f"bytes={size}-"}
    )
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"

    # Every change is recorded with the token's principal as its actor, and the chain holds.
    log = admin.get("/api/v1/audit").json()
    actors = {entry["action"]: entry["actor"] for entry in log}
    assert actors["version.register"].startswith("token:ci (tok_")
    assert actors["alias.set"].startswith("token:release (tok_")
    assert actors["alias.set.denied"].startswith("token:release (tok_")
    assert admin.get("/api/v1/audit/verify").json()["ok"] is True

    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert 'mlprov_gate_decisions_total{decision="denied",pointer="alias"} 1.0' in metrics
    assert 'mlprov_gate_decisions_total{decision="allowed",pointer="alias"} 1.0' in metrics
    assert "mlprov_http_request_duration_seconds_bucket" in metrics
    status = reader.get("/api/v1/status").json()
    assert [(s["model"], s["alias"], s["ok"]) for s in status] == [
        ("credit-risk", "production", True)
    ]
    assert json.loads(httpx.get(f"{server.base_url}/healthz").text) == {"status": "ok"}
