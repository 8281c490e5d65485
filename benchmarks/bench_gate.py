"""Gate benchmark: the latency of a gated alias move, SQLite and PostgreSQL side by side,
for a small model and for a 10 GiB one.

    python benchmarks/bench_gate.py                 # print the table, update docs
    python benchmarks/bench_gate.py --no-write      # print only
    python benchmarks/bench_gate.py --moves 50 --large-gib 1 --no-write
    python benchmarks/bench_gate.py --large-gib 0 --profile sqlite --no-write  # profile

What is measured, in-process through the Python API (``mlprov.registry.Registry``, the
registry's default ``PolicyGate``):

* A policy set applied with ``Registry.apply_policy``: trust for a model signer that is
  also a builder (``trainer``), an evaluator and an approver, and a policy on alias
  ``production`` requiring one trusted signature, provenance from the trusted builder, a
  metric threshold read from the signed evidence, one approval and verified lineage (and,
  by default, that every verification check passes).
* A model ``small``: a chain ``small/1 <- small/2 <- small/3``, then two candidates
  ``small/4`` and ``small/5`` that each name ``small/3`` as parent, so each candidate has
  lineage depth 3. Every version is made by ``sign_and_register`` (OMS signature, SLSA
  provenance, ML-BOM, model card) and gets two evaluation attestations from the evaluator
  (``Registry.attest``): five attestations per version besides the signature, all
  verified, ancestors included. Both candidates carry one approval for ``production``.
* A model ``large``, the same but its two candidates are ``--large-gib`` GiB each
  (default 10): a sparse file of that size (zeros, no disk used at the source) plus a
  small file that differs, so their big file is stored once in the blob store
  (content-addressed). The gate never re-reads stored bytes, so its cost should not
  depend on the size.
* ``--moves`` rounds (after ``--warm-up`` rounds not counted) of one gated move of
  ``NAME@production`` per model, interleaved, each to the other candidate than the last.
  Each is a real ``set_alias`` through the gate (verify the candidate and its ancestors,
  judge the policy, compare-and-set commit with its audit entry); only the ``set_alias``
  call is timed. Reported: p50, p99, mean, max per backend and model.

PostgreSQL runs in a fresh schema (dropped afterwards) of ``$MLPROV_TEST_POSTGRES``
(default ``postgresql://root@127.0.0.1:5432/test``); SQLite and the blob store live in a
temporary folder, deleted afterwards (``--workdir`` chooses where).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_registry import backend, machine, percentile

from mlprov.errors import PolicyDenied
from mlprov.registry import LineageInput, Registry, VersionInput
from mlprov.signing import KeySigner, generate_private_key_pem, load_private_key, public_key_pem

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "Gated alias moves"
TARGET_P99_MS = 50.0
EVALUATION = "https://mlprov.dev/evaluation/v1"
ROLES = {
    "trainer": "[model-signer, builder]",
    "evaluator": "[evaluator]",
    "approver": "[approver]",
}
TRUST = "version: 1\ntrust:\n  signers:\n" + "".join(
    f"    - name: {name}\n      roles: {roles}\n      keys:\n        - file: keys/{name}.pub\n"
    + ("      builder_ids: [https://mlprov.dev/builders/local/v1]\n" if name == "trainer" else "")
    for name, roles in ROLES.items()
)
POLICY = """\
version: 1
policies:
  - name: prod
    models: ['*']
    targets:
      aliases: [production]
    require:
      - signatures: {count: 1, signers: [trainer]}
      - provenance: {builders: [trainer], build_types: ['https://mlprov.dev/training/v1']}
      - id: auc
        metric: "auc >= 0.9"
      - approvals: {count: 1}
      - verified_lineage: true
