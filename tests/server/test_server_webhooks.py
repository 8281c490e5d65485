"""``mlprov serve`` delivers webhooks itself: a move made over HTTP reaches a real
loopback receiver, signed, from the server's own dispatcher thread; a receiver that is
down holds up no request."""

from __future__ import annotations

import json
import time
from pathlib import Path

from support.registry_env import RegistryEnv, make_model
from support.server_process import running_server, token
from support.webhook_receiver import closed_port_url, webhook_receiver


def _register_and_subscribe(reg: RegistryEnv, tmp_path: Path, url: str) -> str:
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "m"), "m")
        return str(registry.add_webhook(url, events=("alias.moved",)).secret)
    finally:
        registry.close()


def test_a_move_over_http_is_delivered_by_the_servers_dispatcher(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    with webhook_receiver() as receiver:
        secret = _register_and_subscribe(reg, tmp_path, receiver.url)
        promoter = token(reg, "promoter")
        with running_server(reg, tmp_path / "server.log") as server:
            moved = server.client(promoter).put(
                "/api/v1/models/m/aliases/production", json={"version": 1}
            )
            assert moved.status_code == 200, moved.text
            deadline = time.monotonic() + 30
            while not receiver.received() and time.monotonic() < deadline:
                time.sleep(0.1)
        (request,) = receiver.received()
    assert request.headers["x-mlprov-event"] == "alias.moved"
    assert request.signature_valid(secret)
    event = json.loads(request.body)
    assert event["subject"] == "m@production"
    assert event["actor"].startswith("token:promoter-token")
    registry = reg.registry()
    try:
        (delivery,) = registry.webhook_deliveries()
        assert delivery.state == "delivered"
    finally:
        registry.close()


def test_a_receiver_that_is_down_holds_up_no_request(reg: RegistryEnv, tmp_path: Path) -> None:
    _register_and_subscribe(reg, tmp_path, closed_port_url())
    promoter = token(reg, "promoter")
    with running_server(reg, tmp_path / "server.log") as server:
        client = server.client(promoter)
        for version in (1, None, 1):
            started = time.monotonic()
            if version is None:
                response = client.delete("/api/v1/models/m/aliases/production")
            else:
                response = client.put(
                    "/api/v1/models/m/aliases/production", json={"version": version}
                )
            assert response.status_code == 200, response.text
            assert time.monotonic() - started < 5
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            registry = reg.registry()
            try:
                attempts = [d.attempts for d in registry.webhook_deliveries()]
            finally:
                registry.close()
            if attempts and all(a >= 1 for a in attempts):
                break
            time.sleep(0.2)
    assert len(attempts) == 3
    assert all(a >= 1 for a in attempts)
