"""Pull benchmark: ``mlprov pull`` of a large model from ``mlprov serve`` against a plain
HTTP download of the same bytes from the same server, in one run.

    python benchmarks/bench_pull.py                  # 1 GiB, print the table
    python benchmarks/bench_pull.py --write          # and update docs/benchmarks.md

One version of one file (``--size`` MiB, default 1024) is signed with a fresh key and
registered in a SQLite registry with a policy set that trusts that key for alias
``production``; one ``mlprov serve`` worker serves it on loopback. Each round, in
alternating order:

* **mlprov pull**: ``python -m mlprov pull bench@production --to DIR --key trainer.pub``
  as a user runs it (``MLPROV_REGISTRY=http://...``): the process starts, resolves the
  alias, asks the server's gate, verifies the signature against the key here, streams
  the blob while hashing it (one pass), installs the folder atomically (fsynced);
* **mlprov pull --no-sync**: the same, without the fsyncs (docs/serving.md, "Installs
  without fsync": for a pod's ``emptyDir``); every byte is still hashed and checked;
* **curl**: ``curl -o FILE`` of ``GET /api/v1/blobs/{sha256}`` (the same bytes, the same
  server, the same token), no hashing, no fsync;
* **httpx**: a ``python -c`` process streaming the same URL to a file with httpx in
  1 MiB chunks, no hashing, no fsync.

Two rows give context and are not targets: **curl + sync** (curl, then ``sync FILE``:
the same download made durable, as the pull's install is) and **imports only** (a
``python -c`` process importing what ``mlprov pull`` against a server imports, and
nothing else: the start-up share of the pull's wall time).

Wall times are of whole processes (start-up included), median of ``--rounds``; the ratio
is pull over each plain download. Before each timed command the dirty pages are written
back (``sync``, untimed), so each starts from the same state. The page cache holds the
blob on the server side after the first round for all three alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import clean_env, free_port, machine, process, wait_ready

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
MARK = "<!-- bench_pull -->"
END = "<!-- /bench_pull -->"

PULL_IMPORTS = "import mlprov.cli, mlprov.cli.pull, mlprov.client, mlprov.signing"

HTTPX_DOWNLOAD = """
import sys, httpx
url, token, target = sys.argv[1:4]
with httpx.stream("GET", url, headers={"Authorization": "Bearer " + token}, timeout=600) as r:
    r.raise_for_status()
    with open(target, "wb") as out:
        for chunk in r.iter_bytes(1024 * 1024):
            out.write(chunk)
