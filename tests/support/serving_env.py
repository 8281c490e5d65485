"""A registry whose ``production`` alias is served: a policy set applied, a signed version
behind the alias, and the registry's own key pair for signed resolutions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlprov.signing import (
    KeySigner,
    KeyTrust,
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
)
from support.gate_env import GateEnv, gate_env
from support.registry_env import RegistryEnv

#: Serving requires only the trainer's signature (the gate tests cover richer policies).
SIGNED_BY_TRAINER = "- signatures: {count: 1, signers: [trainer]}\n"


@dataclass
class ServingEnv:
    gate: GateEnv
    registry_key: Path
    registry_public: Path

    @property
    def reg(self) -> RegistryEnv:
        return self.gate.reg

    def signer(self) -> KeySigner:
        return KeySigner.from_pem(self.registry_key.read_bytes())

    def trust(self) -> KeyTrust:
        return KeyTrust(self.registry_public.read_bytes())

    def new_version(self, tmp: Path) -> int:
        return self.gate.sign_version("m", tmp)

    def move(self, version: int) -> None:
        registry = self.reg.registry()
        try:
            registry.set_alias("m", "production", version)
        finally:
            registry.close()


def serving_env(reg: RegistryEnv, tmp_path: Path) -> ServingEnv:
    """``m@production`` -> version 1, signed by the trusted trainer; the registry key pair
    in ``registry.pem`` / ``registry.pub``."""
    gate = gate_env(reg, tmp_path)
    gate.apply(SIGNED_BY_TRAINER)
    private = tmp_path / "registry.pem"
    private.write_bytes(generate_private_key_pem())
    public = tmp_path / "registry.pub"
    public.write_bytes(public_key_pem(load_private_key(private.read_bytes()).public_key()))
    env = ServingEnv(gate, private, public)
    env.move(env.new_version(tmp_path / "v1"))
    return env
