"""Running many refused CLI invocations in one process and checking that together they
changed nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.registry_env import RegistryEnv, one_line_error

Case = tuple[list[str], int, str]  # arguments, exit code, a word the one-line error contains


_BATCH = """\
import contextlib, io, json, sys, traceback
from mlprov.cli import main

results = []
for name, args in json.load(sys.stdin):
    sys.__stderr__.write(f"case {name}\\n")
    sys.__stderr__.flush()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
    results.append([name, code, out.getvalue(), err.getvalue()])
json.dump(results, sys.__stdout__)
"""


def cli_batch(
    reg: RegistryEnv, cases: dict[str, list[str]], timeout: float = 120
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run many CLI invocations in one fresh process, each through ``mlprov.cli.main`` (what
    ``python -m mlprov`` runs) with its own stdout and stderr: the same exit codes and
    messages as separate processes, without paying interpreter start-up per case."""
    process = subprocess.run(
        [sys.executable, "-c", _BATCH],
        input=json.dumps(list(cases.items())),
        env=reg.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if process.returncode != 0:
        last = process.stderr.strip().splitlines()[-1:] if process.stderr.strip() else []
        pytest.fail(f"CLI batch failed after {last}: {process.stderr[-2000:]}")
    return {
        name: subprocess.CompletedProcess(cases[name], code, out, err)
        for name, code, out, err in json.loads(process.stdout)
    }


def assert_refused(reg: RegistryEnv, cases: dict[str, Case]) -> None:
    """Run every case; each must exit with its code and one line naming the problem, and
    together they must leave the registry exactly as it was."""
    before = reg.snapshot()
    try:
        results = cli_batch(reg, {name: args for name, (args, _, _) in cases.items()})
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"a case blocked: {e.stderr!r}")
    problems = []
    for name, (_args, code, word) in cases.items():
        result = results[name]
        if result.returncode != code:
            problems.append(f"{name}: exit {result.returncode}, expected {code}: {result.stderr}")
            continue
        try:
            line = one_line_error(result.stderr)
        except AssertionError as e:
            problems.append(f"{name}: not one error line: {e}")
            continue
        if word.lower() not in line.lower():
            problems.append(f"{name}: {word!r} not in {line!r}")
    assert not problems, "\n".join(problems)
    assert reg.snapshot() == before
