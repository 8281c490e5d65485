"""Files sent inline with a registration (ADR 0057) through a real server: a small model
is registered in one request, its bytes stored as the blobs a separate upload would have
made and its formats detected from them; inline and uploaded files mix; inline bytes that
are not the listed ones (digest, size, base64), or a request refused for any other reason,
store nothing; a retry with the same key makes one version. The HTTP client sends small
files inline and larger ones as uploads, and falls back to uploads when a server's body
limit refuses the inline bytes."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlprov.client import HttpRegistry
from support.client_mode import losing_proxy
from support.registry_env import RegistryEnv, make_model
from support.server_process import (
    ServerProcess,
    b64,
    running_server,
    state_without_audit,
    token,
    upload,
)


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


@pytest.fixture
def admin(reg: RegistryEnv, server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client(token(reg, "admin", name="ops")) as client:
        yield client


def _file(path: str, data: bytes, *, inline: bool = True) -> dict[str, Any]:
    listed: dict[str, Any] = {
        "path": path,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    return listed | {"content": b64(data)} if inline else listed


def _blob(reg: RegistryEnv, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return reg.home / "blobs" / "sha256" / digest[:2] / digest


def test_a_small_model_is_registered_in_one_request(reg: RegistryEnv, admin: httpx.Client) -> None:
    state = pickle.dumps({"w": 1}, protocol=2)
    config = b'{"layers": 2}\n'
    answer = admin.post(
        "/api/v1/models/small/versions",
        json={"files": [_file("model.pkl", state), _file("config.json", config)]},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["version"] == 1
    assert _blob(reg, state).read_bytes() == state
    assert _blob(reg, config).read_bytes() == config
    formats = {f["path"]: f["format"] for f in answer.json()["formats"]}
    assert formats == {"config.json": "json", "model.pkl": "pickle"}
    # The same bytes as an upload would have stored: the download is the file.
    assert admin.get(f"/api/v1/blobs/{hashlib.sha256(state).hexdigest()}").content == state


def test_inline_and_uploaded_files_mix(reg: RegistryEnv, admin: httpx.Client) -> None:
    big = b"\x07" * (300 * 1024)
    upload(admin, big)
    small = b"small\n"
    answer = admin.post(
        "/api/v1/models/mixed/versions",
        json={"files": [_file("big.bin", big, inline=False), _file("small.txt", small)]},
    )
    assert answer.status_code == 201, answer.text
    registry = reg.registry()
    try:
        manifest = {e.path: e.digest.hex for e in registry.manifest("mixed/1")}
    finally:
        registry.close()
    assert manifest == {
        "big.bin": hashlib.sha256(big).hexdigest(),
        "small.txt": hashlib.sha256(small).hexdigest(),
    }


@pytest.mark.parametrize(
    ("change", "status", "kind"),
    [
        ({"sha256": hashlib.sha256(b"other").hexdigest()}, 400, "DigestMismatchError"),
        ({"size": 3}, 422, "InvalidInputError"),
        ({"content": "not base64!"}, 422, "InvalidInputError"),
    ],
    ids=["digest", "size", "base64"],
)
def test_inline_bytes_that_are_not_the_listed_ones_store_nothing(
    reg: RegistryEnv, admin: httpx.Client, change: dict[str, Any], status: int, kind: str
) -> None:
    data = b"inline weights\n"
    before = state_without_audit(reg)
    answer = admin.post(
        "/api/v1/models/bad/versions", json={"files": [_file("w.bin", data) | change]}
    )
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] == kind
    assert "w.bin" in error["message"]
    assert state_without_audit(reg) == before
    assert not _blob(reg, data).exists()


def test_a_request_refused_before_its_commit_stores_no_inline_bytes(
    reg: RegistryEnv, server: ServerProcess, admin: httpx.Client
) -> None:
    registry = reg.registry()
    try:
        registry.create_deployment("stack")
    finally:
        registry.close()
    data = b"refused weights\n"
    reader = token(reg, "reader", name="serving")
    before = state_without_audit(reg)
    taken = admin.post("/api/v1/models/stack/versions", json={"files": [_file("w.bin", data)]})
    assert taken.status_code == 409, taken.text
    missing = admin.post(
        "/api/v1/models/orphan/versions",
        json={
            "files": [_file("w.bin", data)],
            "lineage": [{"relation": "parent", "target": "nowhere/1"}],
        },
    )
    assert missing.status_code == 404, missing.text
    with server.client(reader) as client:
        forbidden = client.post("/api/v1/models/m/versions", json={"files": [_file("w.bin", data)]})
    assert forbidden.status_code == 403, forbidden.text
    after = state_without_audit(reg)
    # The refused access is audited (one entry); nothing else changed.
    assert after.pop("audit_rows") == before.pop("audit_rows") + 1
    assert after == before
    assert not _blob(reg, data).exists()


def test_a_retried_inline_registration_makes_one_version(
    reg: RegistryEnv, admin: httpx.Client
) -> None:
    body = {"files": [_file("w.bin", b"retried\n")]}
    headers = {"Idempotency-Key": "retry-1"}
    first = admin.post("/api/v1/models/r/versions", json=body, headers=headers)
    again = admin.post("/api/v1/models/r/versions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert first.json() == again.json()
    # The same key for other bytes is another request: refused, nothing made.
    other = admin.post(
        "/api/v1/models/r/versions", json={"files": [_file("w.bin", b"other\n")]}, headers=headers
    )
    assert other.status_code == 409, other.text
    registry = reg.registry()
    try:
        assert [v.version for v in registry.list_versions("r")] == [1]
    finally:
        registry.close()


def _requests(proxy_seen: list[tuple[str, str, str | None]]) -> list[tuple[str, str]]:
    return [
        (method, path.split("/api/v1/", 1)[1].split("/", 1)[0]) for method, path, _ in proxy_seen
    ]


def test_the_client_sends_small_files_inline_and_large_ones_as_uploads(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path
) -> None:
    publisher = token(reg, "publisher", name="ci")
    small = make_model(tmp_path / "small")
    large = make_model(tmp_path / "large", {"a.bin": b"a" * 10, "big.bin": b"b" * (300 * 1024)})
    with losing_proxy(server.base_url, "/never") as proxy:
        client = HttpRegistry(proxy.base_url, publisher)
        try:
            client.register(small, "small")
            assert _requests(proxy.seen) == [("POST", "models")]
            proxy.seen.clear()
            client.register(large, "large")
            assert _requests(proxy.seen) == [("PUT", "blobs"), ("POST", "models")]
            assert proxy.seen[0][1].endswith(hashlib.sha256(b"b" * (300 * 1024)).hexdigest())
        finally:
            client.close()
    registry = reg.registry()
    try:
        assert len(registry.manifest("small/1")) == 3
        assert {e.path for e in registry.manifest("large/1")} == {"a.bin", "big.bin"}
        assert _blob(reg, b"b" * (300 * 1024)).exists()
    finally:
        registry.close()


def test_the_client_uploads_what_a_small_body_limit_refuses_inline(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    publisher = token(reg, "publisher", name="ci")
    files = {f"part-{i}.bin": bytes([i]) * (200 * 1024) for i in range(3)}
    model = make_model(tmp_path / "model", dict(files))
    limit = {"MLPROV_SERVER_MAX_BODY": str(256 * 1024)}
    with (
        running_server(reg, tmp_path / "server.log", env=limit) as server,
        losing_proxy(server.base_url, "/never") as proxy,
    ):
        client = HttpRegistry(proxy.base_url, publisher)
        try:
            version = client.register(model, "limited")
        finally:
            client.close()
    assert version.version == 1
    assert _requests(proxy.seen) == [("POST", "models")] + [("PUT", "blobs")] * 3 + [
        ("POST", "models")
    ]
    keys = [key for method, _, key in proxy.seen if method == "POST"]
    assert keys[0] is not None
    assert keys[0] == keys[1]
    for data in files.values():
        assert _blob(reg, data).read_bytes() == data
