"""The registry package's shared machinery: the gate slot of the pointer-move path,
denials recorded in their own transaction, signing outside write transactions, and
compare-and-set on the version number under racing signed registrations."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlprov.config import RegistryConfig
from mlprov.errors import PolicyDenied
from mlprov.records import ModelVersion, Stage
from mlprov.registry import Gate, GateDecision, PointerMove, Registry, open_registry
from mlprov.signing import KeySigner, SignedBundle, Signer, SignerIdentity
from support.registry_env import RegistryEnv, make_model


class RecordingGate(Gate):
    """Denies moves to the versions in ``deny``; remembers what it was asked."""

    def __init__(self, deny: set[int] | None = None, explode: bool = False) -> None:
        self.deny = deny or set()
        self.explode = explode
        self.asked: list[tuple[PointerMove, int | None, int | None]] = []

    def _decide(
        self, move: PointerMove, target: ModelVersion | None, current: ModelVersion | None
    ) -> GateDecision:
        self.asked.append(
            (move, target.version if target else None, current.version if current else None)
        )
        if self.explode:
            raise KeyError("a rule looked up a field that is not there")
        if move.to_version in self.deny:
            return GateDecision(False, (f"version {move.to_version} is not signed",), "sha256:ab")
        return GateDecision(True, (), "sha256:ab")


def _open(reg: RegistryEnv, gate: Gate | None = None) -> Registry:
    return open_registry(
        RegistryConfig(home=reg.home, metadata_uri=reg.metadata_uri), actor="tester@ci", gate=gate
    )


@pytest.fixture
def three_versions(reg: RegistryEnv, tmp_path: Path) -> RegistryEnv:
    registry = reg.registry()
    try:
        for n in range(3):
            registry.register(make_model(tmp_path / f"v{n}", {"w.bin": f"w{n}"}), "m")
        registry.set_alias("m", "prod", 2)
    finally:
        registry.close()
    return reg


@pytest.mark.parametrize(
    ("move", "subject", "action"),
    [
        (lambda r: r.set_alias("m", "prod", 3), "m@prod", "alias.set.denied"),
        (lambda r: r.set_alias("m", "prod", 1), "m@prod", "alias.rollback.denied"),
        (lambda r: r.delete_alias("m", "prod"), "m@prod", "alias.delete.denied"),
        (lambda r: r.set_stage("m", 3, Stage.PRODUCTION), "m/3", "stage.set.denied"),
    ],
    ids=["set", "rollback", "delete", "stage"],
)
def test_every_pointer_move_asks_the_gate_and_a_denial_is_audited_alone(
    three_versions: RegistryEnv, move: Any, subject: str, action: str
) -> None:
    gate = RecordingGate(deny={1, 3, None})  # type: ignore[arg-type]
    registry = _open(three_versions, gate)
    try:
        before = three_versions.snapshot()
        with pytest.raises(PolicyDenied) as caught:
            move(registry)
        assert caught.value.exit_code == 1
        assert "not signed" in caught.value.message
        after = three_versions.snapshot()
        # Only the denial entry (and its move.denied event) was written: no alias, stage
        # or history row moved.
        assert after["aliases"] == before["aliases"] == {"m": {"prod": 2}}
        denial_rows = {"audit_log", "outbox_events"}
        assert {k: v for k, v in after["rows"].items() if k not in denial_rows} == {
            k: v for k, v in before["rows"].items() if k not in denial_rows
        }
        assert after["rows"]["audit_log"] == before["rows"]["audit_log"] + 1
        assert after["rows"]["outbox_events"] == before["rows"]["outbox_events"] + 1
        denial = registry.audit_log()[-1]
        assert (denial.action, denial.subject) == (action, subject)
        assert json.loads(denial.details)["decision"]["allowed"] is False
        assert registry.verify_audit() == len(registry.audit_log())
        assert [v.stage for v in registry.list_versions("m")] == [Stage.NONE] * 3
    finally:
        registry.close()


def test_the_gate_sees_the_move_its_target_and_the_current_version(
    three_versions: RegistryEnv,
) -> None:
    gate = RecordingGate()
    registry = _open(three_versions, gate)
    try:
        event = registry.set_alias("m", "prod", 3, reason="release")
        assert event is not None
        assert event.generation == 2
        move, target, current = gate.asked[-1]
        assert (move.pointer, move.model, move.name, move.action) == ("alias", "m", "prod", "set")
        assert (move.from_version, move.to_version, move.reason) == (2, 3, "release")
        assert (target, current) == (3, 2)
        # An allowed decision made by a policy is recorded with the move.
        entry = registry.audit_log()[-1]
        assert entry.action == "alias.set"
        assert json.loads(entry.details)["decision"]["policy_digest"] == "sha256:ab"
        # A no-op is not a move: the gate is not asked.
        asked = len(gate.asked)
        assert registry.set_alias("m", "prod", 3) is None
        assert len(gate.asked) == asked
    finally:
        registry.close()


def test_an_error_inside_the_gate_is_a_denial(three_versions: RegistryEnv) -> None:
    registry = _open(three_versions, RecordingGate(explode=True))
    try:
        with pytest.raises(PolicyDenied, match="the gate failed: KeyError"):
            registry.set_alias("m", "prod", 3)
        assert registry.get_alias("m", "prod").version == 2
        assert registry.audit_log()[-1].action == "alias.set.denied"
    finally:
        registry.close()


def _key_signer() -> KeySigner:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeySigner.from_pem(pem)


class WatchingSigner(Signer):
    """Signs with a real key and records whether a write transaction was open."""

    def __init__(self, inner: KeySigner, registry: Registry) -> None:
        self.inner = inner
        self.registry = registry
        self.during_write: list[bool] = []

    @property
    def identity(self) -> SignerIdentity:
        return self.inner.identity

    def _sign(self, statement: bytes) -> SignedBundle:
        self.during_write.append(self.registry.metadata.in_write_transaction)
        return self.inner.sign(statement)


def test_signatures_and_documents_are_made_outside_the_write_transaction(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    registry = reg.registry()
    try:
        signer = WatchingSigner(_key_signer(), registry)
        signed = registry.sign_and_register(make_model(tmp_path / "m"), "m", signer)
        # The OMS signature, then provenance, ML-BOM and model card: four signatures.
        assert signer.during_write == [False, False, False, False]
        assert [e.kind for e in signed.version.evidence] == [
            "signature",
            "provenance",
            "bom",
            "model-card",
        ]
    finally:
        registry.close()


def test_racing_signed_registrations_get_distinct_numbers_named_by_their_documents(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    """Each racer signs documents naming the number it read; a racer that lost that
    number signs again for the next one, so every version's ML-BOM names itself."""
    racers = 4
    folders = [make_model(tmp_path / f"r{i}", {"w.bin": f"racer {i}"}) for i in range(racers)]
    barrier = threading.Barrier(racers)
    errors: list[BaseException] = []
    signer = _key_signer()

    def run(folder: Path) -> None:
        registry = reg.registry()
        try:
            barrier.wait()
            registry.sign_and_register(folder, "raced", signer, write_signature=False)
        except BaseException as e:  # collected and re-raised in the test thread
            errors.append(e)
        finally:
            registry.close()

    threads = [threading.Thread(target=run, args=(f,)) for f in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    registry = reg.registry()
    try:
        versions = registry.list_versions("raced")
        assert [v.version for v in versions] == list(range(1, racers + 1))
        for version in versions:
            statement = registry.document(version.ref, "bom").statement
            assert f"models:/raced/{version.version}" in json.dumps(statement)
        assert registry.verify_audit() == len(registry.audit_log())
    finally:
        registry.close()


def test_audit_subject_matches_underscore_and_percent_literally(
    reg: RegistryEnv, tmp_path: Path
) -> None:
    registry = reg.registry()
    try:
        for name in ("a_b", "axb", "a_bc"):
            registry.create_model(name)
        registry.register(make_model(tmp_path / "m"), "axb")
        assert {e.subject for e in registry.audit_log(subject="a_b")} == {"a_b"}
        assert {e.subject for e in registry.audit_log(subject="a_")} == set()
        assert {e.subject for e in registry.audit_log(subject="axb")} == {"axb", "axb/1"}
    finally:
        registry.close()


class PolicyChangingGate(Gate):
    """Judges by the registry's policy; on its first decision a new policy set lands
    (as if applied by someone else between the decision and the commit)."""

    judges_registry_policy = True

    def __init__(self, registry_env: RegistryEnv) -> None:
        self.env = registry_env
        self.digests: list[str | None] = []

    def _decide(
        self, move: PointerMove, target: ModelVersion | None, current: ModelVersion | None
    ) -> GateDecision:
        registry = self.env.registry()
        try:
            with registry.metadata.read() as tx:
                digest = tx.policies.active_digest()
            if not self.digests:
                with registry.metadata.write() as tx:
                    tx.policies.insert(
                        digest="sha256:" + "1" * 64,
                        files={"p.yaml": b"{}"},
                        at="2026-12-01T00:00:00.000000Z",
                        actor="someone@else",
                        reason="",
                    )
        finally:
            registry.close()
        self.digests.append(digest)
        return GateDecision(True, (), digest)


def test_a_policy_change_racing_a_move_makes_it_decide_again(
    three_versions: RegistryEnv,
) -> None:
    gate = PolicyChangingGate(three_versions)
    registry = _open(three_versions, gate)
    try:
        registry.set_alias("m", "prod", 3)
        # First decision under no policy lost the compare-and-set on the policy digest;
        # the move was decided again under the new set and committed with its digest.
        assert gate.digests == [None, "sha256:" + "1" * 64]
        entry = registry.audit_log()[-1]
        assert entry.action == "alias.set"
        assert json.loads(entry.details)["decision"]["policy_digest"] == "sha256:" + "1" * 64
        assert registry.get_alias("m", "prod").version == 3
    finally:
        registry.close()
