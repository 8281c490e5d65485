"""Lineage: edges bound by digest, walks both ways, renderings, and refused inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.registry_env import RegistryEnv, make_model, one_line_error

EXTERNAL = "hf://org/big@sha256:" + "b" * 64
COMMIT = "c0ffee" * 6 + "abcd"


@pytest.fixture
def family(reg: RegistryEnv, tmp_path: Path) -> RegistryEnv:
    base = make_model(tmp_path / "base", {"w.bin": b"base"})
    tuned = make_model(tmp_path / "tuned", {"w.bin": b"tuned"})
    small = make_model(tmp_path / "small", {"w.bin": b"small"})
    reg.cli(
        "register",
        str(base),
        "--name",
        "base",
        "--commit",
        COMMIT,
        "--dataset",
        "pile=s3://data/pile@sha256:" + "a" * 64,
        check=True,
    )
    reg.cli(
        "register",
        str(tuned),
        "--name",
        "tuned",
        "--parent",
        "base@latest",
        "--lineage",
        f"teacher={EXTERNAL}",
        check=True,
    )
    reg.cli(
        "register", str(small), "--name", "small", "--lineage", "quantized-from=tuned/1", check=True
    )
    return reg


def test_ancestors_json_names_every_relation_with_digests(family: RegistryEnv) -> None:
    result = family.cli("lineage", "small/1", "--json", check=True)
    graph = json.loads(result.stdout)
    edges = {(e["child"], e["relation"], e["parent"]) for e in graph["edges"]}
    assert edges == {
        ("small/1", "quantized-from", "tuned/1"),
        ("tuned/1", "parent", "base/1"),
        ("tuned/1", "teacher", "hf://org/big"),
    }
    nodes = {n["key"]: n for n in graph["nodes"]}
    registry = family.registry()
    try:
        assert nodes["base/1"]["digest"] == registry.get_version("base/1").digest
    finally:
        registry.close()
    assert nodes["base/1"]["code_commit"] == COMMIT
    assert nodes["base/1"]["datasets"][0]["name"] == "pile"
    assert nodes["hf://org/big"]["registered"] is False
    assert nodes["hf://org/big"]["digest"] == "sha256:" + "b" * 64


def test_descendants_and_mermaid(family: RegistryEnv) -> None:
    graph = json.loads(
        family.cli("lineage", "base/1", "--descendants", "--json", check=True).stdout
    )
    assert {n["key"] for n in graph["nodes"]} == {"base/1", "tuned/1", "small/1"}
    mermaid = family.cli("lineage", "small/1", "--mermaid", check=True).stdout
    assert mermaid.startswith("graph BT")
    assert "-->|quantized-from|" in mermaid
    tree = family.cli("lineage", "small/1", check=True).stdout
    assert "quantized-from: tuned/1" in tree
    assert "teacher: hf://org/big" in tree


def test_depth_bound_truncates(family: RegistryEnv) -> None:
    graph = json.loads(
        family.cli("lineage", "small/1", "--depth", "1", "--json", check=True).stdout
    )
    assert {n["key"] for n in graph["nodes"]} == {"small/1", "tuned/1"}
    assert graph["truncated"] is True


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--parent", "missing/1"], 4, "model 'missing' not found"),
        (["--parent", "base/9"], 4, "version base/9 not found"),
        (["--lineage", "cousin=base/1"], 2, "unknown lineage relation"),
        (["--lineage", "teacher=hf://x@md5:abc"], 2, "unsupported digest algorithm"),
    ],
)
def test_bad_lineage_is_refused_and_changes_nothing(
    family: RegistryEnv, tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    model = make_model(tmp_path / "new", {"w.bin": b"new"})
    before = family.snapshot()
    result = family.cli("register", str(model), "--name", "newer", *args)
    assert result.returncode == code, result.stderr
    assert needle in one_line_error(result.stderr)
    assert family.snapshot() == before
