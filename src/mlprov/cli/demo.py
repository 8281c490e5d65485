"""``mlprov demo``: the main job end to end on the embedded default registry.

Makes a small model folder, registers two versions, moves ``production`` to the second,
rolls it back to the first, then shows the alias history and the audit log and verifies
the audit chain. Everything goes through the same registry service as every command.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlprov.cli._output import print_table, say, short_time
from mlprov.cli._state import state

if TYPE_CHECKING:
    from mlprov.signing import Signer, Trust


def _write_model(folder: Path, generation: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(
            {"architecture": "logistic-regression", "features": 8, "revision": generation}, indent=2
        )
        + "\n",
        encoding="utf-8",
    )
    # Deterministic "weights": 8 coefficients per generation, as little-endian text.
    weights = "\n".join(f"{(i + 1) * 0.125 * generation:.6f}" for i in range(8))
    (folder / "weights.txt").write_text(weights + "\n", encoding="utf-8")
    (folder / "README.md").write_text(f"# demo-classifier, revision {generation}\n", "utf-8")


def _demo_key(registry_uri: str, scratch: str) -> tuple[Signer, Trust, Path]:
    """A P-256 key for the demo: in the registry folder when it is local, else scratch."""
    from mlprov import signing  # noqa: PLC0415

    home = (
        Path(registry_uri.partition("sqlite:///")[2]).parent
        if registry_uri.startswith("sqlite:///")
        else Path(scratch)
    )
    key_path = home / "demo-signing-key.pem"
    if not key_path.exists():
        key_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.write_bytes(signing.generate_private_key_pem())
        key_path.chmod(0o600)
    private = signing.load_private_key(key_path.read_bytes())
    trust = signing.KeyTrust(signing.public_key_pem(private.public_key()))
    return signing.KeySigner(private), trust, key_path


def demo(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option("--name", metavar="NAME", help="Model name to use.")
    ] = "demo-classifier",
) -> None:
    """Register two versions of a small model, promote, roll back, show history and audit."""
    from mlprov.registry import LineageInput, VersionInput  # noqa: PLC0415

    registry = state(ctx).local_registry("demo")
    say(f"registry: {registry.metadata.uri}")
    say(f"artefacts: {registry.artifacts.uri}")
    with tempfile.TemporaryDirectory(prefix="mlprov-demo-") as scratch:
        folder = Path(scratch) / name
        _write_model(folder, 1)
        first = registry.register(
            folder,
            name,
            VersionInput(
                params={"C": 1.0, "epochs": 5},
                metrics={"auc": 0.91},
                description="first training run",
            ),
        )
        say(f"registered {first.ref} {first.digest}")
        _write_model(folder, 2)
        # The second version is signed at registration, with signed provenance, ML-BOM
        # and model card, by a key made for the demo (kept in the registry folder).
        signer, trust, key_path = _demo_key(registry.metadata.uri, scratch)
        signed = registry.sign_and_register(
            folder,
            name,
            signer,
            VersionInput(
                params={"C": 0.5, "epochs": 8},
                metrics={"auc": 0.93, "auc[segment=retail]": 0.9},
                description="retrained with more epochs",
                lineage=[LineageInput("parent", first.ref)],
            ),
            write_signature=False,
        )
        second = signed.version
        say(
            f"signed and registered {second.ref} {second.digest} with "
            f"{', '.join(e.kind for e in second.evidence)} (key {key_path})"
        )
    report = registry.verify_version(second.ref, trust)
    say(f"verified {second.ref}: " + ", ".join(c.name for c in report.checks if c.passed))
    registry.set_alias(name, "production", first.version, reason="initial release")
    event = registry.set_alias(name, "production", second.version, reason="better AUC")
    generation = event.generation if event else "?"
    say(f"moved {name}@production -> {second.version} (generation {generation})")
    back = registry.set_alias(name, "production", first.version, reason="demo rollback")
    say(f"rolled back {name}@production -> {first.version} ({back.kind if back else 'no-op'})")
    registry.set_stage(name, first.version, "Production", reason="serving")
    with tempfile.TemporaryDirectory(prefix="mlprov-demo-download-") as scratch:
        target = Path(scratch) / "model"
        registry.download(f"{name}@production", target)
        say(
            f"downloaded {name}@production with every digest checked: "
            f"{sorted(p.name for p in target.iterdir())}"
        )
    print_table(
        f"Alias history of {name}@production",
        ["kind", "from", "to", "gen", "who", "when", "reason"],
        (
            (
                e.kind,
                e.from_version or "-",
                e.to_version or "-",
                e.generation,
                e.actor,
                short_time(e.at),
                e.reason,
            )
            for e in registry.alias_history(name, "production")
        ),
    )
    print_table(
        "Audit log (newest 10)",
        ["seq", "who", "action", "subject", "reason", "hash"],
        (
            (e.seq, e.actor, e.action, e.subject, e.reason, e.hash[:12])
            for e in registry.audit_log(limit=10)
        ),
    )
    count = registry.verify_audit()
    say(f"audit chain verified: {count} entries intact")


def install(app: typer.Typer) -> None:
    app.command("demo")(demo)
