"""The pure part of webhooks: which audit actions are events, what a subscription may say
and which events it receives, the signature, the back-off."""

from __future__ import annotations

import json

import pytest

from mlprov.errors import InvalidInputError
from mlprov.events import (
    EVENT_TYPES,
    WebhookSettings,
    backoff_delay,
    check_event_types,
    check_model_patterns,
    check_webhook_url,
    event_for,
    event_type_for,
    model_of,
    signature,
    subscription_matches,
)


@pytest.mark.parametrize(
    ("action", "details", "expected"),
    [
        ("version.register", {}, "version.registered"),
        ("evidence.add", {"kind": "signature"}, "evidence.added"),
        ("evidence.add", {"kind": "provenance"}, "evidence.added"),
        ("evidence.add", {"kind": "approval"}, "approval.added"),
        ("evidence.add", {"kind": "waiver"}, None),
        ("waiver.grant", {}, "waiver.added"),
        ("alias.set", {}, "alias.moved"),
        ("alias.rollback", {}, "alias.moved"),
        ("alias.delete", {}, "alias.moved"),
        ("stage.set", {}, "stage.moved"),
        ("alias.set.denied", {}, "move.denied"),
        ("alias.rollback.denied", {}, "move.denied"),
        ("alias.delete.denied", {}, "move.denied"),
        ("stage.set.denied", {}, "move.denied"),
        ("revocation.add", {}, "revocation.added"),
        ("model.create", {}, None),
        ("version.tag", {}, None),
        ("policy.apply", {}, None),
        ("audit.checkpoint", {}, None),
        ("webhook.add", {}, None),
    ],
)
def test_audit_actions_map_to_event_types(
    action: str, details: dict[str, str], expected: str | None
) -> None:
    assert event_type_for(action, details) == expected
    assert expected is None or expected in EVENT_TYPES


@pytest.mark.parametrize(
    ("action", "subject", "model"),
    [
        ("version.register", "credit-risk/3", "credit-risk"),
        ("alias.set", "credit-risk@prod", "credit-risk"),
        ("revocation.add", "m.v2/1", "m.v2"),
        ("revocation.add", "key:ab12", None),
        ("revocation.add", "identity:mallory@example.com", None),
    ],
)
def test_the_model_an_event_is_about(action: str, subject: str, model: str | None) -> None:
    assert model_of(action, subject) == model


def test_an_event_payload_is_canonical_json_of_its_audit_entry() -> None:
    event = event_for(
        seq=7,
        at="2026-12-01T10:00:00.000000Z",
        actor="ci@host",
        action="alias.rollback",
        subject="m@prod",
        details_text='{"from":3,"generation":4,"to":2}',
        reason="bad release",
    )
    assert event is not None
    assert (event.type, event.model) == ("alias.moved", "m")
    body = json.loads(event.payload)
    assert body == {
        "id": event.event_id,
        "type": "alias.moved",
        "time": "2026-12-01T10:00:00.000000Z",
        "actor": "ci@host",
        "model": "m",
        "subject": "m@prod",
        "action": "alias.rollback",
        "reason": "bad release",
        "details": {"from": 3, "generation": 4, "to": 2},
        "audit_seq": 7,
    }
    assert event.payload == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert (
        event_for(
            seq=1, at="", actor="", action="model.create", subject="m", details_text="{}", reason=""
        )
        is None
    )


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # Computed independently: printf '1700000000.{"type":"alias.moved"}' |
    # openssl dgst -sha256 -hmac whsec_test
    assert signature("whsec_test", "1700000000", b'{"type":"alias.moved"}') == (
        "sha256=8b47a15ced35c350adcfc0648d5924e67d899be62aa24dcc3cf821dc8a3fc31c"
    )


@pytest.mark.parametrize(
    ("events", "models", "event_type", "model", "expected"),
    [
        ((), (), "alias.moved", "m", True),
        (("alias.moved",), (), "alias.moved", "m", True),
        (("alias.moved",), (), "version.registered", "m", False),
        ((), ("cr-*",), "alias.moved", "cr-a", True),
        ((), ("cr-*",), "alias.moved", "credit", False),
        ((), ("risk?",), "alias.moved", "risk1", True),
        ((), ("risk?",), "alias.moved", "risk12", False),
        ((), ("*",), "revocation.added", None, False),
        ((), (), "revocation.added", None, True),
    ],
)
def test_which_subscriptions_receive_an_event(
    events: tuple[str, ...],
    models: tuple[str, ...],
    event_type: str,
    model: str | None,
    expected: bool,
) -> None:
    assert subscription_matches(events, models, event_type, model) is expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://hooks.example.com/mlprov?team=ml",
        "https://[::1]:9443/",
    ],
)
def test_good_webhook_urls(url: str) -> None:
    assert check_webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "one http(s) URL"),
        ("https://example.com/" + "a" * 2048, "one http(s) URL"),
        ("https://example.com/\n", "one http(s) URL"),
        ("file:///etc/passwd", "http:// or https://"),
        ("ws://example.com/socket", "http:// or https://"),
        ("https://", "no host"),
        ("https://user@example.com/", "credentials"),
        ("https://:pw@example.com/", "credentials"),
        ("https://example.com/#x", "fragment"),
        ("https://example.com:99999/", "does not parse"),
        ("http://[::1/", "does not parse"),
        ("https://example.com:0/", "port 0"),
    ],
)
def test_bad_webhook_urls(url: str, words: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_webhook_url(url)
    assert words in caught.value.message


def test_event_types_and_model_patterns_are_checked() -> None:
    assert check_event_types(["move.denied", " alias.moved", "move.denied", ""]) == (
        "alias.moved",
        "move.denied",
    )
    with pytest.raises(InvalidInputError, match=r"unknown event type 'alias\.set'"):
        check_event_types(["alias.set"])
    assert check_model_patterns(["cr-*", "a?", "cr-*"]) == ("a?", "cr-*")
    for bad in ("Credit", "a/b", "[ab]", "x" * 129):
        with pytest.raises(InvalidInputError, match="model pattern"):
            check_model_patterns([bad])


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    settings = WebhookSettings(backoff_base=10, backoff_cap=60)
    for attempts, full in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = [backoff_delay(settings, attempts) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > full / 10  # jittered, not fixed


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": 301},
        {"max_attempts": 0},
        {"backoff_base": 10, "backoff_cap": 5},
        {"batch_size": 0},
        {"concurrency": 0},
    ],
)
def test_bad_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        WebhookSettings(**options)  # type: ignore[arg-type]
