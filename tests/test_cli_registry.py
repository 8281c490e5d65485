"""The registry through the CLI, on SQLite and PostgreSQL: ``--json`` on every read command,
references in every form, alias and stage rules with their exit codes, and downloads that
are digest-checked and atomic.

Most commands run through :func:`test_bad_input.cli_batch` (many ``mlprov.cli.main`` calls
in one fresh process, each with its own output and exit code) to keep the suite fast;
downloads run as real ``python -m mlprov`` processes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer

from mlprov.cli import app
from support.bad_input import assert_refused, cli_batch
from support.registry_env import RegistryEnv, make_model, one_line_error

FILES: dict[str, bytes | str] = {
    "config.json": '{"layers": 2}\n',
    "weights/part-0.bin": b"\x00\x01" * 512,
    "weights/part-1.bin": b"\x02\x03" * 512,
    "tokenizer/vocab.txt": "a\nb\nc\n",
}


@pytest.fixture
def demo(reg: RegistryEnv, tmp_path: Path) -> RegistryEnv:
    """demo/1 and demo/2 (v2 has different weights), demo@prod -> 1, demo/1 in Staging."""
    registry = reg.registry()
    try:
        registry.register(make_model(tmp_path / "v1", FILES), "demo")
        registry.register(
            make_model(tmp_path / "v2", {**FILES, "weights/part-1.bin": b"\x04" * 1024}), "demo"
        )
        registry.set_alias("demo", "prod", 1, reason="first release")
        registry.set_stage("demo", 1, "Staging")
    finally:
        registry.close()
    return reg


def _ok(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- read commands -------------------------------------------------------------------------

READ_VERBS = {"list", "show", "history", "log", "verify"}


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer may vendor its own click)
            found.update(_commands(command, (*prefix, name)))
        else:
            found[(*prefix, name)] = command
    return found


def test_every_read_command_of_the_registry_has_json() -> None:
    commands = _commands(typer.main.get_command(app))  # type: ignore[arg-type]
    groups = {"models", "versions", "alias", "stage", "audit"}
    read = {
        path: command
        for path, command in commands.items()
        if (path[0] in groups and path[-1] in READ_VERBS) or path == ("resolve",)
    }
    assert len(read) >= 9, sorted(read)
    missing = [
        " ".join(path)
        for path, command in read.items()
        if not any("--json" in p.opts for p in command.params)
    ]
    assert missing == []


def test_json_output_of_every_read_command_parses(demo: RegistryEnv) -> None:
    cases = {
        "models list": ["models", "list", "--json"],
        "models list filtered": ["models", "list", "--prefix", "de", "--json"],
        "models show": ["models", "show", "demo", "--json"],
        "versions list": ["versions", "list", "demo", "--json"],
        "versions show": ["versions", "show", "demo/2", "--json"],
        "versions show files": ["versions", "show", "demo@prod", "--files", "--json"],
        "alias show": ["alias", "show", "demo", "prod", "--json"],
        "alias history": ["alias", "history", "demo", "--json"],
        "alias history one": ["alias", "history", "demo", "prod", "--json"],
        "stage history": ["stage", "history", "demo", "--json"],
        "resolve": ["resolve", "demo@prod", "--json"],
        "audit log": ["audit", "log", "--json"],
        "audit log subject": ["audit", "log", "--subject", "demo", "--limit", "2", "--json"],
        "audit verify": ["audit", "verify", "--json"],
    }
    results = cli_batch(demo, cases)
    parsed = {}
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
        parsed[name] = json.loads(result.stdout)  # raises if not JSON

    assert [m["name"] for m in parsed["models list"]] == ["demo"]
    assert parsed["models list filtered"] == parsed["models list"]
    assert parsed["models show"]["latest_version"] == 2
    assert parsed["models show"]["aliases"] == {"prod": 1}
    assert [v["version"] for v in parsed["versions list"]] == [1, 2]
    assert parsed["versions list"][0]["stage"] == "Staging"
    assert parsed["versions show"]["version"] == 2
    assert sorted(f["path"] for f in parsed["versions show files"]["files"]) == sorted(FILES)
    assert parsed["versions show files"]["aliases"] == {"prod": 1}
    assert "files" not in parsed["versions show"]  # only with --files
    assert parsed["alias show"] == {"name": "demo", "alias": "prod", "version": 1, "generation": 1}
    assert [e["kind"] for e in parsed["alias history"]] == ["set"]
    assert parsed["alias history one"] == parsed["alias history"]
    assert [(e["from_stage"], e["to_stage"]) for e in parsed["stage history"]] == [
        (None, "Staging")
    ]
    assert parsed["versions list"][1]["stage"] is None
    assert parsed["resolve"]["version"] == 1
    seqs = [e["seq"] for e in parsed["audit log"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e["seq"] for e in parsed["audit log subject"]] == seqs[-2:]
    assert parsed["audit verify"] == {"ok": True, "entries": len(seqs)}


def test_references_resolve_in_every_form(demo: RegistryEnv) -> None:
    registry = demo.registry()
    try:
        digests = {v.version: v.digest for v in registry.list_versions("demo")}
        api = {
            form: registry.resolve(form).version
            for form in ("models:/demo/2", "models:/demo@prod", "demo/2", "demo@prod")
        }
    finally:
        registry.close()
    assert api == {"models:/demo/2": 2, "models:/demo@prod": 1, "demo/2": 2, "demo@prod": 1}
    forms = {
        "models:/demo/2": 2,
        "models:/demo@prod": 1,
        "demo/2": 2,
        "demo@prod": 1,
        "demo@latest": 2,
        "models:/demo@latest": 2,
        "demo/1": 1,
    }
    results = cli_batch(demo, {form: ["resolve", form, "--json"] for form in forms})
    for form, version in forms.items():
        document = _ok(results[form])
        assert (document["name"], document["version"]) == ("demo", version), form
        assert document["digest"] == digests[version], form


# -- aliases and stages -----------------------------------------------------------------------


def test_alias_rules_through_the_cli(demo: RegistryEnv) -> None:
    steps = {
        "move to 2": ["alias", "set", "demo", "prod", "2", "--reason", "better", "--json"],
        "again to 2": ["alias", "set", "demo", "prod", "2", "--json"],
        "audit after no-op": ["audit", "log", "--json"],
        "roll back to 1": ["alias", "set", "demo", "prod", "1", "--expect-generation", "2"],
        "delete": ["alias", "delete", "demo", "prod", "--reason", "retired"],
        "show deleted": ["alias", "show", "demo", "prod", "--json"],
        "resolve deleted": ["resolve", "demo@prod"],
        "model after delete": ["models", "show", "demo", "--json"],
        "set after delete": ["alias", "set", "demo", "prod", "2", "--expect-generation", "4"],
        "history": ["alias", "history", "demo", "prod", "--json"],
        "audit": ["audit", "log", "--subject", "demo", "--json"],
    }
    before = demo.snapshot()
    results = cli_batch(demo, steps)

    moved = _ok(results["move to 2"])
    assert (moved["kind"], moved["from_version"], moved["to_version"]) == ("set", 1, 2)
    assert moved["generation"] == 2
    assert _ok(results["again to 2"]) == {"changed": False}  # a no-op: exit 0 ...
    audit_after_noop = _ok(results["audit after no-op"])
    assert len(audit_after_noop) == before["rows"]["audit_log"] + 1  # ... and no audit entry
    assert results["roll back to 1"].returncode == 0, results["roll back to 1"].stderr
    assert "rolled back" in results["roll back to 1"].stdout
    assert results["delete"].returncode == 0, results["delete"].stderr
    assert _ok(results["show deleted"]) == {
        "name": "demo",
        "alias": "prod",
        "version": None,
        "generation": 4,
    }
    assert results["resolve deleted"].returncode == 4
    assert "demo@prod" in one_line_error(results["resolve deleted"].stderr)
    assert _ok(results["model after delete"])["aliases"] == {}
    assert results["set after delete"].returncode == 0, results["set after delete"].stderr

    history = _ok(results["history"])
    assert [(e["kind"], e["from_version"], e["to_version"], e["generation"]) for e in history] == [
        ("set", None, 1, 1),
        ("set", 1, 2, 2),
        ("rollback", 2, 1, 3),
        ("delete", 1, None, 4),
        ("set", None, 2, 5),
    ]
    assert [e["reason"] for e in history][:2] == ["first release", "better"]
    assert history[3]["reason"] == "retired"
    assert all(e["actor"] == "tester@ci" for e in history)
    actions = [e["action"] for e in _ok(results["audit"]) if e["action"].startswith("alias.")]
    assert actions == ["alias.set", "alias.set", "alias.rollback", "alias.delete", "alias.set"]


def test_alias_refusals_change_nothing(demo: RegistryEnv) -> None:
    assert_refused(
        demo,
        {
            "stale generation": (
                ["alias", "set", "demo", "prod", "2", "--expect-generation", "0"],
                3,
                "generation",
            ),
            "future generation": (
                ["alias", "set", "demo", "prod", "2", "--expect-generation", "7"],
                3,
                "generation",
            ),
            "stale delete": (
                ["alias", "delete", "demo", "prod", "--expect-generation", "5"],
                3,
                "generation",
            ),
            "set latest": (["alias", "set", "demo", "latest", "1"], 2, "latest"),
            "set latest with generation": (
                ["alias", "set", "demo", "latest", "1", "--expect-generation", "0"],
                2,
                "latest",
            ),
            "create with stale generation": (
                ["alias", "set", "demo", "canary", "1", "--expect-generation", "1"],
                3,
                "generation",
            ),
        },
    )


def test_stages_through_the_cli(demo: RegistryEnv) -> None:
    steps = {
        "1 to production": ["stage", "set", "demo", "1", "Production", "--reason", "go"],
        "2 to production": ["stage", "set", "demo", "2", "production"],
        "2 again": ["stage", "set", "demo", "2", "Production"],
        "versions": ["versions", "list", "demo", "--json"],
        "history": ["stage", "history", "demo", "--json"],
    }
    results = cli_batch(demo, steps)
    for name in ("1 to production", "2 to production", "2 again"):
        assert results[name].returncode == 0, (name, results[name].stderr)
    assert "demo/1: Production -> Archived" in results["2 to production"].stdout
    assert "nothing changed" in results["2 again"].stdout
    stages = {v["version"]: v["stage"] for v in _ok(results["versions"])}
    assert stages == {1: "Archived", 2: "Production"}
    history = [
        (e["version"], e["from_stage"], e["to_stage"], e["reason"]) for e in _ok(results["history"])
    ]
    assert history == [
        (1, None, "Staging", ""),
        (1, "Staging", "Production", "go"),
        (1, "Production", "Archived", "replaced in Production by demo/2"),
        (2, None, "Production", ""),
    ]


def test_only_tags_and_description_of_a_version_change_and_are_audited(
    demo: RegistryEnv,
) -> None:
    steps = {
        "before": ["versions", "show", "demo/1", "--files", "--json"],
        "tag": ["versions", "tag", "demo/1", "team=risk", "note=x", "--reason", "triage"],
        "untag": ["versions", "tag", "demo/1", "--remove", "note"],
        "describe": ["versions", "describe", "demo@prod", "first good model"],
        "after": ["versions", "show", "demo/1", "--files", "--json"],
        "audit": ["audit", "log", "--subject", "demo", "--limit", "3", "--json"],
    }
    results = cli_batch(demo, steps)
    before, after = _ok(results["before"]), _ok(results["after"])
    assert after["tags"] == {"team": "risk"}
    assert after["description"] == "first good model"
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"tags", "description"}
    entries = _ok(results["audit"])
    assert [(e["action"], e["subject"]) for e in entries] == [
        ("version.tag", "demo/1"),
        ("version.tag", "demo/1"),
        ("version.describe", "demo/1"),
    ]
    assert entries[0]["details"] == {"tags": {"note": "x", "team": "risk"}}
    assert entries[0]["reason"] == "triage"
    assert entries[1]["details"] == {"tags": {"note": None}}


# -- download ------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _expected(files: dict[str, bytes | str]) -> dict[str, bytes]:
    return {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}


def test_download_writes_every_file_and_refuses_a_non_empty_target(
    demo: RegistryEnv, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "demo"
    result = demo.cli("download", "demo@prod", "--to", str(out), "-q", "--json")
    assert _ok(result)["ref"] == "demo/1"
    assert _tree(out) == _expected(FILES)
    empty = tmp_path / "empty"
    empty.mkdir()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine", encoding="utf-8")
    single = tmp_path / "single.bin"
    single.write_bytes(b"a single-file model")
    registry = demo.registry()
    try:
        registry.register(single, "one")
    finally:
        registry.close()
    results = cli_batch(
        demo,
        {
            "into empty folder": ["download", "demo/2", "--to", str(empty), "-q"],
            "single file": ["download", "one/1", "--to", str(tmp_path / "one"), "-q"],
        },
    )
    assert results["into empty folder"].returncode == 0, results["into empty folder"].stderr
    assert _tree(empty)["weights/part-1.bin"] == b"\x04" * 1024
    assert results["single file"].returncode == 0, results["single file"].stderr
    assert _tree(tmp_path / "one") == {"single.bin": b"a single-file model"}
    assert_refused(
        demo,
        {
            "non-empty target": (["download", "demo/1", "--to", str(busy), "-q"], 3, "busy"),
            "target is a file": (["download", "demo/1", "--to", str(single), "-q"], 3, "single"),
        },
    )
    assert _tree(busy) == {"keep.txt": b"mine"}
    assert single.read_bytes() == b"a single-file model"
    leftovers = [p.name for p in tmp_path.iterdir() if ".mlprov-" in p.name]
    assert leftovers == []


def test_a_corrupt_blob_fails_the_download_and_leaves_nothing(
    demo: RegistryEnv, tmp_path: Path
) -> None:
    registry = demo.registry()
    try:
        manifest = registry.manifest("demo/1")
    finally:
        registry.close()
    # Corrupt the last file written, so earlier files were already in the staging folder.
    victim = manifest.by_path()["weights/part-1.bin"].digest.hex
    blob = demo.home / "blobs" / "sha256" / victim[:2] / victim
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = tmp_path / "out"
    before = demo.snapshot()

    result = demo.cli("download", "demo/1", "--to", str(out), "-q")

    assert result.returncode == 1, result.stderr
    assert victim in one_line_error(result.stderr)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert demo.snapshot() == before
    # The other version, which does not use that blob, still downloads.
    assert demo.cli("download", "demo/2", "--to", str(out), "-q").returncode == 0
    assert os.listdir(out)