"""


@dataclass
class Keys:
    pems: dict[str, bytes]

    def signer(self, name: str) -> KeySigner:
        return KeySigner.from_pem(self.pems[name])

    def policy_files(self) -> dict[str, bytes]:
        files = {"trust.yaml": TRUST.encode(), "production.yaml": POLICY.encode()}
        for name, pem in self.pems.items():
            files[f"keys/{name}.pub"] = public_key_pem(load_private_key(pem).public_key())
        return files


def model_folder(folder: Path, seed: int, large_bytes: int) -> Path:
    """A model: a small config and either small weights or a sparse file of ``large_bytes``
    (zeros: the file system stores no data for it, reading it hashes zeros)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(f'{{"seed": {seed}}}\n', encoding="utf-8")
    weights = folder / "weights.bin"
    if large_bytes:
        with weights.open("wb") as handle:
            handle.truncate(large_bytes)
    else:
        weights.write_bytes(seed.to_bytes(8, "big") * 128)
    return folder


def add_version(registry: Registry, keys: Keys, name: str, folder: Path, parent: int | None) -> int:
    """One version as a training job makes it: signed with documents, two evaluations."""
    lineage = [LineageInput("parent", f"{name}/{parent}")] if parent is not None else []
    signed = registry.sign_and_register(
        folder,
        name,
        keys.signer("trainer"),
        VersionInput(metrics={"auc": 0.95}, lineage=lineage),
        write_signature=False,
    )
    number = signed.version.version
    for split, auc in (("holdout", 0.94), ("recent", 0.93)):
        registry.attest(
            f"{name}/{number}",
            EVALUATION,
            {"metrics": {"auc": auc}, "split": split},
            keys.signer("evaluator"),
        )
    return number


@dataclass
class Candidates:
    """Two approved versions of ``name`` with lineage depth 3; ``production`` alternates
    between them, so every move really moves the pointer."""

    name: str
    versions: tuple[int, int]
    size: int
    moved: int = 0

    def move(self, registry: Registry) -> float:
        """One gated move to the other candidate; the seconds ``set_alias`` took."""
        target = self.versions[self.moved % 2]
        start = time.perf_counter()
        event = registry.set_alias(self.name, "production", target)
        elapsed = time.perf_counter() - start
        if event is None:
            raise RuntimeError(f"the move to {self.name}/{target} was a no-op")
        self.moved += 1
        return elapsed


def build(registry: Registry, keys: Keys, name: str, work: Path, large_bytes: int) -> Candidates:
    """The chain ``NAME/1 <- NAME/2 <- NAME/3`` and two approved candidates of ``NAME/3``."""
    parent: int | None = None
    for seed in range(3):
        folder = model_folder(work / f"{name}-{seed}", seed, 0)
        parent = add_version(registry, keys, name, folder, parent)
    versions = []
    for seed in (3, 4):
        folder = model_folder(work / f"{name}-{seed}", seed, large_bytes)
        number = add_version(registry, keys, name, folder, parent)
        registry.approve(f"{name}/{number}", "production", keys.signer("approver"))
        versions.append(number)
        shutil.rmtree(folder)
    version = registry.get_version(f"{name}/{versions[0]}")
    kinds = sorted(e.kind for e in registry.evidence(version.ref) if e.kind != "signature")
    print(f"  candidate {version.ref}: {version.size:,} bytes; evidence {kinds}", file=sys.stderr)
    check_gate_is_on(registry, name, parent or 0)
    return Candidates(name, (versions[0], versions[1]), version.size)


def check_gate_is_on(registry: Registry, name: str, unapproved: int) -> None:
    """A version without an approval must be refused: the moves measured are gated."""
    try:
        registry.set_alias(name, "production", unapproved)
    except PolicyDenied as e:
        if "prod/approvals" not in e.message:
            raise RuntimeError(f"{name}/{unapproved} was denied for another reason: {e}") from e
        return
    raise RuntimeError(f"{name}/{unapproved} has no approval but was promoted: the gate is off")


