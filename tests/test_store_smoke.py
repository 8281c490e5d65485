from __future__ import annotations

from pathlib import Path

from conftest import RegistryEnv, make_model


def test_register_and_resolve_on_each_backend(reg: RegistryEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    result = reg.cli("register", str(model), "--name", "demo", "--param", "lr=0.1")
    assert result.returncode == 0, result.stderr
    resolved = reg.cli("resolve", "demo/1")
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.startswith("demo/1 sha256:")
