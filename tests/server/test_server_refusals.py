"""Every bad request to a real server gets the right status and one error shape, and
changes nothing: no row, no blob, no alias. Refusals for missing or insufficient
credentials (401, 403) append exactly one audit entry each, and nothing else."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.registry_env import RegistryEnv
from support.server_process import (
    ServerProcess,
    running_server,
    state_without_audit,
    token,
    upload,
)

MAX_BODY = 4096
WEIGHTS = b"weights " * 64
FRAUD_ONLY = b"only fraud/2 uses these bytes"


@dataclass
class Env:
    reg: RegistryEnv
    server: ServerProcess
    admin: httpx.Client
    reader: httpx.Client
    publisher: httpx.Client  # models credit-* only
    anonymous: httpx.Client
    secret: str  # the admin token's (must never appear in a reply)


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> Iterator[Env]:
    with running_server(
        reg, tmp_path / "server.log", env={"MLPROV_SERVER_MAX_BODY": str(MAX_BODY)}
    ) as server:
        secret = token(reg, "admin", name="ops")
        admin = server.client(secret)
        digest = upload(admin, WEIGHTS)
        body = {"files": [{"path": "w.bin", "sha256": digest, "size": len(WEIGHTS)}]}
        for name in ("credit-risk", "fraud"):
            created = admin.post(f"/api/v1/models/{name}/versions", json=body)
            assert created.status_code == 201, created.text
        fraud_only = upload(admin, FRAUD_ONLY)
        fraud_body = {"files": [{"path": "w.bin", "sha256": fraud_only, "size": len(FRAUD_ONLY)}]}
        assert admin.post("/api/v1/models/fraud/versions", json=fraud_body).status_code == 201
        moved = admin.put("/api/v1/models/credit-risk/aliases/production", json={"version": 1})
        assert moved.status_code == 200, moved.text
        yield Env(
            reg,
            server,
            admin,
            server.client(token(reg, "reader", name="serving")),
            server.client(token(reg, "publisher", name="ci", models=("credit-*",))),
            server.client(),
            secret,
        )


Request = Callable[[Env], httpx.Response]
_DIGEST = WEIGHTS_DIGEST = hashlib.sha256(WEIGHTS).hexdigest()
_FILES = {"files": [{"path": "w.bin", "sha256": _DIGEST, "size": len(WEIGHTS)}]}

#: name -> (request, status, error type, audited as an access denial)
CASES: dict[str, tuple[Request, int, str, bool]] = {
    "no token": (
        lambda e: e.anonymous.post("/api/v1/models", json={"name": "new"}),
        401,
        "AuthenticationError",
        True,
    ),
    "unknown token": (
        lambda e: e.server.client("mlp_tok_000000000000_" + "x" * 43).get("/api/v1/models"),
        401,
        "AuthenticationError",
        True,
    ),
    "malformed token": (
        lambda e: e.server.client("not-a-token").get("/api/v1/models"),
        401,
        "AuthenticationError",
        True,
    ),
    "wrong role: reader moves an alias": (
        lambda e: e.reader.put(
            "/api/v1/models/credit-risk/aliases/production", json={"version": 2}
        ),
        403,
        "PermissionDeniedError",
        True,
    ),
    "wrong role: reader creates a model": (
        lambda e: e.reader.post("/api/v1/models", json={"name": "new"}),
        403,
        "PermissionDeniedError",
        True,
    ),
    "wrong role: publisher applies a policy": (
        lambda e: e.publisher.put("/api/v1/policy", json={"files": {"a.yaml": "eA=="}}),
        403,
        "PermissionDeniedError",
        True,
    ),
    "wrong model pattern: register": (
        lambda e: e.publisher.post("/api/v1/models/fraud/versions", json=_FILES),
        403,
        "PermissionDeniedError",
        True,
    ),
    "wrong model pattern: tag": (
        lambda e: e.publisher.patch("/api/v1/models/fraud/tags", json={"tags": {"a": "b"}}),
        403,
        "PermissionDeniedError",
        True,
    ),
    "wrong model pattern: a blob only another model uses": (
        lambda e: e.publisher.get(f"/api/v1/blobs/{hashlib.sha256(FRAUD_ONLY).hexdigest()}"),
        403,
        "PermissionDeniedError",
        True,
    ),
    "malformed JSON": (
        lambda e: e.admin.post(
            "/api/v1/models", content=b'{"name": ', headers={"Content-Type": "application/json"}
        ),
        422,
        "ValidationError",
        False,
    ),
    "unknown field": (
        lambda e: e.admin.post("/api/v1/models", json={"name": "x", "owner": "me"}),
        422,
        "ValidationError",
        False,
    ),
    "oversized body": (
        lambda e: e.admin.post("/api/v1/models", json={"name": "x", "description": "d" * MAX_BODY}),
        413,
        "PayloadTooLarge",
        False,
    ),
    "oversized body without a length": (
        lambda e: e.admin.post(
            "/api/v1/models",
            content=iter([b'{"name": "x", "description": "', b"d" * MAX_BODY, b'"}']),
            headers={"Content-Type": "application/json"},
        ),
        413,
        "PayloadTooLarge",
        False,
    ),
    "path traversal in a name": (
        lambda e: e.admin.get("/api/v1/models/..%2F..%2Fetc%2Fpasswd"),
        422,
        "InvalidInputError",
        False,
    ),
    "dot segments in a name": (
        lambda e: e.admin.post("/api/v1/models/%2E%2E/versions", json=_FILES),
        422,
        "InvalidInputError",
        False,
    ),
    "bad model name": (
        lambda e: e.admin.post("/api/v1/models/Credit%20Risk/versions", json=_FILES),
        422,
        "InvalidNameError",
        False,
    ),
    "unknown model": (
        lambda e: e.admin.get("/api/v1/models/nosuch"),
        404,
        "NotFoundError",
        False,
    ),
    "unknown version": (
        lambda e: e.admin.get("/api/v1/models/credit-risk/versions/9/manifest"),
        404,
        "NotFoundError",
        False,
    ),
    "If-Match mismatch": (
        lambda e: e.admin.put(
            "/api/v1/models/credit-risk/aliases/production",
            json={"version": 2},
            headers={"If-Match": '"7"'},
        ),
        412,
        "PreconditionFailedError",
        False,
    ),
    "If-Match not a generation": (
        lambda e: e.admin.put(
            "/api/v1/models/credit-risk/aliases/production",
            json={"version": 2},
            headers={"If-Match": "*"},
        ),
        422,
        "InvalidInputError",
        False,
    ),
    "blob digest mismatch": (
        lambda e: e.admin.put(f"/api/v1/blobs/{'0' * 64}", content=b"other bytes"),
        400,
        "DigestMismatchError",
        False,
    ),
    "blob key not a digest": (
        lambda e: e.admin.put("/api/v1/blobs/abc", content=b"other bytes"),
        422,
        "InvalidInputError",
        False,
    ),
    "registration of a blob never uploaded": (
        lambda e: e.admin.post(
            "/api/v1/models/credit-risk/versions",
            json={"files": [{"path": "w.bin", "sha256": "1" * 64, "size": 3}]},
        ),
        404,
        "NotFoundError",
        False,
    ),
    "registration with a wrong size": (
        lambda e: e.admin.post(
            "/api/v1/models/credit-risk/versions",
            json={"files": [{"path": "w.bin", "sha256": _DIGEST, "size": 3}]},
        ),
        422,
        "InvalidInputError",
        False,
    ),
    "registration with an escaping path": (
        lambda e: e.admin.post(
            "/api/v1/models/credit-risk/versions",
            json={"files": [{"path": "../w.bin", "sha256": _DIGEST, "size": len(WEIGHTS)}]},
        ),
        422,
        "MalformedDocumentError",
        False,
    ),
    "registration with a signature of other files": (
        lambda e: e.admin.post(
            "/api/v1/models/credit-risk/versions",
            json={**_FILES, "signature": "bm90IGEgYnVuZGxl"},
        ),
        400,
        "MalformedSignatureError",
        False,
    ),
    "approval that is not a bundle": (
        lambda e: e.admin.post(
            "/api/v1/models/credit-risk/versions/1/approvals", content=b"not a bundle"
        ),
        400,
        "MalformedSignatureError",
        False,
    ),
    "unknown route": (
        lambda e: e.admin.get("/api/v1/nothing-here"),
        404,
        "NotFound",
        False,
    ),
}


def _problem(env: Env, case: str) -> str | None:
    request, status, kind, audited = CASES[case]
    before = state_without_audit(env.reg)
    response = request(env)
    if response.status_code != status:
        return f"status {response.status_code}, expected {status}: {response.text}"
    error = response.json()["error"]
    if error["type"] != kind or "\n" in error["message"]:
        return f"error {error}, expected type {kind}"
    for leak in ("Traceback", "SELECT", "/tmp", str(env.reg.home), env.secret):
        if leak in response.text:
            return f"{leak!r} in {response.text}"
    after = state_without_audit(env.reg)
    if after["audit_rows"] != before["audit_rows"] + (1 if audited else 0):
        return f"audit entries {before['audit_rows']} -> {after['audit_rows']}"
    before.pop("audit_rows")
    after.pop("audit_rows")
    if after != before:
        return f"state changed: {before} -> {after}"
    if audited:
        registry = env.reg.registry()
        try:
            entry = registry.audit_log()[-1]
            expected_actor = "anonymous" if status == 401 else entry.actor
            if entry.action != "access.denied" or entry.actor != expected_actor:
                return f"audit entry {entry.action} by {entry.actor}"
            if status == 403 and not entry.actor.startswith("token:"):
                return f"403 recorded for {entry.actor}"
            if registry.verify_audit() != len(registry.audit_log()):
                return "audit chain does not verify"
        finally:
            registry.close()
    return None


def test_every_bad_request_is_refused_and_changes_nothing(env: Env) -> None:
    problems = [f"{case}: {p}" for case in sorted(CASES) if (p := _problem(env, case))]
    assert not problems, "\n".join(problems)


def test_a_scoped_reader_downloads_the_blobs_of_its_models(env: Env) -> None:
    shared = env.publisher.get(f"/api/v1/blobs/{_DIGEST}")  # credit-risk/1 uses it
    assert shared.status_code == 200
    assert shared.content == WEIGHTS
    fraud = hashlib.sha256(FRAUD_ONLY).hexdigest()
    assert env.publisher.head(f"/api/v1/blobs/{fraud}").status_code == 200


def test_a_reused_idempotency_key_with_another_request_is_a_conflict(env: Env) -> None:
    key = {"Idempotency-Key": "job-42"}
    first = env.admin.post("/api/v1/models/fraud/versions", json=_FILES, headers=key)
    assert first.status_code == 201, first.text
    before = env.reg.snapshot()
    other = {**_FILES, "description": "another run"}
    second = env.admin.post("/api/v1/models/fraud/versions", json=other, headers=key)
    assert second.status_code == 409, second.text
    assert second.json()["error"]["type"] == "ConflictError"
    assert env.reg.snapshot() == before


def test_requests_over_the_rate_limit_get_429(reg: RegistryEnv, tmp_path: Path) -> None:
    with running_server(reg, tmp_path / "server.log", env={"MLPROV_SERVER_RATE": "1"}) as server:
        client = server.client(token(reg, "reader"))
        statuses = [client.get("/api/v1/models").status_code for _ in range(6)]
        assert statuses[:2] == [200, 200]
        assert 429 in statuses
        limited = client.get("/api/v1/models")
        if limited.status_code == 429:
            assert int(limited.headers["Retry-After"]) >= 1
            assert limited.json()["error"]["type"] == "TooManyRequests"
