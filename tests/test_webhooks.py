"""Webhooks: events written to the outbox in the same transaction as their change, and
delivered after commit by dispatchers, signed, retried, logged, never twice at once.

Every test runs on SQLite and PostgreSQL and delivers to a real HTTP server on a loopback
port (tests/support/webhook_receiver.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlprov.config import RegistryConfig
from mlprov.errors import ConflictError, MlprovError, NotFoundError, PolicyDenied
from mlprov.events import EVENT_TYPES, WebhookSettings
from mlprov.records import ModelVersion, Stage
from mlprov.registry import (
    Dispatcher,
    Gate,
    GateDecision,
    PointerMove,
    Registry,
    open_registry,
)
from mlprov.signing import KeySigner, generate_private_key_pem
from support.registry_env import RegistryEnv, execute, make_model, one_line_error
from support.webhook_receiver import closed_port_url, webhook_receiver

#: Quick to retry, quick to give up: what the tests drive with a simulated clock.
FAST = WebhookSettings(timeout=2.0, max_attempts=3, backoff_base=10.0, backoff_cap=100.0)


class DenyVersion(Gate):
    """Denies every move to ``version``; allows the rest."""

    def __init__(self, version: int) -> None:
        self.version = version

    def _decide(
        self, move: PointerMove, target: ModelVersion | None, current: ModelVersion | None
    ) -> GateDecision:
        if move.to_version == self.version:
            return GateDecision(False, (f"version {self.version} is refused",), "sha256:ab")
        return GateDecision(True, (), "sha256:ab")


def _open(reg: RegistryEnv, gate: Gate | None = None) -> Registry:
    return open_registry(
        RegistryConfig(home=reg.home, metadata_uri=reg.metadata_uri), actor="tester@ci", gate=gate
    )


@pytest.fixture
def registry(reg: RegistryEnv) -> Iterator[Registry]:
    opened: Registry = reg.registry()
    yield opened
    opened.close()


def _register(registry: Registry, tmp_path: Path, name: str, content: str) -> int:
    folder = make_model(tmp_path / f"{name}-{content}", {"w.bin": content})
    return registry.register(folder, name).version


def _drain(dispatcher: Dispatcher, now: datetime | None = None) -> None:
    for _ in range(20):
        if not dispatcher.run_once(now).did_work:
            return
    raise AssertionError("the dispatcher kept finding work")


# -- the outbox ------------------------------------------------------------------------


def test_every_event_type_lands_in_the_outbox_with_its_audit_entry(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    signer = KeySigner.from_pem(generate_private_key_pem())
    registry = _open(reg, DenyVersion(9))
    try:
        registry.register(make_model(tmp_path / "a", {"w.bin": "one"}), "cr-a")
        registry.register(make_model(tmp_path / "b", {"w.bin": "two"}), "cr-a")
        for n in range(3, 10):
            _register(registry, tmp_path, "cr-a", f"version {n}")
        registry.attest("cr-a/2", "https://example.com/eval/v1", {"auc": 0.9}, signer)
        registry.approve("cr-a/2", "production", signer, comment="ok")
        registry.waive(
            "cr-a/2", "production", signer, reason="hotfix", expires_in=timedelta(hours=1)
        )
        registry.set_alias("cr-a", "production", 2)
        registry.set_alias("cr-a", "production", 1)  # a rollback
        registry.set_stage("cr-a", 2, Stage.STAGING)
        with pytest.raises(PolicyDenied):
            registry.set_alias("cr-a", "production", 9)
        registry.delete_alias("cr-a", "production")
        registry.revoke(reason="bad data", signer=signer, version="cr-a/1")
        registry.revoke(reason="left", signer=signer, identity="mallory@example.com")
        events = registry.outbox()
        entries = {e.seq: e for e in registry.audit_log()}
        assert registry.verify_audit() == len(entries)
    finally:
        registry.close()

    # Imports have their own test (tests/test_transfer.py: an import's events).
    imports = {"version.imported", "deployment.imported"}
    assert {e.type for e in events} == set(EVENT_TYPES) - imports
    seen = []
    for event in events:
        body = json.loads(event.payload)
        entry = entries[event.audit_seq]
        # The payload is the audit entry, as canonical JSON made once.
        assert body["audit_seq"] == entry.seq
        assert (body["action"], body["subject"], body["actor"]) == (
            entry.action,
            entry.subject,
            "tester@ci",
        )
        assert (body["time"], body["reason"]) == (entry.at, entry.reason)
        assert body["details"] == json.loads(entry.details)
        assert (body["id"], body["type"], body["model"]) == (
            event.event_id,
            event.type,
            event.model,
        )
        assert event.payload == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        seen.append((event.type, entry.action, event.model))
    # Only the entries that are events: not model.create, not the waiver's evidence entry.
    assert [s for s in seen if s[0] != "version.registered"] == [
        ("evidence.added", "evidence.add", "cr-a"),
        ("approval.added", "evidence.add", "cr-a"),
        ("waiver.added", "waiver.grant", "cr-a"),
        ("alias.moved", "alias.set", "cr-a"),
        ("alias.moved", "alias.rollback", "cr-a"),
        ("stage.moved", "stage.set", "cr-a"),
        ("move.denied", "alias.set.denied", "cr-a"),
        ("alias.moved", "alias.delete", "cr-a"),
        ("revocation.added", "revocation.add", "cr-a"),
        ("revocation.added", "revocation.add", None),
    ]
    assert len(seen) == 9 + 10


def test_a_denied_move_writes_its_denial_and_event_and_nothing_else(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    registry = _open(reg, DenyVersion(2))
    try:
        _register(registry, tmp_path, "m", "one")
        _register(registry, tmp_path, "m", "two")
        before = reg.snapshot()
        with pytest.raises(PolicyDenied):
            registry.set_stage("m", 2, Stage.PRODUCTION)
        after = reg.snapshot()
        changed = {k for k in after["rows"] if after["rows"][k] != before["rows"][k]}
        assert changed == {"audit_log", "outbox_events"}
        assert after["rows"]["outbox_events"] == before["rows"]["outbox_events"] + 1
        [event] = registry.outbox(limit=1)
        body = json.loads(event.payload)
        assert (event.type, body["action"], body["subject"]) == (
            "move.denied",
            "stage.set.denied",
            "m/2",
        )
        assert body["details"]["decision"]["allowed"] is False
        assert body["audit_seq"] == registry.audit_log()[-1].seq
    finally:
        registry.close()


def _refuse_outbox_insert(reg: RegistryEnv, event_type: str) -> None:
    """A database trigger that fails the outbox insert of one event type, so the write
    transaction carrying it rolls back after its earlier statements ran."""
    if reg.metadata_uri.startswith("sqlite"):
        execute(
            reg,
            "CREATE TRIGGER refuse_event BEFORE INSERT ON outbox_events "
            f"WHEN NEW.type = '{event_type}' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        return
    execute(
        reg,
        "CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN "
        f"IF NEW.type = '{event_type}' THEN RAISE EXCEPTION 'refused'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
    )
    execute(
        reg,
        "CREATE TRIGGER refuse_event BEFORE INSERT ON outbox_events "
        "FOR EACH ROW EXECUTE FUNCTION refuse_event()",
    )


def test_a_rolled_back_mutation_leaves_no_event_and_no_change(
    reg: RegistryEnv, registry: Registry, tmp_path: Path
) -> None:
    """A signed registration writes four evidence events before its version event; when
    that last insert fails, the version, its evidence, its audit entries and every one of
    its events roll back together."""
    signer = KeySigner.from_pem(generate_private_key_pem())
    _register(registry, tmp_path, "m", "one")
    _refuse_outbox_insert(reg, "version.registered")
    before = reg.snapshot()
    with pytest.raises(MlprovError):
        registry.sign_and_register(
            make_model(tmp_path / "signed", {"w.bin": "two"}), "m", signer, write_signature=False
        )
    after = reg.snapshot()
    assert after["rows"] == before["rows"]
    assert after["audit_head"] == before["audit_head"]
    assert [v.version for v in registry.list_versions("m")] == [1]
    # The same transaction without the refused event commits everything, events included.
    execute(
        reg,
        "DROP TRIGGER refuse_event" + ("" if "sqlite" in reg.metadata_uri else " ON outbox_events"),
    )
    registry.sign_and_register(
        make_model(tmp_path / "signed2", {"w.bin": "two"}), "m", signer, write_signature=False
    )
    types = [e.type for e in registry.outbox()]
    assert types[-1] == "version.registered"
    assert types.count("evidence.added") == 4
    assert registry.verify_audit() == len(registry.audit_log())


# -- delivery --------------------------------------------------------------------------


def test_a_delivery_is_signed_and_carries_the_event_exactly(
    registry: Registry, tmp_path: Path
) -> None:
    with webhook_receiver() as receiver:
        hook = registry.add_webhook(receiver.url + "/hooks", events=["alias.moved"])
        _register(registry, tmp_path, "m", "one")
        registry.set_alias("m", "prod", 1, reason="release")
        started = time.time()
        report = Dispatcher(registry, FAST).run_once()
        assert (report.fanned_out, report.created, report.delivered) == (2, 1, 1)
        [request] = receiver.received()
    [event] = [e for e in registry.outbox() if e.type == "alias.moved"]
    [delivery] = registry.webhook_deliveries()
    assert request.path == "/hooks"
    assert request.body == event.payload
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-mlprov-event"] == "alias.moved"
    assert request.headers["x-mlprov-delivery"] == str(delivery.id)
    assert abs(int(request.headers["x-mlprov-timestamp"]) - started) < 30
    assert request.signature_valid(hook.secret)
    assert not request.signature_valid(hook.secret + "x")
    body = json.loads(request.body)
    assert (body["type"], body["subject"], body["reason"]) == ("alias.moved", "m@prod", "release")
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    assert delivery.event_id == body["id"] == event.event_id
    # Nothing is sent twice: the next pass finds nothing to do.
    assert not Dispatcher(registry, FAST).run_once().did_work


def test_subscriptions_filter_by_event_type_and_model_pattern(
    registry: Registry, tmp_path: Path
) -> None:
    with webhook_receiver() as receiver:
        registry.add_webhook(receiver.url + "/moves", events=["alias.moved", "stage.moved"])
        registry.add_webhook(receiver.url + "/credit", models=["cr-*", "risk?"])
        registry.add_webhook(receiver.url + "/all")
        gone = registry.add_webhook(receiver.url + "/removed")
        registry.remove_webhook(gone.id)
        for name in ("cr-a", "risk1", "other"):
            _register(registry, tmp_path, name, "one")
            registry.set_alias(name, "prod", 1)
        _drain(Dispatcher(registry, FAST))
        got: dict[str, list[tuple[str, str]]] = {}
        for request in receiver.received():
            body = json.loads(request.body)
            got.setdefault(request.path, []).append((body["type"], body["subject"]))
    assert sorted(got["/moves"]) == [
        ("alias.moved", "cr-a@prod"),
        ("alias.moved", "other@prod"),
        ("alias.moved", "risk1@prod"),
    ]
    assert sorted(got["/credit"]) == [
        ("alias.moved", "cr-a@prod"),
        ("alias.moved", "risk1@prod"),
        ("version.registered", "cr-a/1"),
        ("version.registered", "risk1/1"),
    ]
    assert len(got["/all"]) == 6
    assert "/removed" not in got


def test_a_failing_receiver_is_retried_with_backoff_then_failed_and_can_be_redelivered(
    registry: Registry, tmp_path: Path
) -> None:
    with webhook_receiver(status=500) as receiver:
        registry.add_webhook(receiver.url, events=["alias.moved"])
        _register(registry, tmp_path, "m", "one")
        registry.set_alias("m", "prod", 1)
        dispatcher = Dispatcher(registry, FAST)
        t0 = datetime.now(timezone.utc)
        assert dispatcher.run_once(t0).retrying == 1
        [first] = registry.webhook_deliveries()
        wait = _seconds(first.next_attempt_at, t0)
        assert 5.0 <= wait <= 10.0  # base 10 s, jittered to half..all of it
        assert (first.state, first.attempts, first.last_status) == ("pending", 1, 500)
        assert first.last_error == "HTTP 500"
        # Not due yet: nothing is sent.
        assert dispatcher.run_once(t0 + timedelta(seconds=4)).claimed == 0
        t1 = t0 + timedelta(seconds=10.5)
        assert dispatcher.run_once(t1).retrying == 1
        [second] = registry.webhook_deliveries()
        assert 10.0 <= _seconds(second.next_attempt_at, t1) <= 20.0  # doubled
        t2 = t1 + timedelta(seconds=21)
        assert dispatcher.run_once(t2).failed == 1
        [failed] = registry.webhook_deliveries(state="failed")
        assert (failed.attempts, failed.last_status) == (3, 500)
        assert len(receiver.received()) == 3
        # Failed is final: later passes send nothing.
        assert dispatcher.run_once(t2 + timedelta(days=1)).claimed == 0
        assert len(receiver.received()) == 3

        # A failed delivery is sent again as a new delivery, which may not be redelivered
        # while it is pending.
        again = registry.redeliver(failed.id)
        assert (again.state, again.attempts, again.event_id) == ("pending", 0, failed.event_id)
        with pytest.raises(ConflictError):
            registry.redeliver(again.id)
        receiver.status = 204
        _drain(dispatcher)
        delivered = {d.id: d for d in registry.webhook_deliveries()}
        requests = receiver.received()
    assert delivered[again.id].state == "delivered"
    assert delivered[failed.id].state == "failed"  # the log keeps the failed one as it was
    assert len(requests) == 4
    assert requests[-1].body == requests[0].body
    assert requests[-1].headers["x-mlprov-delivery"] == str(again.id)
    assert [e.action for e in registry.audit_log()][-1] == "webhook.redeliver"
    with pytest.raises(NotFoundError):
        registry.redeliver(999_999)


def _seconds(text: str, since: datetime) -> float:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (moment - since).total_seconds()


def test_a_slow_or_absent_receiver_never_slows_or_fails_an_operation(
    registry: Registry, tmp_path: Path
) -> None:
    absent = closed_port_url()
    registry.add_webhook(absent)
    with webhook_receiver(delay=5.0) as slow:
        registry.add_webhook(slow.url)
        _register(registry, tmp_path, "m", "one")
        started = time.monotonic()
        assert registry.set_alias("m", "prod", 1) is not None
        assert time.monotonic() - started < 2.0
        # The operation committed and delivered nothing: that is the dispatcher's job.
        assert registry.get_alias("m", "prod").version == 1
        assert slow.received() == []
        assert registry.webhook_deliveries() == []
        assert {e.dispatched for e in registry.outbox()} == {False}

        started = time.monotonic()
        report = Dispatcher(registry, WebhookSettings(timeout=0.5)).run_once()
        assert time.monotonic() - started < 4.0  # bounded by the timeout, not the receiver
    assert (report.claimed, report.retrying) == (4, 4)
    errors = {d.url: d.last_error for d in registry.webhook_deliveries()}
    assert errors[slow.url] == "timed out after 0.5 s"
    assert str(errors[absent]).startswith("ConnectError: ")


def test_redirects_are_not_followed(registry: Registry, tmp_path: Path) -> None:
    with webhook_receiver(status=302) as receiver:
        registry.add_webhook(receiver.url)
        _register(registry, tmp_path, "m", "one")
        assert Dispatcher(registry, FAST).run_once().retrying == 1
        assert len(receiver.received()) == 1
    [delivery] = registry.webhook_deliveries()
    assert (delivery.last_status, delivery.last_error) == (
        302,
        "HTTP 302 (redirects are not followed)",
    )


def test_marking_events_dispatched_is_one_compare_and_set_for_the_batch(
    registry: Registry, tmp_path: Path
) -> None:
    # The fan-out marks its whole batch in one statement; each event is won once.
    for n in range(3):
        _register(registry, tmp_path, "m", f"v{n}")
    ids = [e.id for e in registry.outbox()]
    assert len(ids) == 3
    store = registry._context.metadata
    with store.write() as tx:
        assert tx.webhooks.mark_dispatched(ids[:1]) == {ids[0]}
    with store.write() as tx:
        # The first is taken already: only the others are this caller's.
        assert tx.webhooks.mark_dispatched(ids) == set(ids[1:])
        assert tx.webhooks.mark_dispatched([]) == set()
    with store.write() as tx:
        assert tx.webhooks.mark_dispatched(ids) == set()
    assert all(e.dispatched for e in registry.outbox())


def test_two_dispatchers_deliver_each_delivery_exactly_once(
    reg: RegistryEnv, registry: Registry, tmp_path: Path
) -> None:
    with webhook_receiver(delay=0.02) as receiver:
        registry.add_webhook(receiver.url + "/a")
        registry.add_webhook(receiver.url + "/b")
        for n in range(6):
            _register(registry, tmp_path, "m", f"v{n}")
            registry.set_alias("m", "prod", n + 1)
        expected = len(registry.outbox()) * 2
        settings = WebhookSettings(timeout=5.0, batch_size=3, concurrency=2)
        reports: list[Any] = []
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def run() -> None:
            own = reg.registry()  # its own connections, as a second replica would have
            try:
                dispatcher = Dispatcher(own, settings)
                start.wait()
                for _ in range(100):
                    reports.append(dispatcher.run_once())
                    undispatched = [e for e in own.outbox() if not e.dispatched]
                    if not undispatched and not own.webhook_deliveries(state="pending"):
                        return
            except BaseException as e:  # reported below, in the test's thread
                errors.append(e)
            finally:
                own.close()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        received = receiver.received()
    ids = [r.headers["x-mlprov-delivery"] for r in received]
    assert len(ids) == len(set(ids)) == expected
    assert sum(r.created for r in reports) == expected
    assert sum(r.fanned_out for r in reports) == expected // 2
    assert sum(r.delivered for r in reports) == expected
    assert {d.state for d in registry.webhook_deliveries()} == {"delivered"}
    assert sum(1 for r in reports if r.claimed) >= 2


def test_run_forever_delivers_until_stopped(registry: Registry, tmp_path: Path) -> None:
    with webhook_receiver() as receiver:
        registry.add_webhook(receiver.url, events=["version.registered"])
        stop = threading.Event()
        dispatcher = Dispatcher(registry, FAST)
        thread = threading.Thread(target=dispatcher.run_forever, args=(stop, 0.05))
        thread.start()
        try:
            _register(registry, tmp_path, "m", "one")
            deadline = time.monotonic() + 20
            while not receiver.received() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=20)
        assert not thread.is_alive()
        assert [json.loads(r.body)["subject"] for r in receiver.received()] == ["m/1"]


# -- the CLI ---------------------------------------------------------------------------


def test_cli_adds_lists_dispatches_and_removes_webhooks_audited(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    with webhook_receiver() as receiver:
        added = reg.cli(
            "webhook",
            "add",
            receiver.url,
            "--events",
            "alias.moved,version.registered",
            "--models",
            "m*",
            "--json",
            check=True,
        )
        hook = json.loads(added.stdout)
        assert hook["secret"].startswith("whsec_")
        assert len(hook["secret"]) > 40
        assert (hook["events"], hook["models"]) == (["alias.moved", "version.registered"], ["m*"])
        listed = reg.cli("webhook", "list", "--json", check=True).stdout
        assert hook["secret"] not in listed
        assert [w["id"] for w in json.loads(listed)] == [hook["id"]]
        reg.cli("register", str(make_model(tmp_path / "m")), "--name", "m", "--no-git", check=True)
        dispatched = reg.cli("webhook", "dispatch", "--once", "--json", check=True)
        assert json.loads(dispatched.stdout)["delivered"] == 1
        [request] = receiver.received()
        assert request.signature_valid(hook["secret"])
    log = json.loads(reg.cli("webhook", "deliveries", "--json", check=True).stdout)
    assert [(d["webhook"], d["type"], d["state"]) for d in log] == [
        (hook["id"], "version.registered", "delivered")
    ]
    again = json.loads(
        reg.cli("webhook", "redeliver", str(log[0]["id"]), "--json", check=True).stdout
    )
    assert again["state"] == "pending"
    assert "removed" in reg.cli("webhook", "remove", str(hook["id"]), check=True).stdout
    assert json.loads(reg.cli("webhook", "list", "--json", check=True).stdout) == []
    log = json.loads(
        reg.cli("webhook", "deliveries", "--state", "failed", "--json", check=True).stdout
    )
    assert [(d["id"], d["last_error"]) for d in log] == [
        (again["id"], "webhook removed before delivery")
    ]
    registry = reg.registry()
    try:
        audit = [e for e in registry.audit_log() if e.action.startswith("webhook.")]
        assert [(e.action, e.subject) for e in audit] == [
            ("webhook.add", f"webhook:{hook['id']}"),
            ("webhook.redeliver", f"webhook:{hook['id']}"),
            ("webhook.remove", f"webhook:{hook['id']}"),
        ]
        assert all(hook["secret"] not in e.details for e in registry.audit_log())
    finally:
        registry.close()
    assert reg.cli("audit", "verify").returncode == 0


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["add", "ftp://example.com/hook"], 2, "http:// or https://"),
        (["add", "https://user:pw@example.com/hook"], 2, "credentials"),
        (["add", "https:///nohost"], 2, "no host"),
        (["add", "example.com/hook"], 2, "http:// or https://"),
        (["add", "https://example.com/a b"], 2, "one http(s) URL"),
        (["add", "https://example.com/", "--events", "alias.moved,alias.set"], 2, "unknown event"),
        (["add", "https://example.com/", "--models", "Credit/*"], 2, "model pattern"),
        (["remove", "99"], 4, "webhook 99 not found"),
        (["remove", "1"], 4, "webhook 1 not found"),  # removed already
        (["redeliver", "99"], 4, "delivery 99 not found"),
        (["deliveries", "--webhook", "99"], 4, "webhook 99 not found"),
        (["deliveries", "--state", "lost"], 2, "unknown delivery state"),
        (["dispatch", "--once", "--timeout", "0"], 2, "timeout"),
        (["dispatch", "--interval", "0"], 2, "--interval"),
    ],
    ids=[
        "ftp",
        "credentials",
        "no host",
        "no scheme",
        "space",
        "unknown event",
        "bad pattern",
        "unknown webhook",
        "removed webhook",
        "unknown delivery",
        "deliveries of unknown webhook",
        "unknown state",
        "zero timeout",
        "zero interval",
    ],
)
def test_cli_bad_input_is_one_line_and_changes_nothing(
    reg: RegistryEnv, args: list[str], code: int, words: str
) -> None:
    registry = reg.registry()
    try:
        registry.remove_webhook(registry.add_webhook("https://example.com/old").id)
    finally:
        registry.close()
    before = reg.snapshot()
    result = reg.cli("webhook", *args)
    assert result.returncode == code, result.stderr
    assert words in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_redelivering_a_pending_delivery_is_a_conflict(
    reg: RegistryEnv, registry: Registry, tmp_path: Path
) -> None:
    registry.add_webhook(closed_port_url())
    _register(registry, tmp_path, "m", "one")
    Dispatcher(registry, FAST).run_once()
    [pending] = registry.webhook_deliveries(state="pending")
    before = reg.snapshot()
    result = reg.cli("webhook", "redeliver", str(pending.id))
    assert result.returncode == 3
    assert "still pending" in one_line_error(result.stderr)
    assert reg.snapshot() == before


def test_a_receiver_url_is_checked_before_anything_is_written(registry: Registry) -> None:
    for url in ("javascript:alert(1)", "http://[::1", "https://example.com/#frag", ""):
        with pytest.raises(MlprovError) as caught:
            registry.add_webhook(url)
        assert caught.value.exit_code == 2
    assert registry.webhooks(include_removed=True) == []


def test_cli_dispatch_runs_until_sigterm(reg: RegistryEnv, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    with webhook_receiver() as receiver:
        reg.cli("webhook", "add", receiver.url, "--events", "version.registered", check=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "mlprov", "webhook", "dispatch", "--interval", "0.1"],
            env=reg.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            reg.cli(
                "register", str(make_model(tmp_path / "m")), "--name", "m", "--no-git", check=True
            )
            deadline = time.monotonic() + 60
            while not receiver.received() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert err == ""
        assert "dispatching webhooks every 0.1 s" in out
        assert [json.loads(r.body)["subject"] for r in receiver.received()] == ["m/1"]


def test_a_claim_held_by_a_dead_dispatcher_lapses_and_the_delivery_is_sent_once(
    registry: Registry, tmp_path: Path
) -> None:
    with webhook_receiver(status=503) as receiver:
        registry.add_webhook(receiver.url, events=["version.registered"])
        _register(registry, tmp_path, "m", "one")
        dispatcher = Dispatcher(registry, FAST)
        t0 = datetime.now(timezone.utc)
        assert dispatcher.run_once(t0).retrying == 1  # due again within 10 s
        [delivery] = registry.webhook_deliveries()
        receiver.status = 200
        # Another dispatcher claims it when it is due, and dies before posting.
        t1 = t0 + timedelta(seconds=11)
        with registry.metadata.write() as tx:
            until = _text(t1 + FAST.lease)
            assert tx.webhooks.claim(delivery.id, owner="dead", now=_text(t1), until=until)
            assert not tx.webhooks.claim(delivery.id, owner="other", now=_text(t1), until=until)
        assert dispatcher.run_once(t1 + timedelta(seconds=5)).claimed == 0
        assert len(receiver.received()) == 1
        assert dispatcher.run_once(t1 + FAST.lease + timedelta(seconds=1)).delivered == 1
        assert len(receiver.received()) == 2
    [done] = registry.webhook_deliveries()
    assert (done.state, done.attempts, done.claimed_by) == ("delivered", 2, None)
    # The dead dispatcher's late result is refused: the claim is no longer its own.
    with registry.metadata.write() as tx:
        assert not tx.webhooks.record_attempt(
            done.id,
            owner="dead",
            attempts=2,
            state="failed",
            next_attempt_at=_text(t1),
            status=None,
            error="late",
            at=_text(t1),
        )
    assert registry.webhook_deliveries()[0].state == "delivered"


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_two_dispatcher_processes_deliver_each_delivery_exactly_once(
    reg: RegistryEnv, registry: Registry, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    with webhook_receiver(delay=0.01) as receiver:
        for path in ("/a", "/b", "/c"):
            registry.add_webhook(receiver.url + path)
        for n in range(5):
            _register(registry, tmp_path, "m", f"v{n}")
        expected = len(registry.outbox()) * 3
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "mlprov", "webhook", "dispatch", "--interval", "0.05"],
                env=reg.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 90
            while len(receiver.received()) < expected and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # a duplicate, if any, would arrive now
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            errors = [process.communicate(timeout=30)[1] for process in processes]
        assert [p.returncode for p in processes] == [0, 0], errors
        received = receiver.received()
    ids = [r.headers["x-mlprov-delivery"] for r in received]
    assert len(ids) == len(set(ids)) == expected
    deliveries = registry.webhook_deliveries()
    assert len(deliveries) == expected
    assert {(d.state, d.attempts) for d in deliveries} == {("delivered", 1)}
