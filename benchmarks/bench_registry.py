"""Registry benchmark: registration throughput and resolve latency, SQLite and PostgreSQL
side by side.

    python benchmarks/bench_registry.py                 # print the table, update docs
    python benchmarks/bench_registry.py --no-write      # print only

What is measured, through the Python API (``mlprov.registry.Registry``):

* **register**: N small models (3 files, ~2 KiB, distinct bytes) registered one after
  another as versions of one model; each call is timed (hash, store blobs with fsync, one
  metadata transaction). Reported: median and p90 per registration, and versions/s.
* **resolve**: a store filled with 10,000 versions (100 models x 100 versions, each an
  audited ``commit_version`` transaction of the real service; the bytes are stored once
  per model), then random references resolved: ``name/N``, ``name@latest`` and
  ``name@prod`` in equal parts. Reported: p50 and p99.

PostgreSQL runs in a fresh schema (dropped afterwards) of ``$MLPROV_TEST_POSTGRES``
(default ``postgresql://root@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlprov.config import RegistryConfig
from mlprov.registry import Registry, open_registry

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
PG_ADMIN = os.environ.get("MLPROV_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def small_model(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(f'{{"seed": {seed}}}\n', encoding="utf-8")
    (folder / "weights-0.bin").write_bytes(seed.to_bytes(8, "big") * 128)
    (folder / "weights-1.bin").write_bytes((seed + 1).to_bytes(8, "big") * 128)
    return folder


@contextmanager
def backend(kind: str, work: Path) -> Iterator[Callable[[], Registry]]:
    """Yield a factory of registries on a fresh store of the given kind."""
    home = work / kind
    home.mkdir()
    if kind == "sqlite":
        uri = f"sqlite:///{home / 'registry.db'}"
        yield lambda: open_registry(RegistryConfig(home=home, metadata_uri=uri), actor="bench")
        return
    import psycopg  # noqa: PLC0415

    schema = f"mlprov_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    uri = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    try:
        yield lambda: open_registry(RegistryConfig(home=home, metadata_uri=uri), actor="bench")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def bench_register(make: Callable[[], Registry], work: Path, count: int) -> dict[str, float]:
    folders = [small_model(work / f"reg-{i}", i) for i in range(count)]
    registry = make()
    try:
        registry.register(small_model(work / "warm-up", 10**9), "warm-up")
        times = []
        for folder in folders:
            start = time.perf_counter()
            registry.register(folder, "bench")
            times.append(time.perf_counter() - start)
    finally:
        registry.close()
    return {
        "register_median_ms": statistics.median(times) * 1000,
        "register_p90_ms": percentile(times, 0.90) * 1000,
        "register_per_s": count / sum(times),
    }


def bench_resolve(
    make: Callable[[], Registry], work: Path, models: int, per_model: int, resolves: int
) -> dict[str, float]:
    registry = make()
    try:
        start = time.perf_counter()
        for m in range(models):
            name = f"model-{m:03d}"
            prepared = registry.prepare_version(small_model(work / f"fill-{m}", m), name)
            stored = registry.store_files(prepared)
            for _ in range(per_model):
                registry.commit_version(prepared, stored)
            registry.set_alias(name, "prod", per_model // 2)
        fill_seconds = time.perf_counter() - start
        with registry.metadata.read() as tx:
            total = tx.counts()["versions"]
        rng = random.Random(42)
        refs = []
        for i in range(resolves):
            name = f"model-{rng.randrange(models):03d}"
            refs.append(
                (f"{name}/{rng.randrange(1, per_model + 1)}", f"{name}@latest", f"{name}@prod")[
                    i % 3
                ]
            )
        for ref in refs[:50]:  # warm-up: connection pool, statement caches
            registry.resolve(ref)
        times = []
        for ref in refs:
            start = time.perf_counter()
            registry.resolve(ref)
            times.append(time.perf_counter() - start)
    finally:
        registry.close()
    return {
        "versions": float(total),
        "fill_s": fill_seconds,
        "resolve_p50_ms": percentile(times, 0.50) * 1000,
        "resolve_p99_ms": percentile(times, 0.99) * 1000,
    }


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    try:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(PG_ADMIN) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            postgres = str(row[0]) if row else "unknown"
    except Exception as e:  # reported, not fatal: the table says what ran
        postgres = f"unavailable ({type(e).__name__})"
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores (nproc)",
        "Memory": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Load average at the end (1/5/15 min)": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres,
    }


ROWS = [
    ("register: median per version", "register_median_ms", "{:.1f} ms"),
    ("register: p90 per version", "register_p90_ms", "{:.1f} ms"),
    ("register: throughput", "register_per_s", "{:.1f} versions/s"),
    ("resolve store: versions", "versions", "{:,.0f}"),
    ("resolve store: fill time", "fill_s", "{:.0f} s"),
    ("resolve: p50", "resolve_p50_ms", "{:.2f} ms"),
    ("resolve: p99", "resolve_p99_ms", "{:.2f} ms"),
]


def render(results: dict[str, dict[str, float]], info: dict[str, str], args: Any) -> str:
    kinds = list(results)
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    lines = [
        "## Registry",
        "",
        "Measured by `python benchmarks/bench_registry.py` through the Python API "
        f"({args.registrations} registrations of small 3-file models; resolves of "
        f"{args.resolves:,} random `name/N`, `name@latest` and `name@prod` references in a "
        f"store of {args.models} models x {args.per_model} versions).",
        "",
        "| metric | " + " | ".join(label[k] for k in kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    for title, key, fmt in ROWS:
        cells = [fmt.format(results[k][key]) if key in results[k] else "-" for k in kinds]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "Machine:", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "",
        "Registration is dominated by durability: every blob is written to a temporary "
        "file, fsynced and renamed, and the folder fsynced, before the metadata "
        "transaction commits. Resolve is a handful of indexed reads in one read "
        "transaction.",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace (or add) the ``## Registry`` section of docs/benchmarks.md, keeping others."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Registry\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--per-model", type=int, default=100)
    parser.add_argument("--resolves", type=int, default=3000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-write", action="store_true", help="Do not update the docs.")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mlprov-bench-") as tmp:
        work = Path(tmp)
        for kind in args.backends.split(","):
            print(f"[{kind}] registering {args.registrations} versions ...", file=sys.stderr)
            with backend(kind, work) as make:
                scratch = work / f"{kind}-models"
                scratch.mkdir()
                numbers = bench_register(make, scratch, args.registrations)
                print(
                    f"[{kind}] filling {args.models * args.per_model:,} versions ...",
                    file=sys.stderr,
                )
                numbers |= bench_resolve(make, scratch, args.models, args.per_model, args.resolves)
            results[kind] = numbers
    section = render(results, machine(), args)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"updated {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