"""


def make_registry(home: Path, size_mib: int) -> tuple[str, str, Path]:
    """The signed version behind alias production: (token secret, blob sha256, public key)."""
    from mlprov.config import RegistryConfig  # noqa: PLC0415
    from mlprov.registry import open_registry  # noqa: PLC0415
    from mlprov.signing import (  # noqa: PLC0415
        KeySigner,
        generate_private_key_pem,
        load_private_key,
        public_key_pem,
    )

    pem = generate_private_key_pem()
    public = home / "trainer.pub"
    public.write_bytes(public_key_pem(load_private_key(pem).public_key()))
    policies = {
        "trust.yaml": (
            b"version: 1\ntrust:\n  signers:\n    - name: trainer\n      roles: [model-signer]\n"
            b"      keys:\n        - file: keys/trainer.pub\n"
        ),
        "keys/trainer.pub": public.read_bytes(),
        "production.yaml": (
            b"version: 1\npolicies:\n  - name: prod\n    models: ['*']\n    targets:\n"
            b"      aliases: [production]\n    require:\n"
            b"      - signatures: {count: 1, signers: [trainer]}\n"
        ),
    }
    model = home / "model"
    model.mkdir()
    block = os.urandom(16 * 1024 * 1024)
    with open(model / "weights.bin", "wb") as out:
        for _ in range(size_mib // 16):
            out.write(block)
    registry = open_registry(
        RegistryConfig(home=home, metadata_uri=f"sqlite:///{home / 'registry.db'}"),
        actor="bench",
    )
    try:
        registry.apply_policy(policies)
        signed = registry.sign_and_register(
            model, "bench", KeySigner.from_pem(pem), write_signature=False
        )
        registry.set_alias("bench", "production", signed.version.version)
        files = registry.version_files(f"bench/{signed.version.version}")
        secret = registry.create_token("reader", name="serving").secret
    finally:
        registry.close()
    shutil.rmtree(model)
    return secret, files[0].blob, public


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args[:4]} exited {done.returncode}: {done.stderr[-1000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB (a multiple of 16)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    curl = shutil.which("curl")
    results: dict[str, list[float]] = {}
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-pull-", dir=os.environ.get("TMPDIR")) as d:
        work = Path(d)
        home = work / "home"
        home.mkdir()
        secret, blob, public = make_registry(home, args.size)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = clean_env() | {"MLPROV_HOME": str(home), "MLPROV_SERVER_RATE": "0"}
        env["MLPROV_REGISTRY"] = f"sqlite:///{home / 'registry.db'}"
        serve = [sys.executable, "-m", "mlprov", "serve", "--port", str(port)]
        serve += ["--workers", "1", "--log-level", "warning"]
        client = clean_env() | {"MLPROV_REGISTRY": base, "MLPROV_TOKEN": secret}
        client["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
        client |= {"SYNC": shutil.which("sync") or "sync", "OUT": str(work / "c.bin")}
        url = f"{base}/api/v1/blobs/{blob}"
        with process(
            serve, env | {"PYTHONPATH": client["PYTHONPATH"]}, work / "serve.log"
        ) as child:
            wait_ready(f"{base}/readyz", child)
            commands = {
                "mlprov pull": [
                    sys.executable, "-m", "mlprov", "pull", "bench@production",
                    "--to", str(work / "pulled"), "--key", str(public),
                ],
                "mlprov pull --no-sync": [
                    sys.executable, "-m", "mlprov", "pull", "bench@production",
                    "--to", str(work / "pulled"), "--key", str(public), "--no-sync",
                ],
                "httpx": [sys.executable, "-c", HTTPX_DOWNLOAD, url, secret, str(work / "h.bin")],
            }  # fmt: skip
            if curl:
                commands["curl"] = [
                    curl, "-sS", "--fail", "-H", f"Authorization: Bearer {secret}",
                    "-o", str(work / "c.bin"), url,
                ]  # fmt: skip
                sync = shutil.which("sync")
                if sync:
                    commands["curl + sync"] = [
                        "sh", "-c", '"$0" "$@" && "$SYNC" "$OUT"', *commands["curl"],
                    ]  # fmt: skip
            commands["imports only"] = [sys.executable, "-c", PULL_IMPORTS]
            order = list(commands)
            timed(commands["httpx"], client)  # warm the page cache on the server side
            for index in range(args.rounds):
                for kind in order if index % 2 == 0 else reversed(order):
                    shutil.rmtree(work / "pulled", ignore_errors=True)
                    for leftover in ("h.bin", "c.bin"):
                        (work / leftover).unlink(missing_ok=True)
                    # Write back every dirty page first (untimed), so no download pays for
                    # the writeback of the one before it.
                    subprocess.run(["sync"], check=True)
                    results.setdefault(kind, []).append(timed(commands[kind], client))
                    if kind.startswith("mlprov pull"):
                        installed = sum(
                            f.stat().st_size for f in (work / "pulled").rglob("*") if f.is_file()
                        )
                        if installed < args.size * 1024 * 1024:
                            raise RuntimeError(f"the pull installed {installed} bytes, not all")
                    print(f"round {index + 1} {kind}: {results[kind][-1]:.2f} s", file=sys.stderr)
    medians = {kind: statistics.median(values) for kind, values in results.items()}
    text = table(medians, args, load_at_start)
    print(text)
    if args.write:
        doc = DOC.read_text(encoding="utf-8")
        head, sep, rest = doc.partition(MARK)
        if sep:
            doc = head + text + rest.partition(END)[2]
        else:
            doc = doc.rstrip("\n") + "\n\n" + text + "\n"
        DOC.write_text(doc, encoding="utf-8")


def table(
    medians: dict[str, float], args: argparse.Namespace, load_at_start: tuple[float, ...]
) -> str:
    pull = medians["mlprov pull"]
    mib = args.size
    lines = [
        MARK,
        "",
        f"Measured by `python benchmarks/bench_pull.py` ({mib} MiB, one file; median of "
        f"{args.rounds} rounds in alternating order; one server worker on SQLite; wall "
        "time of each whole process, start-up included; dirty pages written back before "
        "each).",
        "",
        "| download | wall (s) | MiB/s | mlprov pull / this |",
        "|---|---:|---:|---:|",
    ]
    for kind, wall in medians.items():
        if kind == "imports only":  # no bytes moved: start-up, not a download
            lines.append(f"| {kind} (no download) | {wall:.2f} | - | - |")
        else:
            lines.append(f"| {kind} | {wall:.2f} | {mib / wall:,.0f} | {pull / wall:.2f} |")
    # Like against like: a pull that fsyncs against a download made durable, and one that
    # does not against curl, which does not either.
    pairs = [
        ("mlprov pull --no-sync", "curl", "neither fsyncs"),
        ("mlprov pull", "curl + sync", "both durable"),
        ("mlprov pull", "curl", "context: only the pull fsyncs"),
    ]
    lines += [
        "",
        "| comparison | ratio | target (issue 10) | met |",
        "|---|---:|---:|---|",
    ]
    for mine, plain, why in pairs:
        if mine in medians and plain in medians:
            ratio = medians[mine] / medians[plain]
            target = "context" if why.startswith("context") else "<= 1.15"
            met = "-" if target == "context" else ("yes" if ratio <= 1.15 else "no")
            lines.append(f"| `{mine}` / {plain} ({why}) | {ratio:.2f} | {target} | {met} |")
    start = " / ".join(f"{x:.1f}" for x in load_at_start)
    lines += [
        "",
        "Machine:",
        "",
        *machine(),
        f"- Load average at the start (1/5/15 min): {start}",
        "",
        END,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
