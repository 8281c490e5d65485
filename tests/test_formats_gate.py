"""Formats through the registry, on both backends: detected at registration, stored with
the version, recorded in its signed ML-BOM, and enforced by a policy's formats rule."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlprov.errors import PolicyDenied
from support.format_samples import os_system_pickle, safetensors_file, torch_zip
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv, make_model

_OS_SYSTEM = "nt.system" if sys.platform == "win32" else "posix.system"
FORBID = "- formats: {forbid: [pickle-import]}"


@pytest.fixture
def env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    return gate_env(reg, tmp_path)


def _sign(env: GateEnv, folder: Path) -> None:
    env.reg.cli(
        *("sign", str(folder), "--key", str(env.key_file("trainer"))),
        *("--name", "m", "--no-git", "-q"),
        check=True,
    )


def test_a_malicious_pickle_is_recorded_and_kept_out_of_production(
    env: GateEnv, tmp_path: Path
) -> None:
    env.apply(FORBID)
    model = make_model(
        tmp_path / "evil",
        {"model.safetensors": safetensors_file(), "extra/evil.pkl": os_system_pickle()},
    )
    _sign(env, model)

    registry = env.reg.registry()
    try:
        record = registry.get_version("m/1")
        assert [(f.path, f.format) for f in record.formats] == [
            ("extra/evil.pkl", "pickle-import"),
            ("model.safetensors", "safetensors"),
        ]
        assert record.formats[0].imports == [_OS_SYSTEM]
        bom = registry.verified_document("m/1", "bom").statement["predicate"]
        model_component = bom["metadata"]["component"]
        assert [
            p["value"] for p in model_component["properties"] if p["name"] == "mlprov:format"
        ] == [
            "pickle-import",
            "safetensors",
        ]
        files = {c["name"]: c for c in model_component["components"]}
        assert {"name": "mlprov:pickle-global", "value": _OS_SYSTEM} in files["extra/evil.pkl"][
            "properties"
        ]
        before = env.reg.snapshot()
        with pytest.raises(PolicyDenied) as caught:
            registry.set_alias("m", "production", 1)
        assert caught.value.exit_code == 1
        assert "formats" in caught.value.message
        assert "pickle-import" in caught.value.message
        after = env.reg.snapshot()
        assert after["aliases"] == before["aliases"]
        assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1
        assert registry.audit_log()[-1].action.endswith(".denied")
    finally:
        registry.close()


def test_only_safetensors_passes(env: GateEnv, tmp_path: Path) -> None:
    env.apply(FORBID + "\n- formats: {allow: [safetensors, json]}")
    model = make_model(
        tmp_path / "safe",
        {"model.safetensors": safetensors_file(), "config.json": '{"layers": 2}'},
    )
    _sign(env, model)
    registry = env.reg.registry()
    try:
        assert registry.set_alias("m", "production", 1) is not None
        entry = registry.audit_log()[-1]
        assert json.loads(entry.details)["decision"]["allowed"] is True
    finally:
        registry.close()


def test_a_torch_checkpoint_is_shown_with_its_imports(env: GateEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "pt", {"model.pt": torch_zip()})
    _sign(env, model)
    shown = env.reg.cli("versions", "show", "m/1", "--json", check=True)
    formats = json.loads(shown.stdout)["formats"]
    assert formats == [
        {
            "path": "model.pt",
            "format": "pickle-import",
            "imports": ["torch._utils._rebuild_tensor_v2"],
            "note": "zip archive; scanned archive/data.pkl",
        }
    ]
    table = env.reg.cli("versions", "show", "m/1", check=True)
    assert "model.pt: pickle-import (imports torch._utils._rebuild_tensor_v2)" in table.stdout


def test_an_unsigned_registration_records_formats_too(env: GateEnv, tmp_path: Path) -> None:
    registry = env.reg.registry()
    try:
        record = registry.register(make_model(tmp_path / "u", {"w.pkl": os_system_pickle()}), "m")
        assert [f.format for f in record.formats] == ["pickle-import"]
    finally:
        registry.close()
