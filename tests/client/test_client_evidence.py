"""Evidence over HTTP: ``sign DIR --name N`` against a real ``mlprov serve`` stores the
same signed documents a local ``sign`` stores, so the gate sees the same evidence; bad
document requests change nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlprov.client import HttpRegistry
from mlprov.registry import VersionInput
from mlprov.registry.evidence import version_statements
from support.client_mode import client_cli, losing_proxy, lying_proxy
from support.gate_env import LOCAL_BUILDER, GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model, one_line_error
from support.server_process import ServerProcess, running_server, state_without_audit, token

POLICY = """
- signatures: {count: 1, signers: [trainer]}
- provenance: {builders: [trainer], build_types: ['https://mlprov.dev/training/v1']}
"""


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log") as running:
        yield running


def _kinds_and_predicates(reg: RegistryEnv, ref: str) -> list[tuple[str, str, str]]:
    registry = reg.registry()
    try:
        return [
            (e.kind, e.predicate_type, e.media_type) for e in registry.get_version(ref).evidence
        ]
    finally:
        registry.close()


def _checks(report: str) -> list[tuple[str, str]]:
    return [(c["id"], c["status"]) for c in json.loads(report)["checks"]]


def test_sign_over_http_stores_what_a_local_sign_stores(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    env.apply(POLICY)
    publisher = token(reg, "publisher", name="ci")
    reader = token(reg, "reader", name="serving")
    model = make_model(tmp_path / "remote")
    signed = client_cli(
        server.base_url,
        publisher,
        "sign",
        str(model),
        "--name",
        "m",
        "--key",
        str(env.key_file("trainer")),
        "--metric",
        "auc=0.9",
        "--json",
    )
    assert signed.returncode == 0, signed.stderr
    env.sign_version("local", tmp_path / "local", metrics={"auc": 0.9})

    remote = _kinds_and_predicates(reg, "m/1")
    assert [k for k, _p, _m in remote] == ["signature", "provenance", "bom", "model-card"]
    assert remote == _kinds_and_predicates(reg, "local/1")

    # The server's own checks see them: the local verify of its database passes, with the
    # documents verified against the registry's trust, and the gate's provenance rule too.
    verified = reg.cli("verify", "m/1", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    local = reg.cli("verify", "local/1", "--json")
    assert local.returncode == 0, local.stdout + local.stderr
    assert _checks(verified.stdout) == _checks(local.stdout)
    assert ("evidence.provenance", "passed") in _checks(verified.stdout)
    checked = client_cli(
        server.base_url, reader, "policy", "check", "m/1", "--target", "production"
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = client_cli(server.base_url, reader, "versions", "show", "m/1", "--json")
    assert listed.returncode == 0, listed.stderr


def test_bad_document_requests_change_nothing(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    publisher = token(reg, "publisher", name="ci")
    reader = token(reg, "reader", name="serving")
    trainer = env.signer("trainer")
    client = HttpRegistry(server.base_url, publisher, retries=0)
    try:
        bare = client.sign_and_register(
            make_model(tmp_path / "a"),
            "m",
            trainer,
            VersionInput(builder_id=LOCAL_BUILDER),
            write_signature=False,
            with_documents=False,
        ).version
        unsigned = client.register(make_model(tmp_path / "b", {"w.bin": "other"}), "m")
    finally:
        client.close()
    assert [e.kind for e in bare.evidence] == ["signature"]
    statements = {kind: stmt for kind, _p, stmt in version_statements(bare)}

    def bundles(signer_name: str = "trainer", **changed: bytes) -> dict[str, str]:
        signer = env.signer(signer_name)
        return {
            kind: base64.b64encode(signer.sign(changed.get(kind, stmt)).bundle).decode()
            for kind, stmt in statements.items()
        }

    http = server.client(publisher)
    url = "/api/v1/models/m/versions/1/documents"
    lying = statements["provenance"].replace(b"mlprov.dev/builders/local", b"evil.example/b")
    cases = [
        ("a statement the record does not give", bundles(provenance=lying), 400, "Verification"),
        ("another signer than the model's", bundles("mallory"), 400, "VerificationError"),
        ("a kind missing", {"bom": bundles()["bom"]}, 422, "InvalidInputError"),
        ("not base64", {**bundles(), "bom": "%%%"}, 422, "InvalidInputError"),
        ("not a bundle", {**bundles(), "bom": base64.b64encode(b"{}").decode()}, 400, "Ver"),
        ("an unknown field", None, 422, "ValidationError"),
    ]
    before = state_without_audit(reg)
    for what, body, status, kind in cases:
        sent = {"documents": body} if body is not None else {"documents": {}, "x": 1}
        answer = http.post(url, json=sent)
        assert answer.status_code == status, (what, answer.text)
        assert set(answer.json()) == {"error"}, what
        assert answer.json()["error"]["type"].startswith(kind), (what, answer.text)
        assert "Traceback" not in answer.text, what
    # An unsigned version has no model signer whose documents these could be.
    answer = http.post(
        f"/api/v1/models/m/versions/{unsigned.version}/documents",
        json={"documents": bundles()},
    )
    assert answer.status_code == 422, answer.text
    # A reader may not add evidence (403, audited in its own entry).
    assert server.client(reader).post(url, json={"documents": bundles()}).status_code == 403
    after = state_without_audit(reg)
    assert after.pop("audit_rows") == before.pop("audit_rows") + 1
    assert after == before

    # The right documents are stored once; the same request again returns them; any
    # other set afterwards is a conflict.
    good = bundles()
    first = http.post(url, json={"documents": good})
    assert first.status_code == 201, first.text
    again = http.post(url, json={"documents": good})
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    settled = state_without_audit(reg)
    conflict = http.post(url, json={"documents": bundles()})
    assert conflict.status_code == 409, conflict.text
    assert state_without_audit(reg) == settled
    assert [k for k, _p, _m in _kinds_and_predicates(reg, "m/1")] == [
        "signature",
        "provenance",
        "bom",
        "model-card",
    ]


def test_documents_whose_answer_is_lost_are_stored_once(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    publisher = token(reg, "publisher", name="ci")
    with losing_proxy(server.base_url, "/documents") as proxy:
        client = HttpRegistry(proxy.base_url, publisher, timeout=30, retries=3)
        client.transport.backoff = 0.01
        try:
            signed = client.sign_and_register(
                make_model(tmp_path / "model"), "m", env.signer("trainer"), write_signature=False
            )
        finally:
            client.close()
    sent = [path for method, path, _key in proxy.seen if path.endswith("/documents")]
    assert sent == ["/api/v1/models/m/versions/1/documents"] * 2
    assert proxy.lost == 1
    kinds = ["signature", "provenance", "bom", "model-card"]
    assert [e.kind for e in signed.version.evidence] == kinds
    assert [k for k, _p, _m in _kinds_and_predicates(reg, "m/1")] == kinds


def test_documents_refused_leave_the_version_signed_without_them_and_say_so(
    reg: RegistryEnv, env: GateEnv, server: ServerProcess, tmp_path: Path
) -> None:
    """The server's answer to the registration is altered (a record the server did not
    make): the documents the client then signs are not the server's statements, so they
    are refused; the command fails saying the version is registered and signed."""

    def other_time(path: str, body: bytes) -> bytes:
        if not path.endswith("/versions"):
            return body
        record = json.loads(body)
        record["created_at"] = "2001-01-01T00:00:00Z"
        return json.dumps(record).encode()

    publisher = token(reg, "publisher", name="ci")
    with lying_proxy(server.base_url, other_time) as proxy:
        model = make_model(tmp_path / "model")
        failed = client_cli(
            proxy.base_url,
            publisher,
            "sign",
            str(model),
            "--name",
            "m",
            "--key",
            str(env.key_file("trainer")),
        )
    assert failed.returncode == 1, failed.stderr
    line = one_line_error(failed.stderr)
    assert "m/1 is registered and signed, but storing its provenance" in line, line
    assert "not the statement" in line, line
    assert [k for k, _p, _m in _kinds_and_predicates(reg, "m/1")] == ["signature"]
    assert (model / "model.sig").is_file()

    # Against the real server, the documents can be signed and stored afterwards.
    client = HttpRegistry(server.base_url, publisher, retries=0)
    try:
        stored = client.add_documents(client.get_version("m/1"), env.signer("trainer"))
    finally:
        client.close()
    assert [e.kind for e in stored] == ["provenance", "bom", "model-card"]
    kinds = [k for k, _p, _m in _kinds_and_predicates(reg, "m/1")]
    assert kinds == ["signature", "provenance", "bom", "model-card"]
