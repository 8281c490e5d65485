"""Server benchmark: mlprov serve and an MLflow tracking server side by side, in one run.

    python benchmarks/bench_server.py --mlflow /path/to/mlflow          # print the table
    python benchmarks/bench_server.py --mlflow ... --write              # and update docs

Both servers run on this machine, on loopback, with the same number of worker processes,
each on a SQLite file (MLflow's ``--backend-store-uri sqlite:///...``; mlprov's embedded
default) and, for mlprov, also on PostgreSQL. MLflow is not a dependency of mlprov: give
the ``mlflow`` executable of a separate virtual environment (``python -m venv /tmp/mlflow
&& /tmp/mlflow/bin/pip install mlflow``).

What is measured, by one load generator process (a plain HTTP/1.1 client on asyncio
streams with kept-alive connections, the same for both; httpx cost about 1 ms of CPU per
request and capped the measurement near 750 requests/s on a 2-core machine):

* **alias resolution**: ``GET /api/v1/resolve?ref=bench@production`` (mlprov, the
  version record) against MLflow's ``GET /api/2.0/mlflow/registered-models/alias``
  (``get_model_version_by_alias``), ``--requests`` requests by ``--concurrency``
  concurrent clients; requests per second and p50/p99 latency; every answer is parsed
  and must name version 1;
* **registration**: mlprov ``POST /api/v1/models/bench/versions`` of a distinct small
  file sent inline (base64), as ``mlprov register`` sends a small model (ADR 0057: a real
  version, its blob stored with fsync, an audited transaction) against MLflow's
  ``POST /api/2.0/mlflow/model-versions/create`` (a row pointing at a source URI: MLflow
  stores no bytes); versions per second. mlprov's two-request form is measured too
  (``PUT /api/v1/blobs/{sha256}``, then the POST naming the blob), as a file too large
  to go inline is registered.

Rounds alternate between the servers and the median round is reported, with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
PG_ADMIN = os.environ.get("MLPROV_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")
MARK = "<!-- bench_server -->"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready in {timeout:.0f}s")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as handle:
        child = subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


# -- the load generator (runs in its own process) -------------------------------------


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection: (status, body). Bodies framed by
    Content-Length or chunked transfer coding (the two a keep-alive answer can use)."""
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if not chunked:
        return status, await reader.readexactly(length)
    body = bytearray()
    while size := int((await reader.readline()).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readline()  # the empty trailer section
    return status, bytes(body)


async def _resolve_load(
    url: str,
    headers: dict[str, str],
    requests: int,
    concurrency: int,
    expect: tuple[list[str], str],
) -> Any:
    # A plain HTTP/1.1 client on asyncio streams rather than httpx: on a shared 2-core
    # machine httpx's ~1 ms of CPU per request made the load generator, not the server,
    # the bottleneck (it topped out near 750 requests/s against /healthz).
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _request("GET", host, port, f"{parts.path}?{parts.query}", headers)
    latencies: list[float] = []
    remaining = iter(range(requests))

    def check(status: int, body: bytes) -> None:
        # Every answer is parsed and must name the version the alias points at.
        found: Any = json.loads(body) if status == 200 else None
        for key in expect[0]:
            found = found.get(key) if isinstance(found, dict) else None
        if str(found) != expect[1]:
            raise RuntimeError(f"{url}: {status} {body[:200]!r}")

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port)
        for _ in range(2):  # warm the connection (and the server's caches)
            check(*await _exchange(reader, writer, request))
        return reader, writer

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in remaining:
            start = time.perf_counter()
            status, body = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - start)
            check(status, body)

    connections = await asyncio.gather(*(connect() for _ in range(concurrency)))
    start = time.perf_counter()
    await asyncio.gather(*(worker(*c) for c in connections))
    wall = time.perf_counter() - start
    for _, writer in connections:
        writer.close()
    return {
        "rps": requests / wall,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
    }


