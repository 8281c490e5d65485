"""``POST /api/v1/audit/checkpoints`` against a real ``mlprov serve`` (ADR 0055,
amendment): a checkpoint signed by the caller of a (sequence, hash) in the server's chain
is recorded as the ``audit.checkpoint`` entry a local checkpoint writes, by the token;
every other body, and every token without ``audit`` on every model, is refused with its
status and one error line, and writes nothing (a 401 or 403 only its denial)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlprov.audit import GENESIS_HASH, Checkpoint
from mlprov.canonical import canonical_json
from mlprov.signing import KeySigner, generate_private_key_pem
from support.registry_env import RegistryEnv, make_model
from support.server_process import ServerProcess, running_server, state_without_audit, token

PATH = "/api/v1/audit/checkpoints"
SIGNER = KeySigner.from_pem(generate_private_key_pem())
OCTETS = {"Content-Type": "application/octet-stream"}


@dataclass
class Env:
    reg: RegistryEnv
    server: ServerProcess
    admin: httpx.Client
    chain: list[str]  # the hash of each entry, entry 1 first, when the fixture was made


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> Iterator[Env]:
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "a", {"w.bin": b"a"}), "m")  # 1, 2
        registry.set_alias("m", "prod", 1, reason="launch")  # 3
    finally:
        registry.close()
    with running_server(reg, tmp_path / "server.log") as server:
        admin = server.client(token(reg, "admin", name="auditor"))  # 4
        registry = reg.registry()
        try:
            chain = [e.hash for e in registry.audit_chain()[2]]
        finally:
            registry.close()
        yield Env(reg, server, admin, chain)


def _signed(statement: dict[str, Any]) -> bytes:
    return SIGNER.sign(canonical_json(statement, "test statement")).bundle


def _checkpoint(sequence: int, digest: str) -> bytes:
    return _signed(Checkpoint(sequence, digest, "2026-12-02T10:00:00.000000Z").statement())


def _post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post(PATH, content=body, headers=OCTETS)


@pytest.mark.parametrize(
    ("sequence", "digest"),
    [
        (4, lambda chain: chain[3]),
        (2, lambda chain: chain[1]),  # an earlier head is in the chain as well
        (0, lambda _chain: GENESIS_HASH),  # the empty log every chain starts from
    ],
    ids=["the head", "an earlier entry", "the empty log"],
)
def test_a_checkpoint_of_the_chain_is_recorded_by_the_token(
    env: Env, sequence: int, digest: Callable[[list[str]], str]
) -> None:
    answer = _post(env.admin, _checkpoint(sequence, digest(env.chain)))
    assert answer.status_code == 201, answer.text
    entry = answer.json()
    assert entry["seq"] == 5
    assert entry["action"] == "audit.checkpoint"
    assert entry["subject"] == "audit"
    assert entry["actor"].startswith("token:auditor ")
    assert entry["details"] == {
        "sequence": sequence,
        "hash": digest(env.chain),
        "signer": str(SIGNER.identity),
    }
    registry = env.reg.registry()
    try:
        last = registry.audit_log()[-1]
        assert registry.verify_audit() == 5
    finally:
        registry.close()
    assert (last.seq, last.action, json.loads(last.details)) == (
        5,
        "audit.checkpoint",
        entry["details"],
    )


def test_a_repeated_checkpoint_is_recorded_once(env: Env) -> None:
    """A retried request (its answer lost) gets the entry the first one wrote; the same
    head checkpointed by another signer is a checkpoint of its own."""
    bundle = _checkpoint(4, env.chain[3])
    first = _post(env.admin, bundle)
    again = _post(env.admin, bundle)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    other = KeySigner.from_pem(generate_private_key_pem())
    statement = Checkpoint(4, env.chain[3], "2026-12-02T10:00:00.000000Z").statement()
    third = _post(env.admin, other.sign(canonical_json(statement, "test statement")).bundle)
    assert third.status_code == 201
    assert third.json()["seq"] == first.json()["seq"] + 1
    registry = env.reg.registry()
    try:
        assert [e.action for e in registry.audit_log()[4:]] == ["audit.checkpoint"] * 2
        assert registry.verify_audit() == 6
    finally:
        registry.close()


def _other_predicate(_env: Env) -> bytes:
    statement = Checkpoint(1, "0" * 64, "2026-12-02T10:00:00.000000Z").statement()
    return _signed({**statement, "predicateType": "https://example.com/other/v1"})


def _wrong_subject(env: Env) -> bytes:
    statement = Checkpoint(1, env.chain[0], "2026-12-02T10:00:00.000000Z").statement()
    statement["subject"][0]["digest"]["sha256"] = env.chain[1]
    return _signed(statement)


Body = Callable[[Env], bytes]
#: name -> (client: admin, reader, admin of some models, none), body, status, error type
CASES: dict[str, tuple[str, Body, int, str]] = {
    "no token": ("none", lambda e: _checkpoint(4, e.chain[3]), 401, "AuthenticationError"),
    "a reader on every model": (
        "reader",
        lambda e: _checkpoint(4, e.chain[3]),
        403,
        "PermissionDeniedError",
    ),
    "an admin of some models": (
        "narrow admin",
        lambda e: _checkpoint(4, e.chain[3]),
        403,
        "PermissionDeniedError",
    ),
    "an empty body": ("admin", lambda _e: b"", 422, "InvalidInputError"),
    "not a bundle": ("admin", lambda _e: b"not a bundle", 400, "MalformedSignatureError"),
    "a statement that is not a checkpoint": (
        "admin",
        _other_predicate,
        422,
        "MalformedDocumentError",
    ),
    "a subject that is not the hash": ("admin", _wrong_subject, 422, "MalformedDocumentError"),
    "an entry beyond the head": (
        "admin",
        lambda _e: _checkpoint(1000, "a" * 64),
        400,
        "AuditChainError",
    ),
    "another hash for an entry": (
        "admin",
        lambda e: _checkpoint(3, e.chain[1]),
        400,
        "AuditChainError",
    ),
    "the genesis sequence with a hash": (
        "admin",
        lambda e: _checkpoint(0, e.chain[0]),
        400,
        "AuditChainError",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_checkpoint_is_refused_and_writes_nothing(env: Env, case: str) -> None:
    who, body, status, kind = CASES[case]
    clients: dict[str, Callable[[], httpx.Client]] = {
        "admin": lambda: env.admin,
        "reader": lambda: env.server.client(token(env.reg, "reader", name="reader")),
        "narrow admin": lambda: env.server.client(
            token(env.reg, "admin", name="ops", models=("m",))
        ),
        "none": env.server.client,
    }
    client = clients[who]()
    content = body(env)
    before = state_without_audit(env.reg)
    answer = _post(client, content)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] == kind, error
    assert "\n" not in error["message"]
    after = state_without_audit(env.reg)
    denied = status in (401, 403)
    # A refused token is audited (its denial, nothing else); a refused body is not.
    assert after.pop("audit_rows") == before.pop("audit_rows") + (1 if denied else 0)
    assert after == before
    registry = env.reg.registry()
    try:
        actions = [e.action for e in registry.audit_log()]
    finally:
        registry.close()
    assert "audit.checkpoint" not in actions
    if denied:
        assert actions[-1] == "access.denied"