def check_last_moves_allowed(registry: Registry, count: int) -> None:
    """The last ``count`` audit entries are moves allowed by the active policy set, every
    requirement evaluated and passed."""
    active = registry.policy()
    for entry in registry.audit_log()[-count:]:
        decision = json.loads(entry.details).get("decision", {})
        results = decision.get("policy", {}).get("results", [])
        if not (entry.action == "alias.set" or entry.action == "alias.rollback") or not (
            decision["allowed"]
            and active is not None
            and decision["policy_digest"] == active.digest
            and len(results) == 6  # five requirements and prod/verified
            and all(r["status"] == "passed" for r in results)
        ):
            raise RuntimeError(f"unexpected audit entry {entry.action}: {entry.details}")


def time_moves(
    registry: Registry, models: list[Candidates], warm_up: int, moves: int
) -> dict[str, list[float]]:
    """``warm_up`` + ``moves`` rounds of one move per model, interleaved (the order turned
    every round) so that a change of machine load hits every model alike."""
    times: dict[str, list[float]] = {m.name: [] for m in models}
    for index in range(warm_up + moves):
        for model in models if index % 2 == 0 else models[::-1]:
            elapsed = model.move(registry)
            if index >= warm_up:
                times[model.name].append(elapsed)
    return times


def run_backend(
    kind: str, work: Path, keys: Keys, large_bytes: int, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Set up one registry with a small and (unless 0) a large model, time their moves."""
    work.mkdir()
    with backend(kind, work) as make:
        registry = make()
        try:
            registry.apply_policy(keys.policy_files(), reason="gate benchmark")
            t0 = time.perf_counter()
            models = [build(registry, keys, "small", work / "models", 0)]
            if large_bytes:
                models.append(build(registry, keys, "large", work / "models", large_bytes))
            print(f"  set up in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            times = time_moves(registry, models, args.warm_up, args.moves)
            check_last_moves_allowed(registry, len(models))
            if args.profile == kind:
                profile(registry, models, args.profile_moves)
        finally:
            registry.close()
    shutil.rmtree(work, ignore_errors=True)
    return {
        m.name: {
            "p50_ms": percentile(times[m.name], 0.50) * 1000,
            "p99_ms": percentile(times[m.name], 0.99) * 1000,
            "mean_ms": statistics.fmean(times[m.name]) * 1000,
            "max_ms": max(times[m.name]) * 1000,
            "size": float(m.size),
        }
        for m in models
    }


def profile(registry: Registry, models: list[Candidates], moves: int) -> None:
    """A cProfile of ``moves`` more rounds, printed by cumulative and by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    time_moves(registry, models, 0, moves)
    profiler.disable()
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(40)
        print(f"--- profile of {moves} rounds, by {order} ---\n{out.getvalue()}", file=sys.stderr)


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "src"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip() + (" (src modified)" if dirty.stdout.strip() else "")


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def size_text(size: float) -> str:
    if size >= 2**30:
        return f"{size / 2**30:.0f} GiB"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def render(
    results: dict[str, dict[str, dict[str, float]]],
    info: dict[str, str],
    args: argparse.Namespace,
) -> str:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    lines = [
        f"## {SECTION}",
        "",
        "Measured by `python benchmarks/bench_gate.py` in-process through the Python API: "
        f"{args.moves} gated moves of `NAME@production` per case (after {args.warm_up} not "
        "counted), alternating between two candidates, each a real `Registry.set_alias` "
        "through the registry's `PolicyGate` (load, verify, judge, compare-and-set commit "
        "with its audit entry); only the `set_alias` call is timed. Each candidate is a "
        "signed version (OMS signature) with five verified attestations (SLSA provenance, "
        "ML-BOM and model card from `sign_and_register`, two evaluation results from a "
        "trusted evaluator), one approval, and lineage depth 3 (parent, grandparent and "
        "great-grandparent, each signed with the same five attestations and verified "
        "recursively). The policy set, applied with `Registry.apply_policy`, requires a "
        "trusted signature, provenance from a trusted builder, `auc >= 0.9` from the signed "
        "evidence, one approval and verified lineage, besides every verification check "
        "passing; the benchmark checks that every measured move was allowed with all six "
        "results passed, and that a version without an approval is refused.",
    ]
    if args.large_gib:
        lines[-1] += (
            f" The large model's candidates are {args.large_gib:g} GiB each: a file of zeros "
            "(sparse at the source; the blob store holds a real copy, once for both) plus a "
            "small file that differs. The small and the large model live in the same "
            "registry and their moves are interleaved, so both see the same load."
        )
    lines += [
        "",
        "| backend | model | p50 | p99 | mean | max | p99 / target (50 ms) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for kind, models in results.items():
        for r in models.values():
            ratio = r["p99_ms"] / TARGET_P99_MS
            met = "" if ratio < 1 else " **missed**"
            lines.append(
                f"| {label[kind]} | {size_text(r['size'])} | {r['p50_ms']:.1f} ms "
                f"| {r['p99_ms']:.1f} ms | {r['mean_ms']:.1f} ms | {r['max_ms']:.1f} ms "
                f"| {ratio:.2f}{met} |"
            )
    if args.large_gib:
        ratios = ", ".join(
            f"{label[kind]} {models['large']['p50_ms'] / models['small']['p50_ms']:.2f}"
            for kind, models in results.items()
            if "large" in models
        )
        lines += ["", f"Large against small, p50: {ratios}."]
    lines += ["", "Machine:", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "",
        "Run it with `python benchmarks/bench_gate.py` (most of the run time is writing the "
        "large candidates into the blob store; `--large-gib 0` skips them, `--profile "
        "sqlite` prints a cProfile of more moves). The large case needs 2 x `--large-gib` "
        "free in the work folder (the blob and the temporary copy of the second candidate); "
        "the script checks before it starts.",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace (or add) this benchmark's section of docs/benchmarks.md up to its first
    sub-heading, keeping other sections and the hand-written sub-sections (the profile)."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^## {re.escape(SECTION)}\n.*?(?=^##+ |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=10)
    parser.add_argument("--large-gib", type=float, default=10.0, help="0 skips the large case")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--profile", choices=("sqlite", "postgresql"), default=None)
    parser.add_argument("--profile-moves", type=int, default=100)
    parser.add_argument("--no-write", action="store_true", help="Do not update the docs.")
    args = parser.parse_args()
    if args.moves < 2 or args.warm_up < 1:
        parser.error("--moves must be at least 2 and --warm-up at least 1")

    large = int(args.large_gib * 2**30)
    pems = {name: generate_private_key_pem() for name in ROLES}
    keys = Keys(pems)
    load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.perf_counter()
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="mlprov-bench-gate-", dir=args.workdir) as tmp:
        work = Path(tmp)
        if large and free_bytes(work) < 2 * large + 2**30:
            print(
                f"not enough free space in {work} for a {args.large_gib:g} GiB candidate "
                f"(needs {2 * large / 2**30 + 1:.0f} GiB, has {free_bytes(work) / 2**30:.0f}); "
                "use --large-gib with a smaller size or --workdir elsewhere",
                file=sys.stderr,
            )
            return 2
        for kind in args.backends.split(","):
            print(f"[{kind}] setting up ...", file=sys.stderr)
            results[kind] = run_backend(kind, work / kind, keys, large, args)
            for name, r in results[kind].items():
                print(
                    f"[{kind}] {name}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                    f"mean {r['mean_ms']:.1f} ms",
                    file=sys.stderr,
                )
    info = machine()
    end = info.pop("Load average at the end (1/5/15 min)")
    info["Load average at the start (1/5/15 min)"] = load_before
    info["Load average at the end (1/5/15 min)"] = end
    info["mlprov"] = git_commit()
    info["Run time"] = f"{time.perf_counter() - started:.0f} s"
    section = render(results, info, args)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"updated {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
