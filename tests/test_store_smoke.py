from __future__ import annotations

from pathlib import Path

from support.registry_env import RegistryEnv, make_model


def test_register_and_resolve_on_each_backend(reg: RegistryEnv, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    result = reg.cli("register", str(model), "--name", "demo", "--param", "lr=0.1")
    assert result.returncode == 0, result.stderr
    resolved = reg.cli("resolve", "demo/1")
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.startswith("demo/1 sha256:")


def test_demo_runs_the_main_job(reg: RegistryEnv) -> None:
    result = reg.cli("demo")
    assert result.returncode == 0, result.stderr
    assert "verified demo-classifier/2: bundle, trust, key, signature" in result.stdout
    assert "rolled back demo-classifier@production -> 1 (rollback)" in result.stdout
    assert "audit chain verified" in result.stdout
    registry = reg.registry()
    try:
        assert registry.get_alias("demo-classifier", "production").version == 1
        kinds = [e.kind for e in registry.get_version("demo-classifier/2").evidence]
        assert kinds == ["signature", "provenance", "bom", "model-card"]
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()
