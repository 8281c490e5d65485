"""``mlprov serve --workers N`` on Linux: each worker accepts on a socket of its own
(SO_REUSEPORT), so kept-alive connections land on every worker; a worker that dies is
replaced, and workers that keep exiting stop the server with one line; SIGTERM stops
every worker; a worker whose supervisor was killed stops too; a port in use is one line
and exit 2. Real server processes on loopback, connections
counted from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.registry_env import RegistryEnv
from support.server_process import ServerProcess, free_port, running_server

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="a socket per worker is Linux's SO_REUSEPORT"
)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found.update(int(p) for p in text.split())
    return found


def _workers(server: ServerProcess, count: int, timeout: float = 60) -> set[int]:
    """The worker processes once ``count`` of them are up, each listening on the port."""
    port = int(server.base_url.rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # multiprocessing's resource tracker is a child too; workers are the spawned ones.
        pids = {p for p in _children(server.process.pid) if _is_worker(p)}
        listening = _sockets_to(port, "0A")  # 0A: LISTEN
        if len(pids) == count and all(_socket_inodes(p) & listening for p in pids):
            return pids
        time.sleep(0.1)
    raise AssertionError(f"not {count} workers in {timeout}s: {server.log_text()}")


def _is_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return b"spawn_main" in command and b"resource_tracker" not in command


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _sockets_to(port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets on local ``port`` in ``state`` (/proc/net/tcp's hex code)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == state:
            inodes.add(int(fields[9]))
    return inodes


@pytest.fixture
def server(reg: RegistryEnv, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(reg, tmp_path / "server.log", workers=2) as running:
        yield running


def test_kept_alive_connections_land_on_every_worker(server: ServerProcess) -> None:
    workers = _workers(server, 2)
    port = int(server.base_url.rsplit(":", 1)[1])
    # 32 connections hashed over 2 sockets all land on one with probability 2 ** -31.
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    try:
        for connection in connections:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for connection in connections:
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        established = _sockets_to(port, "01")  # 01: ESTABLISHED
        held = {pid: len(_socket_inodes(pid) & established) for pid in workers}
    finally:
        for connection in connections:
            connection.close()
    assert sum(held.values()) == 32, held
    assert all(count > 0 for count in held.values()), held


def test_a_killed_worker_is_replaced(server: ServerProcess) -> None:
    first = _workers(server, 2)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = {p for p in _children(server.process.pid) if _is_worker(p)}
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no replacement worker: {server.log_text()}")
    assert victim not in _workers(server, 2)  # both listening again
    assert f"worker {victim} exited" in server.log_text()
    for _ in range(20):
        assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200
    assert server.process.poll() is None


def test_workers_that_keep_exiting_stop_the_server_with_one_line(server: ServerProcess) -> None:
    """Five worker exits within a minute: something is wrong with every start, so the
    supervisor stops its other workers and exits 1 with one line, instead of restarting
    workers for ever."""
    killed: set[int] = set()
    deadline = time.monotonic() + 120
    while server.process.poll() is None and time.monotonic() < deadline:
        alive = {p for p in _children(server.process.pid) if _is_worker(p)} - killed
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.05)
    assert server.process.wait(timeout=60) == 1
    assert len(killed) >= 5, killed
    log = server.log_text()
    [line] = [line for line in log.splitlines() if "times within" in line]
    assert line.startswith("mlprov: error: workers exited 5 times within 60 s (last: exit code")
    assert line.endswith("stopping (see the log above)")
    assert "Traceback" not in log


def test_sigterm_stops_every_worker(server: ServerProcess) -> None:
    workers = _workers(server, 2)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=40) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_workers_stop_when_their_supervisor_is_killed(server: ServerProcess) -> None:
    workers = _workers(server, 2)
    server.process.kill()
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in workers
    ):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
    assert alive == []


def _serve(reg: RegistryEnv, port: int, workers: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in reg.env.items() if k != "PYTHONWARNINGS"}
    return subprocess.run(
        [sys.executable, "-m", "mlprov", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _in_use(result: subprocess.CompletedProcess[str], port: int) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"mlprov: error: cannot listen on 127.0.0.1:{port}: address already in use"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_is_one_line_and_exit_2(reg: RegistryEnv, workers: int) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        _in_use(_serve(reg, port, workers), port)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_another_servers_workers_listen_on_is_in_use(
    reg: RegistryEnv, server: ServerProcess, workers: int
) -> None:
    # The workers' sockets share the port among themselves (SO_REUSEPORT), not with a
    # second server.
    _workers(server, 2)
    port = int(server.base_url.rsplit(":", 1)[1])
    _in_use(_serve(reg, port, workers), port)
    assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MLPROV_SERVER_TOKEN_CACHE", "99"),
        ("MLPROV_SERVER_MAX_BODY", "lots"),
        ("MLPROV_SERVER_RATE", "fast"),
    ],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_server_setting_is_one_line_before_any_worker_starts(
    reg: RegistryEnv, name: str, value: str, workers: int
) -> None:
    port = free_port()
    env = {k: v for k, v in reg.env.items() if k != "PYTHONWARNINGS"} | {name: value}
    result = subprocess.run(
        [sys.executable, "-m", "mlprov", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "starting another" not in result.stderr  # no worker was started
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mlprov: error: {name}={value!r}"), result.stderr
