"""``mlprov serve --workers N``: N server processes, each accepting on a socket of its own.

uvicorn's own workers share one listening socket, and whichever process wakes first
accepts a burst of new connections; kept-alive clients then stay where they landed. Under
the server benchmark's 16 clients one worker held 11 to 15 of the connections while the
other idled (docs/benchmarks.md). Here each worker binds its own socket to the same
address with ``SO_REUSEPORT`` and the kernel spreads new connections over the listening
sockets by a hash of each connection's addresses and ports (Linux 3.9 and later).

The parent process only supervises (ADR 0049, amendment "a socket per worker"): it holds
the address bound (not listening, so the kernel never hands it a connection) from before
the first worker starts until the last one stopped, so the port cannot be taken in
between and a port in use is one line; it starts a new worker in place of one that died;
and on SIGINT or SIGTERM it asks every worker to stop (uvicorn finishes the requests in
flight) and waits for them.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from multiprocessing.context import SpawnProcess
from typing import Any

from mlprov.errors import ConfigError, StorageError

__all__ = ["reuse_port_supported", "serve_one", "serve_workers"]

#: The application factory every worker serves (uvicorn's ``factory=True``).
APP = "mlprov.server:app_from_environment"
#: A worker that exits this many times within FAILURE_WINDOW seconds is not restarted
#: again: something is wrong with every start, not with one process.
MOST_FAILURES = 5
FAILURE_WINDOW = 60.0
#: How long a stopping worker may take to finish its requests before it is killed.
STOP_TIMEOUT = 30.0
_BACKLOG = 2048


def reuse_port_supported() -> bool:
    """Whether the kernel spreads connections over sockets bound with ``SO_REUSEPORT``
    (Linux does; the BSDs' option of that name lets the last socket take them all)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _bound(host: str, port: int, *, shared: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _worker(host: str, port: int, options: Mapping[str, Any], parent: int) -> None:
    """One worker process: its own listening socket, one uvicorn server on it."""
    import uvicorn  # noqa: PLC0415

    _stop_when_orphaned(parent)
    try:
        sock = _bound(host, port)
        sock.listen(_BACKLOG)
    except OSError as e:
        # One line, as every error; the supervisor starts another or gives up.
        sys.stderr.write(f"mlprov: error: worker cannot listen on {host}:{port}: {e.strerror}\n")
        sys.exit(1)
    config = uvicorn.Config(APP, factory=True, **options)
    # uvicorn handles SIGINT and SIGTERM itself: it stops accepting, finishes the requests
    # in flight and runs the application's shutdown. A Ctrl-C before its handlers are
    # installed ends the worker quietly (the supervisor stops too).
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


def _stop_when_orphaned(parent: int) -> None:
    """Stop this worker (gracefully, as SIGTERM does) once its supervisor is gone, killed
    without the chance to stop it: a worker left behind would keep serving the port."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mlprov-supervisor-watch", daemon=True).start()


def _address(host: str, port: int, *, shared: bool) -> socket.socket:
    """``host:port`` bound (``shared``: with SO_REUSEPORT, for the workers to bind too),
    or one line naming why not (in use: exit 2)."""
    try:
        # Bound without SO_REUSEPORT first: a port any process listens on, another
        # mlprov serve's workers included, is in use (it would not be for a shared bind).
        sock = _bound(host, port, shared=False)
        if not shared:
            return sock
        sock.close()
        return _bound(host, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"cannot listen on {host}:{port}: address already in use") from None
        raise StorageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def serve_one(host: str, port: int, options: Mapping[str, Any]) -> None:
    """One server in this process on ``host:port`` until SIGINT or SIGTERM."""
    import uvicorn  # noqa: PLC0415

    sock = _address(host, port, shared=False)
    sock.listen(_BACKLOG)
    uvicorn.Server(uvicorn.Config(APP, factory=True, **options)).run(sockets=[sock])


def serve_workers(host: str, port: int, workers: int, options: Mapping[str, Any]) -> int:
    """Run ``workers`` server processes on ``host:port`` until SIGINT or SIGTERM; the
    exit status (0 when stopped by a signal, 1 when workers kept failing)."""
    reserved = _address(host, port, shared=True)
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }

    def start() -> SpawnProcess:
        process = context.Process(
            target=_worker, args=(host, port, dict(options), os.getpid()), daemon=False
        )
        process.start()
        return process

    failures: deque[float] = deque()
    status = 0
    processes = [start() for _ in range(workers)]
    try:
        while not stop.wait(0.25):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                now = time.monotonic()
                failures.append(now)
                while failures and failures[0] < now - FAILURE_WINDOW:
                    failures.popleft()
                if len(failures) >= MOST_FAILURES:
                    sys.stderr.write(
                        f"mlprov: error: workers exited {len(failures)} times within "
                        f"{FAILURE_WINDOW:.0f} s (last: exit code {process.exitcode}); "
                        "stopping (see the log above)\n"
                    )
                    status = 1
                    stop.set()
                    break
                sys.stderr.write(
                    f"mlprov: worker {process.pid} exited with code {process.exitcode}; "
                    "starting another\n"
                )
                processes[index] = start()
    finally:
        _stop_all(processes)
        reserved.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _stop_all(processes: list[SpawnProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
