"""Audit checkpoints against a real ``mlprov serve`` (ADR 0055 and its amendment):
``audit checkpoint`` recomputes the chain the server sends (``GET /api/v1/audit/chain``),
signs its head here and has the server record it (``POST /api/v1/audit/checkpoints``,
the ``audit.checkpoint`` entry a local checkpoint writes, by the token); ``audit verify
--checkpoint`` verifies the checkpoint here and recomputes the chain here, so a server
(or a proxy) that rewrote, rehashed or truncated its history is caught (exit 1), and so
is an entry edited in the database."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlprov.audit import GENESIS_HASH, Checkpoint, entry_hash
from mlprov.client import HttpRegistry
from mlprov.errors import AuditChainError, MalformedDocumentError
from mlprov.records import AuditEntry
from support.client_mode import client_cli, lying_proxy
from support.registry_env import RegistryEnv, execute, make_model, one_line_error
from support.server_process import ServerProcess, running_server, state_without_audit, token


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _history(reg: RegistryEnv, tmp_path: Path) -> None:
    """Five audit entries: a model, two versions, an alias set and moved."""
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "a", {"w.bin": b"a"}), "m")  # 1, 2
        registry.register(make_model(tmp_path / "b", {"w.bin": b"b"}), "m")  # 3
        registry.set_alias("m", "prod", 2, reason="launch")  # 4
        registry.set_alias("m", "prod", 1, reason="regression")  # 5
    finally:
        registry.close()


def _keys(reg: RegistryEnv, tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "auditor.pem", tmp_path / "auditor.pub"
    reg.cli("keys", "generate", "--out", str(private), check=True)
    reg.cli("keys", "public", str(private), "--out", str(public), check=True)
    return private, public


def _rewritten(body: bytes, seq: int, reason: str) -> bytes:
    """The chain with entry ``seq``'s reason changed and every later hash, link and the
    head recomputed: a chain that verifies on its own."""
    chain = json.loads(body)
    prev = GENESIS_HASH
    for entry in chain["entries"]:
        if entry["seq"] == seq:
            entry["reason"] = reason
        entry["prev_hash"] = prev
        entry["hash"] = entry_hash(**{k: v for k, v in entry.items() if k != "hash"})
        prev = entry["hash"]
    chain["head"]["hash"] = prev
    return json.dumps(chain).encode()


def _checkpoint_entries(reg: RegistryEnv) -> list[AuditEntry]:
    registry = reg.registry()
    try:
        return [e for e in registry.audit_log() if e.action == "audit.checkpoint"]
    finally:
        registry.close()


def test_checkpoint_over_http_is_recorded_by_the_server_then_verifies_over_http(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _history(reg, tmp_path)
    private, public = _keys(reg, tmp_path)
    auditor = token(reg, "admin", name="auditor")
    mark = tmp_path / "checkpoint.json"
    registry = reg.registry()
    try:
        sequence, head, _entries = registry.audit_chain()
    finally:
        registry.close()
    made = client_cli(
        server.base_url, auditor, "audit", "checkpoint", "--key", str(private), "--out", str(mark)
    )
    assert made.returncode == 0, made.stderr
    statement = json.loads(
        base64.b64decode(json.loads(mark.read_text())["dsseEnvelope"]["payload"])
    )
    assert statement["predicateType"] == "https://mlprov.dev/audit-checkpoint/v1"
    # Five entries of history and the auditor's token.create.
    assert statement["predicate"]["sequence"] == sequence == 6
    assert statement["predicate"]["hash"] == head
    # Signed here, recorded there: one entry, right after the head it names, by the
    # token, with the details a local checkpoint with the same key writes.
    [recorded] = _checkpoint_entries(reg)
    assert recorded.seq == 7
    assert recorded.actor.startswith("token:auditor ")
    assert recorded.subject == "audit"
    local = reg.cli("audit", "checkpoint", "--key", str(private), "--out", str(tmp_path / "l"))
    assert local.returncode == 0, local.stderr
    here = _checkpoint_entries(reg)[-1]
    assert json.loads(recorded.details) == {
        "sequence": 6,
        "hash": head,
        "signer": json.loads(here.details)["signer"],
    }
    # The log grows; the checkpoint still holds, over HTTP and where the database is.
    registry = reg.registry()
    try:
        registry.tag_model("m", {"after": "checkpoint"})
    finally:
        registry.close()
    reader = token(reg, "reader", name="reader")
    trust = ("--checkpoint", str(mark), "--key", str(public))
    checked = client_cli(server.base_url, reader, "audit", "verify", *trust)
    assert checked.returncode == 0, checked.stderr
    # 6, the checkpoint over HTTP, the local one, the tag and the reader's token.
    assert "audit log intact: 10 entries, and it extends the checkpoint" in checked.stdout
    assert reg.cli("audit", "verify", *trust).returncode == 0
    # Without --key the checkpoint's signer is unknown: exit 2 before any request.
    untrusted = client_cli(server.base_url, reader, "audit", "verify", "--checkpoint", str(mark))
    assert untrusted.returncode == 2, untrusted.stderr
    one_line_error(untrusted.stderr)


@pytest.mark.parametrize(
    ("rewrite", "words"),
    [
        (lambda body: _rewritten(body, 2, "nothing to see"), "audit entry 6 was rewritten"),
        (
            lambda body: json.dumps(
                {
                    "head": {
                        "sequence": 3,
                        "hash": json.loads(body)["entries"][2]["hash"],
                    },
                    "entries": json.loads(body)["entries"][:3],
                }
            ).encode(),
            "audit log truncated",
        ),
    ],
    ids=["rewritten and rehashed", "truncated"],
)
def test_a_server_that_rewrote_its_history_fails_verify_here(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path, rewrite: Any, words: str
) -> None:
    _history(reg, tmp_path)
    private, public = _keys(reg, tmp_path)
    auditor = token(reg, "admin", name="auditor")
    mark = tmp_path / "checkpoint.json"
    made = client_cli(
        server.base_url, auditor, "audit", "checkpoint", "--key", str(private), "--out", str(mark)
    )
    assert made.returncode == 0, made.stderr

    def lie(path: str, body: bytes) -> bytes:
        return rewrite(body) if path.startswith("/api/v1/audit/chain?") else body

    before = reg.snapshot()
    with lying_proxy(server.base_url, lie) as proxy:
        result = client_cli(
            proxy.base_url,
            auditor,
            "audit",
            "verify",
            "--checkpoint",
            str(mark),
            "--key",
            str(public),
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert words in one_line_error(result.stderr)
    assert result.stdout == ""
    assert reg.snapshot() == before


def test_an_entry_edited_in_the_database_fails_verify_over_http(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _history(reg, tmp_path)
    private, public = _keys(reg, tmp_path)
    auditor = token(reg, "admin", name="auditor")
    mark = tmp_path / "checkpoint.json"
    made = client_cli(
        server.base_url, auditor, "audit", "checkpoint", "--key", str(private), "--out", str(mark)
    )
    assert made.returncode == 0, made.stderr
    execute(reg, "UPDATE audit_log SET reason = ? WHERE seq = ?", "approved by the board", 4)
    before = reg.snapshot()
    result = client_cli(
        server.base_url, auditor, "audit", "verify", "--checkpoint", str(mark), "--key", str(public)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "audit entry 4 (alias.set m@prod) was modified" in one_line_error(result.stderr)
    assert reg.snapshot() == before
    # A checkpoint of a broken chain is refused as well, and nothing is written.
    again = client_cli(
        server.base_url,
        auditor,
        "audit",
        "checkpoint",
        "--key",
        str(private),
        "--out",
        str(tmp_path / "second.json"),
    )
    assert again.returncode == 1, again.stderr
    one_line_error(again.stderr)
    assert not (tmp_path / "second.json").exists()
    assert reg.snapshot() == before  # refused here, before anything was posted


def test_the_audit_chain_needs_a_token_for_every_model(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path
) -> None:
    """The whole registry's log, as ``audit log``: a token limited to some models is 403
    (exit 6), before anything is signed or written."""
    _history(reg, tmp_path)
    private, _public = _keys(reg, tmp_path)
    narrow = token(reg, "reader", name="team", models=("m",))
    mark = tmp_path / "checkpoint.json"
    result = client_cli(
        server.base_url, narrow, "audit", "checkpoint", "--key", str(private), "--out", str(mark)
    )
    assert result.returncode == 6, result.stderr
    one_line_error(result.stderr)
    assert not mark.exists()


def test_a_reader_may_read_the_chain_but_not_record_a_checkpoint(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path
) -> None:
    """Recording a checkpoint is the ``audit`` action (admin), as a local checkpoint:
    a reader on every model reads and recomputes the chain, then the POST is 403 (exit
    6, audited as a denial) and no checkpoint file is written."""
    _history(reg, tmp_path)
    private, _public = _keys(reg, tmp_path)
    reader = token(reg, "reader", name="auditor")
    mark = tmp_path / "checkpoint.json"
    before = state_without_audit(reg)
    result = client_cli(
        server.base_url, reader, "audit", "checkpoint", "--key", str(private), "--out", str(mark)
    )
    assert result.returncode == 6, result.stderr
    assert "audit" in one_line_error(result.stderr)
    assert not mark.exists()
    after = state_without_audit(reg)
    assert after.pop("audit_rows") == before.pop("audit_rows") + 1
    assert after == before
    registry = reg.registry()
    try:
        denial = registry.audit_log()[-1]
    finally:
        registry.close()
    assert denial.action == "access.denied"
    assert denial.actor.startswith("token:auditor ")
    assert _checkpoint_entries(reg) == []


def test_the_chain_comes_in_pages_and_verifies_across_them(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path
) -> None:
    _history(reg, tmp_path)
    reader = token(reg, "reader", name="auditor")  # entry 6
    page = server.client(reader).get("/api/v1/audit/chain", params={"after": 2, "limit": 2})
    assert page.status_code == 200, page.text
    document = page.json()
    assert [e["seq"] for e in document["entries"]] == [3, 4]
    assert document["next"] == 4
    assert document["head"]["sequence"] == 6
    last = server.client(reader).get("/api/v1/audit/chain", params={"after": 4, "limit": 5})
    assert [e["seq"] for e in last.json()["entries"]] == [5, 6]
    assert last.json()["next"] is None
    for bad in ({"limit": 0}, {"limit": 5001}, {"after": -1}, {"after": 2**31}):
        refused = server.client(reader).get("/api/v1/audit/chain", params=bad)
        assert refused.status_code == 422, (bad, refused.text)
    registry = reg.registry()
    try:
        local = registry.audit_chain()
    finally:
        registry.close()
    client = HttpRegistry(server.base_url, reader)
    try:
        client.audit_page = 2  # three pages of two
        assert client.audit_chain() == local
        # Walked page by page (one page held at a time), with a checkpoint of entry 3.
        mark = Checkpoint(3, local[2][2].hash, "2026-01-01T00:00:00.000000Z")
        assert client.verified_audit_chain(mark) == (6, local[1])
        # The checkpoint names a hash entry 3 does not have: the history was rewritten.
        forged = Checkpoint(3, "ab" * 32, "2026-01-01T00:00:00.000000Z")
        with pytest.raises(AuditChainError, match="audit entry 3 was rewritten"):
            client.verified_audit_chain(forged)
        # An entry edited in the database, on the last page: found when that page is walked.
        execute(reg, "UPDATE audit_log SET reason = ? WHERE seq = ?", "edited", 5)
        with pytest.raises(AuditChainError, match=r"audit entry 5 .* was modified"):
            client.verified_audit_chain()
    finally:
        client.close()


def test_a_page_that_does_not_move_on_is_refused(
    reg: RegistryEnv, server: ServerProcess, tmp_path: Path
) -> None:
    """A server answering every page with the same ``next`` would keep the client asking
    for ever: a ``next`` that does not advance is a malformed answer."""
    _history(reg, tmp_path)
    reader = token(reg, "reader", name="auditor")

    def stuck(path: str, body: bytes) -> bytes:
        if not path.startswith("/api/v1/audit/chain?"):
            return body
        document = json.loads(body)
        document["next"] = 0
        return json.dumps(document).encode()

    with lying_proxy(server.base_url, stuck) as proxy:
        client = HttpRegistry(proxy.base_url, reader)
        try:
            with pytest.raises(MalformedDocumentError, match="'next' is 0 after 0"):
                client.audit_chain()
        finally:
            client.close()
