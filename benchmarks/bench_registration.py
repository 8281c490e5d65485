"""Registration benchmark: the data path of registering large models, side by side in one run.

    python benchmarks/bench_registration.py              # print the tables, update docs
    python benchmarks/bench_registration.py --no-write   # print only
    python benchmarks/bench_registration.py --repeats 3

What is measured (a generated model of 8 files x 256 MiB under ``/tmp``, random bytes,
never committed, deleted afterwards; the page cache warmed by reading every file once):

* **re-registration**, through the Python API (``Registry.register``) in this process:
  into a fresh SQLite registry under ``/tmp``, a 1 GiB model (4 of the files) is
  registered (first registration: every blob new, written, fsynced with its folder, then
  the commit) and then registered again as the next version (every blob already stored);
  both timed, for ``--hash sha256`` and ``blake3``. Reported: median of each and the
  median of the per-repeat ratio first / again (target: >= 5).
* **sign --name**, each command its own process: ``mlprov sign MODEL --name bench --key K
  --signature OUT --quiet`` of the 2 GiB model into a fresh registry (``MLPROV_HOME`` under
  ``/tmp``), against ``cp -r MODEL DEST && sync DEST/*`` (copy the same files onto the
  same disk and fsync each copy, the durability mlprov gives its blobs), interleaved in
  every repeat with the order rotating. ``--baseline-src DIR`` adds ``sign --name`` with
  another checkout's sources (``DIR`` is its ``src``) to the same interleaving.
  Reported: medians and the median of the per-repeat ratio sign / cp (target: <= 1.3).

``sync`` (the whole system) runs before every timed command, and the outputs are removed
and synced away after it (untimed), so no command pays for another's dirty pages. The
children run with ``PYTHONPATH`` set to this checkout's ``src`` and without
``PYTHONDONTWRITEBYTECODE``; one untimed ``sign`` of a small model compiles the bytecode
first.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlprov.config import RegistryConfig
from mlprov.registry import open_registry

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
MIB = 1024 * 1024
FILE_SIZE = 256 * MIB
FILES = 8
RE_REGISTER_FILES = 4  # 1 GiB
RE_REGISTER_TARGET = 5.0
SIGN_TARGET = 1.3


def make_model(folder: Path) -> None:
    """8 files of 256 MiB of random bytes, written in 8 MiB chunks."""
    folder.mkdir(parents=True)
    for index in range(FILES):
        with open(folder / f"model-{index:05d}-of-{FILES:05d}.safetensors", "wb") as out:
            for _ in range(FILE_SIZE // (8 * MIB)):
                out.write(os.urandom(8 * MIB))


def subset(source: Path, target: Path, count: int) -> None:
    """A model of the first ``count`` files, hard-linked (same bytes, no extra space)."""
    target.mkdir()
    for path in sorted(source.iterdir())[:count]:
        os.link(path, target / path.name)


def warm(folder: Path) -> None:
    for path in sorted(folder.iterdir()):
        with open(path, "rb", buffering=0) as handle:
            while handle.read(8 * MIB):
                pass


def clear(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            # Blobs are read-only (0444) but their folders are not: rmtree can unlink them.
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    os.sync()


def bench_re_register(
    work: Path, model: Path, algorithm: str, repeats: int
) -> dict[str, list[float]]:
    first: list[float] = []
    again: list[float] = []
    for repeat in range(repeats):
        home = work / f"home-{algorithm}-{repeat}"
        config = RegistryConfig(home=home, metadata_uri=f"sqlite:///{home / 'registry.db'}")
        registry = open_registry(config, actor="bench")
        try:
            os.sync()
            start = time.perf_counter()
            one = registry.register(model, "bench", hash_algorithm=algorithm)
            first.append(time.perf_counter() - start)
            os.sync()
            start = time.perf_counter()
            two = registry.register(model, "bench", hash_algorithm=algorithm)
            again.append(time.perf_counter() - start)
            if (one.version, two.version, one.digest) != (1, 2, two.digest):
                sys.exit("bench_registration: the re-registration is not the same model")
        finally:
            registry.close()
        clear(home)
    return {"first": first, "again": again}


def child_env(home: Path, src: Path = ROOT / "src") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPROV_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONPATH=str(src), MLPROV_HOME=str(home), MLPROV_ACTOR="bench")
    return env


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_sign(
    work: Path, model: Path, key: Path, repeats: int, baseline: Path | None
) -> dict[str, list[float]]:
    def sign_command(path: Path, signature: Path) -> list[str]:
        options = ["--name", "bench", "--key", str(key), "--signature", str(signature)]
        return [sys.executable, "-m", "mlprov", "sign", str(path), *options, "--quiet"]

    # Untimed: compiles mlprov's bytecode and warms the imports' files.
    small = work / "small"
    small.mkdir()
    (small / "weights.bin").write_bytes(b"\x01" * MIB)
    warm_home = work / "warm-home"
    for src in [ROOT / "src"] + ([baseline] if baseline is not None else []):
        subprocess.run(
            sign_command(small, work / "warm.sig"),
            env=child_env(warm_home, src),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        clear(warm_home, work / "warm.sig")
    clear(small)

    results: dict[str, list[float]] = {"sign": [], "cp": [], "baseline": []}
    for repeat in range(repeats):
        home, signature, copy = work / "sign-home", work / "bench.sig", work / "copy"
        runs = [
            ("sign", sign_command(model, signature), child_env(home)),
            ("cp", ["sh", "-c", f'cp -r "{model}" "{copy}" && sync "{copy}"/*'], None),
        ]
        if baseline is not None:
            runs.append(("baseline", sign_command(model, signature), child_env(home, baseline)))
        # Rotate the order from repeat to repeat, so load changes hit every command alike.
        runs = runs[repeat % len(runs) :] + runs[: repeat % len(runs)]
        for label, command, env in runs:
            results[label].append(timed(command, env))
            clear(home, signature, copy)
    return results


def machine(load_before: str) -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / MIB:.1f} GiB"
            break
    disk = subprocess.run(
        ["df", "--output=source,fstype", "/tmp"], capture_output=True, text=True, check=False
    ).stdout.split()[-2:]
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores (nproc); memory {memory}",
        f"- OS: {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"- Disk: `/tmp` on {' '.join(disk)} (registry homes, copies and the model alike)",
        f"- Load average (1/5/15 min): {load_before} before, {load_text()} after; "
        "other agents' test suites share this machine",
    ]


def load_text() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def render(
    again: dict[str, dict[str, list[float]]],
    sign: dict[str, list[float]],
    args: argparse.Namespace,
    info: list[str],
) -> str:
    lines = [
        "## Registration",
        "",
        "Measured by `python benchmarks/bench_registration.py` "
        f"({args.repeats} repeats; a generated model of {FILES} files x 256 MiB under `/tmp`, "
        "page cache warm; `sync` before every timed step, outputs removed and synced away "
        "after it). Re-registration runs in-process through the Python API into a fresh "
        "SQLite registry; `sign --name` and `cp` are separate processes, interleaved.",
        "",
        "| what | median (s) | min-max (s) |",
        "|---|---:|---:|",
    ]
    for algorithm, numbers in again.items():
        lines.append(
            f"| register 1 GiB (4 files), first, `{algorithm}` | "
            f"{statistics.median(numbers['first']):.2f} | {spread(numbers['first'])} |"
        )
        lines.append(
            f"| register the same 1 GiB again, `{algorithm}` | "
            f"{statistics.median(numbers['again']):.2f} | {spread(numbers['again'])} |"
        )
    lines.append(
        f"| `mlprov sign --name` 2 GiB (8 files), fresh registry | "
        f"{statistics.median(sign['sign']):.2f} | {spread(sign['sign'])} |"
    )
    lines.append(
        f"| `cp -r` + `sync` of each copy, same 2 GiB, same disk | "
        f"{statistics.median(sign['cp']):.2f} | {spread(sign['cp'])} |"
    )
    if sign["baseline"]:
        lines.append(
            f"| `mlprov sign --name` with `{args.baseline_src}` (before these changes) | "
            f"{statistics.median(sign['baseline']):.2f} | {spread(sign['baseline'])} |"
        )
    lines += ["", "| target | measured (median of per-repeat ratios) | met |", "|---|---:|---|"]
    for algorithm, numbers in again.items():
        ratios = [f / a for f, a in zip(numbers["first"], numbers["again"], strict=True)]
        ratio = statistics.median(ratios)
        met = "yes" if ratio >= RE_REGISTER_TARGET else "**no**"
        lines.append(
            f"| re-registration >= {RE_REGISTER_TARGET:g} x faster than first, `{algorithm}` "
            f"| {ratio:.1f} x ({min(ratios):.1f}-{max(ratios):.1f}) | {met} |"
        )
    ratios = [s / c for s, c in zip(sign["sign"], sign["cp"], strict=True)]
    ratio = statistics.median(ratios)
    met = "yes" if ratio <= SIGN_TARGET else "**no**"
    lines.append(
        f"| `sign --name` <= {SIGN_TARGET:g} x `cp` + `sync` | "
        f"{ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | {met} |"
    )
    if sign["baseline"]:
        before = statistics.median(
            [b / c for b, c in zip(sign["baseline"], sign["cp"], strict=True)]
        )
        lines.append(f"| (before these changes: `sign --name` / `cp` + `sync`) | {before:.2f} | |")
    lines += ["", "Machine:", "", *info, ""]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace (or add) the ``## Registration`` section of docs/benchmarks.md, keeping
    the others (the prose below the tables is kept: it ends at ``### What the ...``)."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Registration\n.*?(?=^### |^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="Do not update the docs.")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="Also time `sign --name` with the mlprov sources in this folder (an older "
        "checkout's src/), interleaved with the others.",
    )
    args = parser.parse_args()
    load_before = load_text()

    with tempfile.TemporaryDirectory(prefix="mlprov-bench-registration-", dir="/tmp") as tmp:
        work = Path(tmp)
        print(f"generating {FILES} x 256 MiB under {work} ...", file=sys.stderr)
        model = work / "model"
        make_model(model)
        small = work / "model-1g"
        subset(model, small, RE_REGISTER_FILES)
        from mlprov import signing  # noqa: PLC0415 - only to make the benchmark's key

        key = work / "bench.key"
        key.write_bytes(signing.generate_private_key_pem())
        warm(model)
        os.sync()

        again: dict[str, dict[str, list[float]]] = {}
        for algorithm in ("sha256", "blake3"):
            print(f"re-registering 1 GiB ({algorithm}) ...", file=sys.stderr)
            again[algorithm] = bench_re_register(work, small, algorithm, args.repeats)
        print("mlprov sign --name against cp + sync ...", file=sys.stderr)
        sign = bench_sign(work, model, key, args.repeats, args.baseline_src)

    section = render(again, sign, args, machine(load_before))
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"updated {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
