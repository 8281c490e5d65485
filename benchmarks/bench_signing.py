"""Signing benchmark: ``mlprov sign``/``verify`` against the reference tool and plain hashlib.

    python benchmarks/bench_signing.py                      # 2 GiB in 8 files, 5 repeats
    python benchmarks/bench_signing.py --markdown           # also print Markdown tables
    python benchmarks/bench_signing.py --size-gib 0.25 --repeats 3
    python benchmarks/bench_signing.py --shards             # one 2 GiB file, --shard-size

What is measured, each command as a separate process (as a user or a serving container
runs it), all in ONE run with the tools interleaved within every repeat (the order rotates
from repeat to repeat) so that a change of machine load hits every tool alike:

* ``mlprov sign MODEL --key K --signature OUT --quiet`` with ``--hash sha256`` and
  ``--hash blake3``, and ``mlprov verify MODEL --signature OUT --key PUB --quiet`` of each;
* ``model_signing sign key MODEL --private_key K --signature OUT`` and
  ``model_signing verify key MODEL --signature OUT --public_key PUB`` (the reference tool);
* a plain hashlib baseline: ``python -c`` hashing every file with SHA-256 in a
  ThreadPoolExecutor of ``os.cpu_count()`` workers, 8 MiB ``readinto`` chunks (the
  all-core figure the targets are set against);
* start-up: ``mlprov verify`` and ``model_signing verify key`` of a 1 MB model (median of
  ``--startup-repeats``), and ``python -c pass`` as the floor.

Wall time is the median of the repeats; peak memory is the child's maximum RSS (from
``/usr/bin/time`` when present, else a small wrapper process calling ``os.wait4``), the
largest over the repeats; CPU is the child's user + system time (median).
The model (random-ish bytes written in chunks, never held in memory) and the P-256 key
(``mlprov keys generate``) are generated in ``--workdir`` (default a temporary folder,
removed afterwards); the page cache is warmed by reading every file once, so every tool is
measured with the model in memory.

``--shards`` runs the shard benchmark instead, also in ONE run with the commands
interleaved: ONE file of ``--size-gib`` (default 2 GiB, written under ``/tmp`` and deleted
afterwards) signed by ``mlprov sign FILE --key K`` without shards and with
``--shard-size`` (512 MiB, four equal shards, and the spec's default 1,000,000,000 bytes),
the sharded one also pinned to 1 core, 2 cores, ... with ``taskset`` (mlprov sizes its
shard pool from the process's CPU affinity), printing wall time and speed-up per worker
count so the figure of a larger machine can be read from it; plus the start-up of
``mlprov verify PATH --key`` on a 1 MB model (target < 0.2 s, with ``sigstore`` installed).

``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment and every command
runs once before measuring: without bytecode for mlprov's own (editable) sources every
mlprov process would compile them again (installed packages already have bytecode).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

GIB = 1024**3
CHUNK = 8 * 1024 * 1024

HASHLIB_BASELINE = r"""
import hashlib, os, sys
from concurrent.futures import ThreadPoolExecutor

def digest(path):
    h = hashlib.sha256()
    buf = bytearray(8 * 1024 * 1024)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()

root = sys.argv[1]
files = sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names)
with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
    digests = list(pool.map(digest, files))
print(len(digests))
"""


# --- environment -----------------------------------------------------------------------


def tool(name: str) -> str:
    """The real console script beside this interpreter (not a pyenv shim), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"bench_signing: {name} not found")
    return found


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


# --- running and measuring ---------------------------------------------------------------


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def peak_mib(self) -> float:
        return max(self.rss_kib) / 1024 if self.rss_kib else float("nan")


TIME_BIN = "/usr/bin/time"

# Without /usr/bin/time: a small wrapper (python -S -I, about 9 MiB) forks, execs the
# command and reports its rusage from os.wait4. Measuring from this process instead would
# count the fork's copy of this process (before exec) in the child's ru_maxrss.
WAIT4_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(cmd: list[str], env: dict[str, str], scratch: Path) -> tuple[float, int, float]:
    """Run ``cmd``; return (wall s, peak RSS of the child in KiB, its user+system CPU s).

    Fails loudly if the command fails."""
    out = scratch / "rusage.txt"
    if os.path.exists(TIME_BIN):
        full = [TIME_BIN, "-f", "%M %U %S", "-o", str(out), *cmd]
    else:
        full = [sys.executable, "-S", "-I", "-c", WAIT4_WRAPPER, str(out), *cmd]
    start = time.perf_counter()
    done = subprocess.run(full, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"bench_signing: command failed ({done.returncode}): {' '.join(cmd)}\n"
            f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
        )
    fields = out.read_text().split()[-3:]
    rss, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
    return wall, rss, cpu


