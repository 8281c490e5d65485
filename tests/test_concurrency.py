"""Concurrency on SQLite and PostgreSQL: no lost or duplicated version numbers, exactly one
winner of an alias race, at most one Production version.

The racing CLI processes are released together by a barrier: each imports mlprov, says
``ready`` on stdout and waits on stdin; once all are ready the test releases them at
once. The command they then run is exactly ``python -m mlprov ARGS`` (``mlprov.cli.main``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from mlprov.errors import ConflictError
from mlprov.hashing import hash_model
from mlprov.records import Stage
from support.registry_env import RegistryEnv, make_model, one_line_error

RACERS = 16

_CHILD = """\
import sys
from mlprov.cli import main
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.readline()
sys.exit(main(sys.argv[1:]))
"""


def race(reg: RegistryEnv, commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Start one CLI process per command, release them together, and collect the results."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, *args],
            env=reg.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line == "ready\n", (line, process.stderr.read() if process.stderr else "")
        for process in processes:  # the barrier opens: every process is waiting on stdin
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for args, process in zip(commands, processes, strict=True):
            out, err = process.communicate(timeout=180)
            results.append(subprocess.CompletedProcess(args, process.returncode, out, err))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _with_registry(reg: RegistryEnv, work: Any) -> Any:
    registry = reg.registry()
    try:
        return work(registry)
    finally:
        registry.close()


def test_racing_registrations_get_versions_1_to_n_none_lost_none_duplicated(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    folders = [
        make_model(tmp_path / f"m{i}", {"config.json": f'{{"run": {i}}}', "w.bin": bytes([i]) * 64})
        for i in range(RACERS)
    ]
    expected = {str(hash_model(folder).digest) for folder in folders}
    assert len(expected) == RACERS

    results = race(reg, [["register", str(f), "--name", "shared", "-q"] for f in folders])

    assert [r.returncode for r in results] == [0] * RACERS, [r.stderr for r in results]
    versions = _with_registry(reg, lambda r: r.list_versions("shared"))
    assert [v.version for v in versions] == list(range(1, RACERS + 1))
    assert {v.digest for v in versions} == expected  # none lost, none registered twice
    # Every process printed the number it got; together they are exactly 1..N.
    printed = Counter(r.stdout.split()[1] for r in results)
    assert printed == Counter(f"shared/{n}" for n in range(1, RACERS + 1))

    snapshot = reg.snapshot()
    assert snapshot["rows"]["models"] == 1
    assert snapshot["rows"]["versions"] == RACERS
    assert snapshot["rows"]["version_files"] == 2 * RACERS
    # One model.create (by whichever process came first) and one entry per version.
    assert snapshot["rows"]["audit_log"] == RACERS + 1
    entries = _with_registry(reg, lambda r: r.audit_log())
    assert Counter(e.action for e in entries) == {"model.create": 1, "version.register": RACERS}
    assert _with_registry(reg, lambda r: r.verify_audit()) == RACERS + 1


def _register_versions(reg: RegistryEnv, tmp_path: Path, name: str, count: int) -> None:
    def work(registry: Any) -> None:
        for i in range(1, count + 1):
            folder = make_model(tmp_path / f"{name}-{i}", {"w.bin": f"{name} {i}".encode()})
            assert registry.register(folder, name).version == i

    _with_registry(reg, work)


def test_racing_alias_moves_with_one_generation_have_exactly_one_winner(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    _register_versions(reg, tmp_path, "m", RACERS + 1)
    _with_registry(reg, lambda r: r.set_alias("m", "prod", 1))
    before = reg.snapshot()

    # Every racer read generation 1 and moves prod to a different version.
    targets = list(range(2, RACERS + 2))
    results = race(
        reg,
        [
            ["alias", "set", "m", "prod", str(t), "--expect-generation", "1", "--reason", f"r{t}"]
            for t in targets
        ],
    )

    codes = Counter(r.returncode for r in results)
    assert codes == {0: 1, 3: RACERS - 1}, [(r.returncode, r.stderr) for r in results]
    winner = next(t for t, r in zip(targets, results, strict=True) if r.returncode == 0)
    for result in results:
        if result.returncode == 3:
            assert "generation" in one_line_error(result.stderr)

    state = _with_registry(reg, lambda r: r.get_alias("m", "prod"))
    assert (state.version, state.generation) == (winner, 2)
    history = _with_registry(reg, lambda r: r.alias_history("m", "prod"))
    moves = [e for e in history if e.generation == 2]
    assert len(history) == 2
    assert len(moves) == 1
    assert (moves[0].from_version, moves[0].to_version, moves[0].reason) == (
        1,
        winner,
        f"r{winner}",
    )
    after = reg.snapshot()
    assert after["rows"]["alias_history"] == before["rows"]["alias_history"] + 1
    assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1
    assert after["rows"]["versions"] == before["rows"]["versions"]
    assert after["blobs"] == before["blobs"]
    assert _with_registry(reg, lambda r: r.verify_audit()) == after["rows"]["audit_log"]


def _thread_race(reg: RegistryEnv, count: int, work: Any) -> list[BaseException | None]:
    """Run ``work(registry, i)`` for i in 1..count on threads released together, each with
    its own registry (own connections); return what each raised (None for success)."""
    barrier = threading.Barrier(count)
    outcomes: list[BaseException | None] = [None] * count

    def run(index: int) -> None:
        registry = reg.registry()
        try:
            barrier.wait(timeout=60)
            work(registry, index + 1)
        except BaseException as e:  # collected and checked in the test thread
            outcomes[index] = e
        finally:
            registry.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_racing_alias_creations_have_exactly_one_winner(reg: RegistryEnv, tmp_path: Path) -> None:
    """Generation 0 means "does not exist yet": the create path races on an INSERT."""
    racers = 8
    _register_versions(reg, tmp_path, "m", racers)
    outcomes = _thread_race(
        reg, racers, lambda r, v: r.set_alias("m", "canary", v, expected_generation=0)
    )
    assert sum(o is None for o in outcomes) == 1, outcomes
    assert all(isinstance(o, ConflictError) for o in outcomes if o is not None), outcomes
    history = _with_registry(reg, lambda r: r.alias_history("m", "canary"))
    assert [(e.kind, e.from_version, e.generation) for e in history] == [("set", None, 1)]


def test_racing_promotions_leave_at_most_one_version_in_production(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    """Threads through the API, each with its own registry (own connections)."""
    count = 8
    _register_versions(reg, tmp_path, "m", count)
    outcomes = _thread_race(
        reg, count, lambda r, v: r.set_stage("m", v, Stage.PRODUCTION, reason=f"v{v}")
    )
    assert outcomes == [None] * count, outcomes

    versions = _with_registry(reg, lambda r: r.list_versions("m"))
    stages = Counter(v.stage for v in versions)
    assert stages == {Stage.PRODUCTION: 1, Stage.ARCHIVED: count - 1}
    history = _with_registry(reg, lambda r: r.stage_history("m"))
    promotions = [e for e in history if e.to_stage == Stage.PRODUCTION]
    archivals = [e for e in history if e.to_stage == Stage.ARCHIVED]
    assert len(promotions) == count
    assert len(archivals) == count - 1
    assert all(e.from_stage == Stage.PRODUCTION for e in archivals)
    # The last promotion is the one still in Production.
    assert promotions[-1].version == next(v.version for v in versions if v.stage == "Production")
    assert _with_registry(reg, lambda r: r.verify_audit()) == reg.snapshot()["rows"]["audit_log"]
