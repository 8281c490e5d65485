"""Real ``python -m mlprov serve`` processes on free loopback ports, and HTTP clients for
them: what every server test talks to (no in-process app, no mocks)."""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.registry_env import RegistryEnv


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """A client (closed when the server stops), with the token as bearer if given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **kwargs)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_server(
    reg: RegistryEnv,
    log: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> ServerProcess:
    """Start ``mlprov serve`` on the registry ``reg`` names; return once ``/readyz`` says
    ready (or fail with the server's output)."""
    for _attempt in range(3):
        try:
            return _start_server(reg, log, workers=workers, env=env, timeout=timeout)
        except PortTakenError:
            # Another test process (pytest-xdist) bound the free port first: pick again.
            continue
    return _start_server(reg, log, workers=workers, env=env, timeout=timeout)


class PortTakenError(AssertionError):
    """The port found free was bound by someone else before the server could bind it."""


def _start_server(
    reg: RegistryEnv,
    log: Path,
    *,
    workers: int,
    env: Mapping[str, str] | None,
    timeout: float,
) -> ServerProcess:
    port = free_port()
    environment = dict(reg.env)
    environment.update(env or {})
    # The server's own warnings are not the tests' business (uvicorn's are not errors).
    environment.pop("PYTHONWARNINGS", None)
    handle = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlprov",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=environment,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = server.log_text()
            if "address already in use" in output.lower():
                raise PortTakenError(output)
            raise AssertionError(f"mlprov serve exited {process.returncode}: {output}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"mlprov serve was not ready in {timeout}s: {server.log_text()}")


@contextmanager
def running_server(reg: RegistryEnv, log: Path, **kwargs: Any) -> Iterator[ServerProcess]:
    server = start_server(reg, log, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def token(
    reg: RegistryEnv, role: str, *, name: str | None = None, models: tuple[str, ...] = ("*",)
) -> str:
    """A new token's secret (made through the registry, as `mlprov token create` does)."""
    registry = reg.registry()
    try:
        return str(registry.create_token(role, name=name or f"{role}-token", models=models).secret)
    finally:
        registry.close()


def upload(client: httpx.Client, data: bytes) -> str:
    """PUT one blob; its SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    response = client.put(f"/api/v1/blobs/{digest}", content=data)
    assert response.status_code == 201, response.text
    return digest


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def state_without_audit(reg: RegistryEnv) -> dict[str, Any]:
    """The registry's state but for its audit log (refused requests append to it)."""
    snapshot = reg.snapshot()
    rows = dict(snapshot["rows"])
    audit_rows = rows.pop("audit_log")
    snapshot["rows"] = rows
    snapshot.pop("audit_head")
    snapshot["audit_rows"] = audit_rows
    return snapshot
