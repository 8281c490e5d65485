"""Deployments through a real ``mlprov serve`` process, on SQLite and PostgreSQL: the
publisher creates and releases (the statement signed here, by the client), the promoter
moves the alias through the gate, and refused or stale requests change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlprov.registry import DatasetInput
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv
from support.server_process import running_server, state_without_audit, token

BASIC = """
- signatures: {count: 1, signers: [trainer]}
- id: auc
  metric: "auc >= 0.9"
"""

DEPLOYMENTS = """\
version: 1
deployments:
  - name: stack-prod
    deployments: ['*']
    targets:
      aliases: [production]
    require:
      - members_pass: true
"""


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    made = gate_env(reg, tmp_path)
    (made.folder / "deployments.yaml").write_text(DEPLOYMENTS)
    made.apply(BASIC)
    for name, auc in (("enc", 0.95), ("rank", 0.5)):
        made.sign_version(
            name,
            tmp_path / name,
            metrics={"auc": auc},
            datasets=[DatasetInput("corpus", "s3://d/c", "sha256:" + "12" * 32)],
        )
    return made


def _audited_only(reg: RegistryEnv, before: dict[str, Any], entries: int, events: int = 0) -> None:
    """Nothing changed but ``entries`` new audit entries (a refusal or a denial) and
    ``events`` outbox events (a denied move is a ``move.denied`` event)."""
    after = state_without_audit(reg)
    assert after["audit_rows"] == before["audit_rows"] + entries
    rows_after, rows_before = dict(after["rows"]), dict(before["rows"])
    assert rows_after.pop("outbox_events") == rows_before.pop("outbox_events") + events
    assert rows_after == rows_before
    assert {k: v for k, v in after.items() if k not in ("audit_rows", "rows")} == {
        k: v for k, v in before.items() if k not in ("audit_rows", "rows")
    }


def test_publisher_releases_a_client_signed_statement_and_promoter_moves_the_alias(
    env: GateEnv, tmp_path: Path
) -> None:
    reg = env.reg
    publisher = token(reg, "publisher")
    promoter = token(reg, "promoter")
    reader = token(reg, "reader")
    trainer = env.signer("trainer")
    with running_server(reg, tmp_path / "server.log") as server:
        pub = server.client(publisher)
        before = state_without_audit(reg)
        refused = server.client(reader).post("/api/v1/deployments", json={"name": "stack"})
        assert refused.status_code == 403, refused.text
        _audited_only(reg, before, 1)
        created = pub.post("/api/v1/deployments", json={"name": "stack"})
        assert created.status_code == 201, created.text
        clash = pub.post("/api/v1/deployments", json={"name": "enc"})
        assert clash.status_code == 409, clash.text

        members = {"members": {"encoder": "enc/1", "ranker": "rank/1"}, "metadata": {"t": "1"}}
        statement = pub.post("/api/v1/deployments/stack/statement", json=members)
        assert statement.status_code == 200, statement.text
        assert json.loads(statement.content)["predicate"]["version"] == 1
        bundle = trainer.sign(statement.content).bundle
        # A statement binding a member by another digest than its own is refused.
        encoder_hex = json.loads(statement.content)["subject"][0]["digest"]["sha256"].encode()
        other = trainer.sign(statement.content.replace(encoder_hex, b"ab" * 32)).bundle
        before = state_without_audit(reg)
        wrong = pub.post("/api/v1/deployments/stack/versions", content=other)
        assert wrong.status_code == 422, wrong.text
        _audited_only(reg, before, 0)
        released = pub.post("/api/v1/deployments/stack/versions", content=bundle)
        assert released.status_code == 201, released.text
        assert released.json()["version"] == 1
        assert released.headers["Location"] == "/api/v1/deployments/stack/versions/1"
        # The same statement again names version 1, which is taken now: 409, nothing stored.
        before = state_without_audit(reg)
        stale = pub.post("/api/v1/deployments/stack/versions", content=bundle)
        assert stale.status_code == 409, stale.text
        _audited_only(reg, before, 0)
        stored = pub.get("/api/v1/deployments/stack/versions/1/bundle")
        assert stored.content == bundle

        # The ranker fails its own policy (auc): the promoter's move is denied, audited.
        move = server.client(promoter)
        before = state_without_audit(reg)
        denied = move.put("/api/v1/models/stack/aliases/production", json={"version": 1})
        assert denied.status_code == 403, denied.text
        assert "members_pass" in denied.text
        _audited_only(reg, before, 1, events=1)
        # A promoter moves aliases; it may not release.
        assert move.post("/api/v1/deployments/stack/versions", content=bundle).status_code == 403

        statement = pub.post(
            "/api/v1/deployments/stack/statement", json={"members": {"encoder": "enc/1"}}
        )
        bundle = trainer.sign(statement.content).bundle
        assert pub.post("/api/v1/deployments/stack/versions", content=bundle).status_code == 201
        moved = move.put("/api/v1/models/stack/aliases/production", json={"version": 2})
        assert moved.status_code == 200, moved.text
        assert moved.json()["alias"]["version"] == 2
        shown = server.client(reader).get("/api/v1/deployments/stack").json()
        assert shown["aliases"] == {"production": 2}
        assert [v["version"] for v in shown["versions"]] == [1, 2]
        listed = server.client(reader).get("/api/v1/deployments").json()
        assert [d["name"] for d in listed] == ["stack"]
    registry = reg.registry()
    try:
        actions = [(e.action, e.actor) for e in registry.audit_log()[-3:]]
        assert actions[-1][0] == "deployment.alias.set"
        assert actions[-1][1].startswith("token:")
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
