"""The CLI run as a subprocess in client mode (``MLPROV_REGISTRY=http://...``), and a
loopback proxy that loses answers, for the client tests."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


def client_env(base_url: str, token: str | None) -> dict[str, str]:
    """An environment naming only the server: no database, no registry folder."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPROV_")}
    env.update(MLPROV_REGISTRY=base_url, PYTHONWARNINGS="error", MLPROV_RETRIES="1")
    if token is not None:
        env["MLPROV_TOKEN"] = token
    return env


def client_cli(
    base_url: str, token: str | None, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlprov", *args],
        env=client_env(base_url, token),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class LosingProxy:
    """Forwards every request to ``upstream``; the first answer to each request whose
    path ends with ``lose_suffix`` is thrown away and replaced by 503, as a load balancer
    whose backend answered too late would. ``seen`` records (method, path, key)."""

    upstream: str
    lose_suffix: str | None
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: (path, body) -> the body to answer instead: a server that lies.
    rewrite: Callable[[str, bytes], bytes] | None = None
    lost: int = 0
    base_url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                key = self.headers.get("Idempotency-Key")
                proxy.seen.append((self.command, self.path, key))
                with httpx.Client(base_url=proxy.upstream, timeout=60) as upstream:
                    answer = upstream.request(
                        self.command, self.path, content=body, headers=headers
                    )
                lose = proxy.lose_suffix is not None and self.path.endswith(proxy.lose_suffix)
                if lose and proxy.lost == 0:
                    proxy.lost += 1
                    self._send(503, b'{"error": {"type": "Unavailable", "message": "lost"}}')
                    return
                content = answer.content
                if proxy.rewrite is not None:
                    content = proxy.rewrite(self.path, content)
                self._send(answer.status_code, content, answer.headers.get("content-type"))

            def _send(self, status: int, body: bytes, kind: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *_args: Any) -> None:
                pass

        return Handler


@contextmanager
def losing_proxy(upstream: str, lose_suffix: str) -> Iterator[LosingProxy]:
    with _serving(LosingProxy(upstream, lose_suffix)) as proxy:
        yield proxy


@contextmanager
def lying_proxy(upstream: str, rewrite: Callable[[str, bytes], bytes]) -> Iterator[LosingProxy]:
    """A proxy that answers every request with ``rewrite(path, body)`` of the server's
    body: a compromised or lying server, seen from the client."""
    with _serving(LosingProxy(upstream, None, rewrite=rewrite)) as proxy:
        yield proxy


@contextmanager
def _serving(proxy: LosingProxy) -> Iterator[LosingProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), proxy.handler())
    proxy.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
