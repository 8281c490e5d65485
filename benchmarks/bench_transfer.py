"""Transfer benchmark: ``mlprov export`` / ``mlprov import`` of a 2 GiB version against
copying the same bytes with ``tar`` (issue 11, item 7: at most 1.3x).

    python benchmarks/bench_transfer.py                 # 2 GiB in 8 files, 3 repeats
    python benchmarks/bench_transfer.py --size-gib 0.25 --repeats 2

In ONE run, each repeat runs these as separate processes, interleaved, the order of the
pairs rotating from repeat to repeat (so a change of machine load hits both sides alike):

* ``mlprov export m/1 --to A.tar --key K`` from a SQLite registry holding the signed
  version, against ``tar cf B.tar -C WORK model`` of the model folder (same bytes);
* ``mlprov import A.tar`` into a fresh SQLite registry with the same trust (set up before
  the clock starts), against ``tar xf B.tar -C FRESH``;
* for context only, ``sync`` after both (mlprov makes every blob durable with fsync
  before it commits; tar does not): ``tar xf`` + ``sync`` is the durable copy.

Before every timed command the dirty pages are written back (``sync``, untimed), so each
command starts from the same state: a warm read cache and nothing waiting to be written.

Wall time is the median over the repeats. The page cache is warm (the model and the
source registry's blobs are read once first). Results are printed as Markdown; copy them
into docs/benchmarks.md with the machine description printed below them.
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
from pathlib import Path

GIB = 1024**3
CHUNK = 8 * 1024 * 1024
SRC = Path(__file__).resolve().parents[1] / "src"


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPROV_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONPATH=str(SRC), MLPROV_HOME=str(home), MLPROV_ACTOR="bench@local")
    return env


def run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"bench_transfer: command failed ({done.returncode}): {' '.join(cmd)}\n"
            f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
        )
    return wall


def settle() -> None:
    """Write back every dirty page before a timed command (untimed): otherwise a command
    pays for the writeback of the one before it (2 GiB each), and which of a pair runs
    second decides more than what it does."""
    subprocess.run(["sync"], check=True)


def mlprov(home: Path, *args: str) -> list[str]:
    del home
    return [sys.executable, "-m", "mlprov", *args]


def make_model(folder: Path, total: int, files: int) -> None:
    folder.mkdir(parents=True)
    block = bytearray(os.urandom(CHUNK))
    per_file = total // files
    counter = 0
    for index in range(files):
        size = per_file if index < files - 1 else total - per_file * (files - 1)
        with open(folder / f"part-{index + 1:03d}.safetensors", "wb") as out:
            left = size
            while left:
                counter += 1
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


def policy_folder(work: Path, key: Path) -> Path:
    """Trust: the key that signs the model (model signer); one policy for production."""
    folder = work / "policy"
    (folder / "keys").mkdir(parents=True)
    public = folder / "keys" / "trainer.pub"
    run(mlprov(work, "keys", "public", str(key), "--out", str(public)), child_env(work))
    (folder / "trust.yaml").write_text(
        "version: 1\ntrust:\n  signers:\n    - name: trainer\n      roles: [model-signer]\n"
        "      keys:\n        - file: keys/trainer.pub\n"
    )
    (folder / "production.yaml").write_text(
        "version: 1\npolicies:\n  - name: prod\n    models: ['*']\n    targets:\n"
        "      aliases: [production]\n    require:\n"
        "      - signatures: {count: 1, signers: [trainer]}\n"
    )
    return folder


def fresh_target(work: Path, name: str, policy: Path) -> Path:
    home = work / name
    run(mlprov(home, "policy", "apply", str(policy)), child_env(home))
    return home


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores",
        f"- Memory: {mem:.1f} GiB",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()}",
        f"- Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    tar = shutil.which("tar")
    if tar is None:
        sys.exit("bench_transfer: tar is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir=args.workdir))
    try:
        return bench(args, work, tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(args: argparse.Namespace, work: Path, tar: str) -> int:
    total = int(args.size_gib * GIB)
    model = work / "model"
    make_model(model, total, args.files)
    source = work / "source"
    key = work / "trainer.pem"
    env = child_env(source)
    run(mlprov(source, "keys", "generate", "--out", str(key)), env)
    policy = policy_folder(work, key)
    run(mlprov(source, "policy", "apply", str(policy)), env)
    run(mlprov(source, "sign", str(model), "--name", "m", "--key", str(key), "--quiet"), env)
    warm(model)
    warm(source / "blobs")

    labels = ("export", "tar c", "import", "tar x", "tar x + sync")
    walls: dict[str, list[float]] = {k: [] for k in labels}
    for repeat in range(args.repeats):
        ours, theirs = work / f"ours-{repeat}.tar", work / f"theirs-{repeat}.tar"
        target = fresh_target(work, f"target-{repeat}", policy)
        fresh = work / f"untarred-{repeat}"
        fresh.mkdir()
        pairs = [
            ("export", mlprov(source, "export", "m/1", "--to", str(ours), "--key", str(key)), env),
            ("tar c", [tar, "cf", str(theirs), "-C", str(work), "model"], None),
        ]
        if repeat % 2:
            pairs.reverse()
        for label, cmd, cmd_env in pairs:
            settle()
            walls[label].append(run(cmd, cmd_env))
        second = [
            ("import", mlprov(target, "import", str(ours)), child_env(target)),
            ("tar x", [tar, "xf", str(theirs), "-C", str(fresh)], None),
        ]
        if repeat % 2:
            second.reverse()
        for label, cmd, cmd_env in second:
            settle()
            walls[label].append(run(cmd, cmd_env))
            if label == "tar x":
                # The same copy made durable, as mlprov's import is (context, not a target).
                walls["tar x + sync"].append(walls["tar x"][-1] + run(["sync"]))
        for path in (ours, theirs):
            path.unlink()
        shutil.rmtree(fresh)
        shutil.rmtree(target)

    med = {k: statistics.median(v) for k, v in walls.items()}
    size = total / GIB
    print(f"2 GiB transfer: {size:g} GiB in {args.files} files, {args.repeats} repeats\n")
    print("| command | median wall (s) | min-max (s) | GiB/s |")
    print("|---|---:|---:|---:|")
    rows = [
        ("`mlprov export m/1 --to A.tar --key K`", "export"),
        ("`tar cf B.tar -C WORK model`", "tar c"),
        ("`mlprov import A.tar` (fresh registry)", "import"),
        ("`tar xf B.tar -C FRESH`", "tar x"),
        ("`tar xf` then `sync` (durable, as mlprov's import is)", "tar x + sync"),
    ]
    for text, key_ in rows:
        values = walls[key_]
        print(
            f"| {text} | {med[key_]:.2f} | {min(values):.2f}-{max(values):.2f} | "
            f"{size / med[key_]:.2f} |"
        )
    export_ratio = med["export"] / med["tar c"]
    import_ratio = med["import"] / med["tar x"]
    print("\n| target (issue 11, item 7) | measured | met |")
    print("|---|---:|---|")
    for text, ratio in (
        ("export <= 1.3 x `tar cf`", export_ratio),
        ("import <= 1.3 x `tar xf`", import_ratio),
    ):
        print(f"| {text} | {ratio:.2f} | {'yes' if ratio <= 1.3 else 'no'} |")
    durable = med["import"] / med["tar x + sync"]
    print(f"| (context) import / (`tar xf` + `sync`) | {durable:.2f} | - |")
    print("\nMachine:\n")
    print("\n".join(machine()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