def _request(
    method: str, host: str, port: int, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _register_load(
    kind: str, base: str, headers: dict[str, str], requests: int, concurrency: int, uploads: bool
) -> Any:
    # The same plain HTTP/1.1 client as the resolution load, for the same reason.
    parts = urllib.parse.urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    remaining = iter(range(requests))
    run = uuid.uuid4().hex
    as_json = {**headers, "Content-Type": "application/json"}

    async def call(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> None:
        status, body = await _exchange(reader, writer, request)
        if status not in (200, 201):
            raise RuntimeError(f"{kind}: {status} {body[:200]!r}")

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        if kind == "mlflow":
            document = {"name": "bench", "source": f"s3://bench-models/{run}/{index}"}
            path = "/api/2.0/mlflow/model-versions/create"
        else:
            data = f"weights {run} {index}\n".encode()
            digest = hashlib.sha256(data).hexdigest()
            listed: dict[str, Any] = {"path": "weights.bin", "sha256": digest, "size": len(data)}
            if uploads:
                put = _request("PUT", host, port, f"/api/v1/blobs/{digest}", headers, data)
                await call(reader, writer, put)
            else:
                listed["content"] = base64.b64encode(data).decode("ascii")
            document = {"files": [listed]}
            path = "/api/v1/models/bench/versions"
        body = json.dumps(document).encode()
        await call(reader, writer, _request("POST", host, port, path, as_json, body))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in remaining:
                await one(reader, writer, index)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return {"per_second": requests / wall}


def load_main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    headers = {"Authorization": f"Bearer {spec['token']}"} if spec.get("token") else {}
    if spec["what"] == "resolve":
        result = asyncio.run(
            _resolve_load(
                spec["url"], headers, spec["requests"], spec["concurrency"], tuple(spec["expect"])
            )
        )
    else:
        result = asyncio.run(
            _register_load(
                spec["kind"],
                spec["url"],
                headers,
                spec["requests"],
                spec["concurrency"],
                bool(spec.get("uploads")),
            )
        )
    print(json.dumps(result))


def run_load(spec: dict[str, Any]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--load", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout))


# -- the servers ----------------------------------------------------------------------


@dataclass
class Server:
    kind: str  # mlprov-sqlite, mlprov-postgresql, mlflow
    base: str
    resolve_url: str
    token: str | None
    #: Where the resolved version number is in the answer, and its value.
    expect: tuple[list[str], str]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPROV_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@contextmanager
def mlprov_server(work: Path, backend: str, workers: int) -> Iterator[Server]:
    from mlprov.config import RegistryConfig  # noqa: PLC0415
    from mlprov.registry import open_registry  # noqa: PLC0415

    home = work / f"mlprov-{backend}"
    home.mkdir()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        uri = f"sqlite:///{home / 'registry.db'}"
    else:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        uri = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    try:
        registry = open_registry(RegistryConfig(home=home, metadata_uri=uri), actor="bench")
        try:
            secret = registry.create_token("admin", name="bench").secret
            model = home / "model"
            model.mkdir()
            (model / "weights.bin").write_bytes(b"weights 0\n")
            registry.register(model, "bench")
            registry.set_alias("bench", "production", 1)
        finally:
            registry.close()
        # The per-token rate limit is off: one token carries the whole load here.
        env = clean_env() | {
            "MLPROV_HOME": str(home),
            "MLPROV_REGISTRY": uri,
            "MLPROV_SERVER_RATE": "0",
        }
        port = free_port()
        args = [
            sys.executable, "-m", "mlprov", "serve", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning",
        ]  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        with process(args, env, work / f"mlprov-{backend}.log") as child:
            wait_ready(f"{base}/readyz", child)
            yield Server(
                f"mlprov-{backend}",
                base,
                f"{base}/api/v1/resolve?ref=bench@production",
                secret,
                (["version", "version"], "1"),
            )
    finally:
        if backend != "sqlite":
            import psycopg  # noqa: PLC0415

            with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def mlflow_server(work: Path, executable: str, workers: int) -> Iterator[Server]:
    import httpx  # noqa: PLC0415

    folder = work / "mlflow"
    folder.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [
        executable, "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root", (folder / "artifacts").as_uri(),
        "--workers", str(workers),
    ]  # fmt: skip
    with process(args, clean_env(), work / "mlflow.log") as child:
        wait_ready(f"{base}/health", child, timeout=240)
        api = f"{base}/api/2.0/mlflow"
        for path, body in (
            ("registered-models/create", {"name": "bench"}),
            ("model-versions/create", {"name": "bench", "source": "s3://bench-models/0"}),
            ("registered-models/alias", {"name": "bench", "alias": "production", "version": "1"}),
        ):
            response = httpx.post(f"{api}/{path}", json=body, timeout=60)
            response.raise_for_status()
        yield Server(
            "mlflow",
            base,
            f"{api}/registered-models/alias?name=bench&alias=production",
            None,
            (["model_version", "version"], "1"),
        )


# -- the run --------------------------------------------------------------------------


def measure(server: Server, args: argparse.Namespace) -> dict[str, float]:
    resolve = run_load(
        {
            "what": "resolve",
            "url": server.resolve_url,
            "expect": server.expect,
            "token": server.token,
            "requests": args.requests,
            "concurrency": args.concurrency,
        }
    )
    register = run_load(
        {
            "what": "register",
            "kind": "mlflow" if server.kind == "mlflow" else "mlprov",
            "url": server.base,
            "token": server.token,
            "requests": args.registrations,
            "concurrency": args.concurrency,
        }
    )
    result = {
        "rps": resolve["rps"],
        "p50": resolve["p50"],
        "p99": resolve["p99"],
        "reg": register["per_second"],
    }
    if server.kind != "mlflow":
        uploads = run_load(
            {
                "what": "register",
                "kind": "mlprov",
                "url": server.base,
                "token": server.token,
                "requests": args.registrations,
                "concurrency": args.concurrency,
                "uploads": True,
            }
        )
        result["reg_uploads"] = uploads["per_second"]
    return result


def median_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def machine() -> list[str]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores (nproc), shared by the servers and the load "
        "generator",
        f"- OS: {platform.system()} {platform.release()}; Python {platform.python_version()}",
        "- Load average at the end (1/5/15 min): "
        + " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    ]


def table(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    mlflow = results["mlflow"]
    lines = [
        MARK,
        "",
        f"Measured by `python benchmarks/bench_server.py` ({args.rounds} rounds alternating "
        f"between the servers, median round; {args.workers} worker processes per server; "
        f"{args.requests} resolutions and {args.registrations} registrations per round by "
        f"{args.concurrency} concurrent clients).",
        "",
        "| server | resolutions/s | p50 (ms) | p99 (ms) | x MLflow rps | registrations/s "
        "| x MLflow | upload + register/s | x MLflow |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, r in results.items():
        two = (
            f"{r['reg_uploads']:,.1f} | {r['reg_uploads'] / mlflow['reg']:.2f}"
            if "reg_uploads" in r
            else "- | -"
        )
        lines.append(
            f"| {kind} | {r['rps']:,.0f} | {r['p50'] * 1000:.1f} | {r['p99'] * 1000:.1f} | "
            f"{r['rps'] / mlflow['rps']:.2f} | {r['reg']:,.1f} | {r['reg'] / mlflow['reg']:.2f} "
            f"| {two} |"
        )
    lines += ["", "Machine:", "", *machine(), ""]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--load":
        load_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow", default=shutil.which("mlflow"), help="mlflow executable")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if not args.mlflow:
        parser.error("give --mlflow PATH: the mlflow executable of a separate environment")
    backends = [b for b in args.backends.split(",") if b]
    rounds: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as scratch:
        work = Path(scratch)
        for index in range(args.rounds):
            for kind in ["mlflow", *(f"mlprov-{b}" for b in backends)]:
                round_dir = work / f"{kind}-{index}"
                round_dir.mkdir()
                if kind == "mlflow":
                    context = mlflow_server(round_dir, args.mlflow, args.workers)
                else:
                    context = mlprov_server(round_dir, kind.partition("-")[2], args.workers)
                with context as server:
                    rounds.setdefault(kind, []).append(measure(server, args))
                print(f"round {index + 1} {kind}: {rounds[kind][-1]}", file=sys.stderr)
    results = {kind: median_round(values) for kind, values in rounds.items()}
    text = table(results, args)
    print(text)
    if args.write:
        doc = DOC.read_text(encoding="utf-8")
        head, sep, rest = doc.partition(MARK)
        if sep:
            # Up to the next heading: the pull benchmark's sub-section follows this table.
            tail = rest.split("\n#", 1)
            doc = head + text + ("\n#" + tail[1] if len(tail) > 1 else "")
        else:
            doc = doc.rstrip("\n") + "\n\n## Server (issue 10)\n\n" + text
        DOC.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
