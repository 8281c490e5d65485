"""Small requests over http.client (``Transport.request`` without httpx; ADR 0049,
amendment "requests without httpx"): one kept-alive connection, a connection the server
closed while idle replaced without a retry being spent, parameters and JSON bodies encoded
byte for byte as httpx encodes them, errors as their MlprovError, and requests that must
not be repeated still sent through httpx. Against real HTTP servers on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from mlprov.client._transport import Transport, _query
from mlprov.errors import NotFoundError, StorageError
from support.loopback_http import clear_proxies, serving


@dataclass
class Seen:
    """What the server saw: each request (method, path, headers, body) and how many
    connections were opened."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    connections: int = 0


@contextmanager
def _json_server(*, close_when_idle: bool = False, slow: float = 0.0) -> Iterator[tuple[str, Seen]]:
    """Answers every request with ``{"path": ..., "n": ...}`` (200), ``/missing`` with an
    mlprov 404 body and ``/busy`` once with 503. With ``close_when_idle`` the server
    closes each connection right after answering without saying so (as a server's idle
    timeout does), so the client's next request on it finds it closed."""
    seen = Seen()
    busy = [True]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            seen.connections += 1

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.requests.append((self.command, self.path, headers, body))
            if self.path.endswith("/slow"):
                time.sleep(slow)
            status = 200
            payload: dict[str, Any] = {"path": self.path, "n": len(seen.requests)}
            if self.path.endswith("/missing"):
                status = 404
                payload = {"error": {"type": "NotFoundError", "message": "model x not found"}}
            elif self.path.endswith("/busy") and busy[0]:
                busy[0] = False
                status = 503
                payload = {"error": {"type": "StorageError", "message": "busy"}}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            if close_when_idle:
                self.close_connection = True

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, *_args: Any) -> None:
            pass

    with serving(Handler) as base:
        yield f"{base}/prefix", seen


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)


def test_gets_share_one_kept_alive_connection_with_the_token() -> None:
    with _json_server() as (base, seen):
        transport = Transport(base, "secret-token", timeout=10, retries=0)
        try:
            answers = [transport.json("GET", f"/api/v1/models/m{i}") for i in range(3)]
        finally:
            transport.close()
    assert [a["path"] for a in answers] == [f"/prefix/api/v1/models/m{i}" for i in range(3)]
    assert seen.connections == 1
    assert {r[2]["authorization"] for r in seen.requests} == {"Bearer secret-token"}
    assert {r[2]["user-agent"] for r in seen.requests} == {"mlprov-client"}


def test_a_connection_closed_while_idle_is_replaced_without_spending_a_retry() -> None:
    with _json_server(close_when_idle=True) as (base, seen):
        # retries=0: had the closed connection counted as a failed attempt, the second
        # request would fail.
        transport = Transport(base, None, timeout=10, retries=0)
        try:
            first = transport.json("GET", "/a")
            second = transport.json("GET", "/b")
            judged = transport.json("POST", "/check", json={"ref": "m/1"}, retry=True)
        finally:
            transport.close()
    assert (first["n"], second["n"], judged["n"]) == (1, 2, 3)
    assert seen.connections == 3


def test_a_slow_answer_on_a_kept_connection_is_not_sent_again_at_once() -> None:
    # A timeout says the server is slow, not that the kept connection was closed: the
    # request is not resent on a new connection (that would double the wait); only the
    # transport's retries, here none, may send it again.
    with _json_server(slow=1.5) as (base, seen):
        transport = Transport(base, None, timeout=0.5, retries=0)
        try:
            transport.json("GET", "/first")  # leaves a kept connection
            started = time.monotonic()
            with pytest.raises(StorageError, match="timed out"):
                transport.json("GET", "/slow")
            waited = time.monotonic() - started
        finally:
            transport.close()
        time.sleep(1.5)  # let the handler finish before counting
    assert [r[1] for r in seen.requests] == ["/prefix/first", "/prefix/slow"]
    assert waited < 1.0


def test_an_error_answer_is_its_mlprov_error_and_a_503_is_retried() -> None:
    with _json_server() as (base, seen):
        transport = Transport(base, None, timeout=10, retries=1)
        transport.backoff = 0.01
        try:
            with pytest.raises(NotFoundError, match="model x not found"):
                transport.json("GET", "/missing")
            assert transport.json("GET", "/busy")["path"] == "/prefix/busy"
        finally:
            transport.close()
    assert [r[1] for r in seen.requests] == ["/prefix/missing", "/prefix/busy", "/prefix/busy"]


def test_an_unreachable_server_is_one_storage_error() -> None:
    with _json_server() as (base, _seen):
        pass  # closed: nothing listens on its port any more
    transport = Transport(base, None, timeout=5, retries=1)
    transport.backoff = 0.01
    try:
        with pytest.raises(StorageError, match=r"cannot reach the registry server .*refused"):
            transport.json("GET", "/api/v1/models")
    finally:
        transport.close()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"limit": 5, "subject": None},
        {"with_ancestors": True, "force": False},
        {"reason": "roll back: p99 > 80 ms & errors ~ naïve", "ref": "text-enc/7"},
        {"as": "name with spaces/and+plus", "tag": ["a", "b"]},
    ],
    ids=["none", "none-dropped", "booleans", "reserved-characters", "spaces-and-lists"],
)
def test_parameters_are_encoded_as_httpx_encodes_them(params: dict[str, Any]) -> None:
    sent = {k: v for k, v in params.items() if v is not None}  # the transport drops None
    expected = httpx.Request("GET", "http://h/p", params=sent).url.query.decode("ascii")
    assert _query(params) == (f"?{expected}" if expected else "")


def test_a_json_body_is_the_bytes_httpx_sends() -> None:
    body = {"ref": "m/1", "target": "production", "note": "naïve ✓", "n": [1, 2.5, None]}
    with _json_server() as (base, seen):
        transport = Transport(base, None, timeout=10, retries=0)
        try:
            transport.json("POST", "/api/v1/policy/check", json=body, retry=True)
        finally:
            transport.close()
    method, _path, headers, received = seen.requests[0]
    assert method == "POST"
    assert received == httpx.Request("POST", "http://h/p", json=body).content
    assert headers["content-type"] == "application/json"


def test_a_request_that_must_not_be_repeated_goes_through_httpx() -> None:
    with _json_server(close_when_idle=True) as (base, seen):
        transport = Transport(base, None, timeout=10, retries=3)
        try:
            transport.json("GET", "/first")
            transport.json("POST", "/api/v1/models", json={"name": "m"})
        finally:
            transport.close()
    (_, _, direct, _), (_, _, through_httpx, _) = seen.requests
    # http.client asks for no encoding; httpx always offers gzip.
    assert direct.get("accept-encoding") == "identity"
    assert "gzip" in through_httpx.get("accept-encoding", "")
    assert len(seen.requests) == 2  # sent once: a POST without a key is never repeated
