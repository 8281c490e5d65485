"""A registry with a policy set applied and keys for each role, for the gate tests."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlprov.signing import KeySigner, generate_private_key_pem, load_private_key, public_key_pem
from support.registry_env import RegistryEnv, make_model

LOCAL_BUILDER = "https://mlprov.dev/builders/local/v1"


@dataclass
class GateEnv:
    reg: RegistryEnv
    folder: Path
    keys: dict[str, bytes]  # role name -> private key PEM

    def signer(self, name: str) -> KeySigner:
        return KeySigner.from_pem(self.keys[name])

    def key_file(self, name: str) -> Path:
        path = self.folder.parent / f"{name}.pem"
        path.write_bytes(self.keys[name])
        return path

    def write_policy(self, requirements: str, *, options: str = "") -> Path:
        """A policy for alias ``production`` of every model, with ``requirements`` (YAML
        list items) and ``options`` (policy-level keys such as waivers), beside the trust."""
        body = textwrap.indent(textwrap.dedent(requirements).strip(), " " * 6)
        extra = textwrap.indent(textwrap.dedent(options).strip(), " " * 4) if options else ""
        text = (
            "version: 1\npolicies:\n  - name: prod\n    models: ['*']\n"
            "    targets:\n      aliases: [production]\n    require:\n" + body + "\n"
        )
        if extra:
            text += extra + "\n"
        (self.folder / "production.yaml").write_text(text)
        return self.folder

    def apply(self, requirements: str, *, options: str = "") -> None:
        folder = self.write_policy(requirements, options=options)
        registry = self.reg.registry()
        try:
            files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
            files.update({f"keys/{p.name}": p.read_bytes() for p in (folder / "keys").iterdir()})
            registry.apply_policy(files)
        finally:
            registry.close()

    def sign_version(self, name: str, tmp: Path, *, signer: str = "trainer", **info: Any) -> int:
        from mlprov.registry import VersionInput

        registry = self.reg.registry()
        try:
            model = make_model(tmp, {"w.bin": f"{name} {tmp.name}"})
            signed = registry.sign_and_register(
                model, name, self.signer(signer), VersionInput(**info), write_signature=False
            )
            return signed.version.version
        finally:
            registry.close()


def gate_env(reg: RegistryEnv, tmp_path: Path) -> GateEnv:
    """Trust: ``trainer`` (model signer and builder of mlprov's local builder id),
    ``evaluator``, approvers ``alice``, ``bob`` and ``carol``; ``mallory`` is untrusted."""
    folder = tmp_path / "policies"
    (folder / "keys").mkdir(parents=True)
    names = ("trainer", "evaluator", "alice", "bob", "carol", "mallory")
    keys = {name: generate_private_key_pem() for name in names}
    for name in names[:-1]:
        (folder / "keys" / f"{name}.pub").write_bytes(
            public_key_pem(load_private_key(keys[name]).public_key())
        )
    roles = {
        "trainer": "[model-signer, builder]",
        "evaluator": "[evaluator]",
        "alice": "[approver]",
        "bob": "[approver]",
        "carol": "[approver]",
    }
    signers = "".join(
        f"    - name: {name}\n      roles: {role}\n      keys:\n        - file: keys/{name}.pub\n"
        + (f"      builder_ids: [{LOCAL_BUILDER}]\n" if name == "trainer" else "")
        for name, role in roles.items()
    )
    (folder / "trust.yaml").write_text(f"version: 1\ntrust:\n  signers:\n{signers}")
    return GateEnv(reg, folder, keys)