# --- the model ---------------------------------------------------------------------------


def make_model(folder: Path, total: int, files: int) -> None:
    """``files`` files of about ``total / files`` bytes each, written chunk by chunk."""
    folder.mkdir(parents=True)
    block = bytearray(os.urandom(CHUNK))
    per_file = total // files
    counter = 0
    for index in range(files):
        size = per_file if index < files - 1 else total - per_file * (files - 1)
        with open(folder / f"model-{index + 1:05d}-of-{files:05d}.safetensors", "wb") as out:
            left = size
            while left:
                counter += 1
                # A different first 8 bytes per chunk: no two chunks are alike.
                block[:8] = counter.to_bytes(8, "little")
                n = min(left, CHUNK)
                out.write(memoryview(block)[:n])
                left -= n


def warm(folder: Path) -> None:
    buf = bytearray(CHUNK)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass


# --- the benchmark -------------------------------------------------------------------------


def fmt_ratio(value: float, target: float) -> str:
    return f"{value:.2f} (target <= {target:g}: {'met' if value <= target else 'MISSED'})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=2.0, help="model size (GiB)")
    parser.add_argument("--files", type=int, default=8, help="number of files in the model")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--startup-repeats", type=int, default=10, help="runs for start-up")
    parser.add_argument("--workdir", type=Path, default=None, help="kept if given")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--shards", action="store_true", help="the shard benchmark instead")
    args = parser.parse_args()
    if args.shards:
        return bench_shards(args, tool("mlprov"), child_env())

    mlprov = tool("mlprov")
    model_signing = tool("model_signing")
    env = child_env()
    load_before = load()

    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench-signing-")) if own_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return bench(args, workdir, mlprov, model_signing, env, load_before)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def bench(
    args: argparse.Namespace,
    workdir: Path,
    mlprov: str,
    model_signing: str,
    env: dict[str, str],
    load_before: str,
) -> int:
    total = int(args.size_gib * GIB)
    model = workdir / "model"
    small = workdir / "small-model"
    sigs = workdir / "sigs"
    scratch = workdir / "scratch"
    for folder in (sigs, scratch):
        folder.mkdir(exist_ok=True)
    if not model.exists():
        print(f"generating {total / GIB:g} GiB in {args.files} files in {model} ...", flush=True)
        make_model(model, total, args.files)
    if not small.exists():
        make_model(small, 1_000_000, 1)
    key, pub = workdir / "key.pem", workdir / "key.pub"
    if not key.exists():
        subprocess.run([mlprov, "keys", "generate", "--out", str(key)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([mlprov, "keys", "public", str(key), "--out", str(pub)], env=env,
                       check=True, capture_output=True)  # fmt: skip

    def sig(name: str) -> str:
        return str(sigs / name)

    m = str(model)
    commands: dict[str, list[str]] = {
        "mlprov sign (sha256)": [mlprov, "sign", m, "--key", str(key),
                                 "--signature", sig("mlprov-sha256.sig"), "--hash", "sha256",
                                 "--quiet"],
        "mlprov verify (sha256)": [mlprov, "verify", m, "--signature", sig("mlprov-sha256.sig"),
                                   "--key", str(pub), "--quiet"],
        "mlprov sign (blake3)": [mlprov, "sign", m, "--key", str(key),
                                 "--signature", sig("mlprov-blake3.sig"), "--hash", "blake3",
                                 "--quiet"],
        "mlprov verify (blake3)": [mlprov, "verify", m, "--signature", sig("mlprov-blake3.sig"),
                                   "--key", str(pub), "--quiet"],
        "model_signing sign key": [model_signing, "sign", "key", m, "--private_key", str(key),
                                   "--signature", sig("reference.sig")],
        "model_signing verify key": [model_signing, "verify", "key", m,
                                     "--signature", sig("reference.sig"),
                                     "--public_key", str(pub)],
        "hashlib sha256, all cores": [sys.executable, "-c", HASHLIB_BASELINE, m],
    }  # fmt: skip
    s = str(small)
    startup: dict[str, list[str]] = {
        "mlprov verify (1 MB)": [mlprov, "verify", s, "--signature", sig("small-mlprov.sig"),
                                 "--key", str(pub), "--quiet"],
        "model_signing verify key (1 MB)": [model_signing, "verify", "key", s,
                                            "--signature", sig("small-reference.sig"),
                                            "--public_key", str(pub)],
        "python -c pass": [sys.executable, "-c", "pass"],
    }  # fmt: skip

    print("warming the page cache and bytecode (one untimed run of each command) ...", flush=True)
    warm(model)
    warm(small)
    subprocess.run([mlprov, "sign", s, "--key", str(key), "--signature", sig("small-mlprov.sig"),
                    "--quiet"], env=env, check=True, capture_output=True)  # fmt: skip
    subprocess.run([model_signing, "sign", "key", s, "--private_key", str(key),
                    "--signature", sig("small-reference.sig")], env=env, check=True,
                   capture_output=True)  # fmt: skip
    for cmd in [*commands.values(), *startup.values()]:
        run(cmd, env, scratch)

    samples = {name: Sample() for name in commands}
    names = list(commands)
    for repeat in range(args.repeats):
        # Rotate the order so no tool always runs first (or always right after another).
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            wall, rss, cpu = run(commands[name], env, scratch)
            samples[name].wall.append(wall)
            samples[name].rss_kib.append(rss)
            samples[name].cpu.append(cpu)
        print(f"repeat {repeat + 1}/{args.repeats} done (load {load()})", flush=True)

    start_samples = {name: Sample() for name in startup}
    for _ in range(args.startup_repeats):
        for name, cmd in startup.items():
            wall, rss, cpu = run(cmd, env, scratch)
            start_samples[name].wall.append(wall)
            start_samples[name].rss_kib.append(rss)
            start_samples[name].cpu.append(cpu)

    load_after = load()
    report(args, samples, start_samples, total, load_before, load_after)
    return 0


def report(
    args: argparse.Namespace,
    samples: dict[str, Sample],
    start_samples: dict[str, Sample],
    total: int,
    load_before: str,
    load_after: str,
) -> None:
    gib = total / GIB
    flags = cpu_flags()
    print()
    print(f"machine: {os.cpu_count()} cores ({cpu_model()}; SHA extensions: "
          f"{'yes' if 'sha_ni' in flags else 'no'}), {memory_gib():.1f} GiB memory, "
          f"{platform.system()} {platform.release()}")  # fmt: skip
    print(f"python {platform.python_version()}; mlprov {version('mlprov')}, model-signing "
          f"{version('model-signing')}, blake3 {version('blake3')}, cryptography "
          f"{version('cryptography')}, typer {version('typer')}, OpenSSL "
          f"{__import__('ssl').OPENSSL_VERSION.split()[1]}")  # fmt: skip
    print(f"model: {gib:g} GiB in {args.files} files; {args.repeats} repeats, interleaved; "
          f"load average before {load_before}, after {load_after}")  # fmt: skip
    source = "/usr/bin/time -f '%M %U %S'" if os.path.exists(TIME_BIN) else "os.wait4"
    print(f"peak RSS and CPU (user + system, median) from {source}")
    print()

    width = max(len(n) for n in [*samples, *start_samples])
    print(f"{'command':<{width}}  {'median s':>8}  {'min s':>6}  {'max s':>6}  {'GiB/s':>6}  "
          f"{'CPU s':>6}  {'peak RSS MiB':>12}")  # fmt: skip
    for name, sample in samples.items():
        rate = gib / sample.median
        print(f"{name:<{width}}  {sample.median:8.3f}  {min(sample.wall):6.3f}  "
              f"{max(sample.wall):6.3f}  {rate:6.2f}  {sample.cpu_median:6.2f}  "
              f"{sample.peak_mib:12.1f}")  # fmt: skip
    for name, sample in start_samples.items():
        print(f"{name:<{width}}  {sample.median:8.3f}  {min(sample.wall):6.3f}  "
              f"{max(sample.wall):6.3f}  {'':>6}  {sample.cpu_median:6.2f}  "
              f"{sample.peak_mib:12.1f}")  # fmt: skip

    med = {name: s.median for name, s in samples.items()}
    rss = {name: s.peak_mib for name, s in samples.items()}
    ref_sign, ref_verify = med["model_signing sign key"], med["model_signing verify key"]
    base = med["hashlib sha256, all cores"]
    checks: list[tuple[str, str, float, float]] = [
        ("sign sha256 / reference sign", "sign", med["mlprov sign (sha256)"] / ref_sign, 0.7),
        ("verify sha256 / reference verify", "verify",
         med["mlprov verify (sha256)"] / ref_verify, 0.7),
        ("sign sha256 / all-core hashlib", "sign", med["mlprov sign (sha256)"] / base, 1.2),
        ("verify sha256 / all-core hashlib", "verify",
         med["mlprov verify (sha256)"] / base, 1.2),
        ("sign blake3 / reference sign (sha256)", "sign",
         med["mlprov sign (blake3)"] / ref_sign, 0.4),
        ("verify blake3 / reference verify (sha256)", "verify",
         med["mlprov verify (blake3)"] / ref_verify, 0.4),
        ("peak RSS sign sha256 / reference", "rss",
         rss["mlprov sign (sha256)"] / rss["model_signing sign key"], 1.0),
        ("peak RSS verify sha256 / reference", "rss",
         rss["mlprov verify (sha256)"] / rss["model_signing verify key"], 1.0),
        ("peak RSS sign blake3 / reference", "rss",
         rss["mlprov sign (blake3)"] / rss["model_signing sign key"], 1.0),
        ("peak RSS verify blake3 / reference", "rss",
         rss["mlprov verify (blake3)"] / rss["model_signing verify key"], 1.0),
    ]  # fmt: skip
    startup = start_samples["mlprov verify (1 MB)"].median
    print()
    for label, _kind, value, target in checks:
        print(f"{label:<44} {fmt_ratio(value, target)}")
    print(f"{'mlprov verify of 1 MB, wall s':<44} {startup:.3f} (target < 0.5: "
          f"{'met' if startup < 0.5 else 'MISSED'})")  # fmt: skip

    if not args.markdown:
        return
    print()
    print("| command | median wall (s) | min-max (s) | GiB/s | CPU (s) | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, sample in samples.items():
        rate = gib / sample.median
        print(f"| `{name}` | {sample.median:.2f} | {min(sample.wall):.2f}-"
              f"{max(sample.wall):.2f} | {rate:.2f} | {sample.cpu_median:.2f} | "
              f"{sample.peak_mib:.0f} |")  # fmt: skip
    for name, sample in start_samples.items():
        print(f"| `{name}` | {sample.median:.3f} | {min(sample.wall):.3f}-"
              f"{max(sample.wall):.3f} | | {sample.cpu_median:.2f} | "
              f"{sample.peak_mib:.0f} |")  # fmt: skip
    print()
    print("| target | measured | met |")
    print("|---|---:|---|")
    for label, _kind, value, target in checks:
        print(f"| {label} <= {target:g} | {value:.2f} | {'yes' if value <= target else 'no'} |")
    print(f"| mlprov verify of 1 MB < 0.5 s | {startup:.3f} s | "
          f"{'yes' if startup < 0.5 else 'no'} |")  # fmt: skip


# --- shards: one large file on every core -------------------------------------------------

SHARD_SIZES = {"512 MiB": 512 * 1024 * 1024, "1 GB (spec default)": 1_000_000_000}


def _affinity_prefix(cores: int) -> list[str]:
    if cores >= (os.cpu_count() or 1) or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", ",".join(str(c) for c in range(cores))]


def bench_shards(args: argparse.Namespace, mlprov: str, env: dict[str, str]) -> int:
    total = int(args.size_gib * GIB)
    workdir = Path(tempfile.mkdtemp(prefix="bench-shards-", dir="/tmp"))
    try:
        big, small, scratch = workdir / "big", workdir / "small", workdir / "scratch"
        scratch.mkdir()
        print(f"generating one {total / GIB:g} GiB file in {big} ...", flush=True)
        make_model(big, total, 1)
        make_model(small, 1_000_000, 1)
        key, pub = workdir / "key.pem", workdir / "key.pub"
        subprocess.run([mlprov, "keys", "generate", "--out", str(key)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([mlprov, "keys", "public", str(key), "--out", str(pub)], env=env,
                       check=True, capture_output=True)  # fmt: skip
        file = str(next(big.iterdir()))
        small_sig = str(workdir / "small.sig")
        subprocess.run([mlprov, "sign", str(small), "--key", str(key), "--signature", small_sig,
                        "--quiet"], env=env, check=True, capture_output=True)  # fmt: skip

        def sign(*extra: str) -> list[str]:
            out = str(workdir / "out.sig")
            return [mlprov, "sign", file, "--key", str(key), "--signature", out, "--quiet", *extra]

        cores = os.cpu_count() or 1
        commands: dict[str, list[str]] = {"no shards": sign()}
        for label, size in SHARD_SIZES.items():
            commands[f"--shard-size {label}"] = sign("--shard-size", str(size))
        scaling = SHARD_SIZES["512 MiB"]
        for workers in range(1, cores):
            commands[f"--shard-size 512 MiB, {workers} worker(s)"] = [
                *_affinity_prefix(workers),
                *sign("--shard-size", str(scaling)),
            ]
        startup = [mlprov, "verify", str(small), "--signature", small_sig, "--key", str(pub),
                   "--quiet"]  # fmt: skip

        print("warming the page cache and bytecode ...", flush=True)
        warm(big)
        for cmd in [*commands.values(), startup]:
            run(cmd, env, scratch)
        samples = {name: Sample() for name in commands}
        names = list(commands)
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                wall, rss, cpu = run(commands[name], env, scratch)
                samples[name].wall.append(wall)
                samples[name].rss_kib.append(rss)
                samples[name].cpu.append(cpu)
            print(f"repeat {repeat + 1}/{args.repeats} done (load {load()})", flush=True)
        start = Sample()
        for _ in range(args.startup_repeats):
            wall, rss, cpu = run(startup, env, scratch)
            start.wall.append(wall)
            start.rss_kib.append(rss)
            start.cpu.append(cpu)
        report_shards(args, samples, start, total, cores)
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report_shards(
    args: argparse.Namespace, samples: dict[str, Sample], start: Sample, total: int, cores: int
) -> None:
    gib = total / GIB
    print()
    print(f"machine: {cores} cores ({cpu_model()}), python {platform.python_version()}, "
          f"mlprov {version('mlprov')}, sigstore {version('sigstore')} installed; one "
          f"{gib:g} GiB file, {args.repeats} repeats interleaved")  # fmt: skip
    rows = [(name, s.median, min(s.wall), max(s.wall), s.cpu_median, s.peak_mib)
            for name, s in samples.items()]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'mlprov sign FILE':<{width}}  {'median s':>8}  {'min-max s':>11}  {'GiB/s':>6}  "
          f"{'CPU s':>6}  {'peak RSS MiB':>12}")  # fmt: skip
    for name, median, low, high, cpu, peak in rows:
        print(f"{name:<{width}}  {median:8.3f}  {low:5.2f}-{high:5.2f}  {gib / median:6.2f}  "
              f"{cpu:6.2f}  {peak:12.1f}")  # fmt: skip
    plain = samples["no shards"].median
    sharded = samples["--shard-size 512 MiB"].median
    ratio = sharded / plain
    print()
    print("scaling of --shard-size 512 MiB with worker count (taskset):")
    single = samples.get("--shard-size 512 MiB, 1 worker(s)", samples["--shard-size 512 MiB"])
    for workers in range(1, cores + 1):
        name = (
            "--shard-size 512 MiB"
            if workers == cores
            else f"--shard-size 512 MiB, {workers} worker(s)"
        )
        median = samples[name].median
        speedup = single.median / median
        print(f"  {workers} worker(s): {median:6.3f} s, speed-up {speedup:4.2f}, "
              f"efficiency {speedup / workers:4.2f}")  # fmt: skip
    print()
    print(f"{'sharded / unsharded sign, wall':<44} {fmt_ratio(ratio, 0.6)}")
    ok = start.median < 0.2
    print(f"{'mlprov verify --key of 1 MB, wall s':<44} {start.median:.3f} (target < 0.2: "
          f"{'met' if ok else 'MISSED'})")  # fmt: skip
    if not args.markdown:
        return
    print()
    print(
        "| `mlprov sign FILE` | median wall (s) | min-max (s) | GiB/s | CPU (s) | peak RSS (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, median, low, high, cpu, peak in rows:
        print(f"| {name} | {median:.2f} | {low:.2f}-{high:.2f} | {gib / median:.2f} | "
              f"{cpu:.2f} | {peak:.0f} |")  # fmt: skip
    print(f"| `mlprov verify --key` 1 MB (start-up) | {start.median:.3f} | "
          f"{min(start.wall):.3f}-{max(start.wall):.3f} | | {start.cpu_median:.2f} | "
          f"{start.peak_mib:.0f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
