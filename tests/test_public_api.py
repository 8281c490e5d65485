"""The public surface of ``mlprov`` and ``mlprov.registry``, pinned (STYLE.md, 11)."""

from __future__ import annotations

import subprocess
import sys

import mlprov
import mlprov.registry

ROOT = {
    "Registry",
    "RegistryConfig",
    "TrainingRun",
    "__version__",
    "connect",
    "install_verified",
    "load_verified",
    "open_registry",
    "sign",
    "training_run",
    "verify",
    "verify_or_raise",
}
REGISTRY = {
    "AliasResolution",
    "Deployment",
    "DeploymentMember",
    "DeploymentVersion",
    "PulledDeployment",
    "AliasStatus",
    "Approval",
    "DatasetInput",
    "DispatchReport",
    "Dispatcher",
    "EvidenceCheck",
    "Gate",
    "GateDecision",
    "GcReport",
    "ExportClosure",
    "ExportedArchive",
    "ImportedArchive",
    "IssuedToken",
    "Judgement",
    "LINEAGE_RELATIONS",
    "LineageInput",
    "NewEvidence",
    "OpenGate",
    "OutboxEvent",
    "PointerMove",
    "PolicyGate",
    "PreparedVersion",
    "PulledVersion",
    "REBUILD_PREDICATE_TYPE",
    "RebuildCheck",
    "Registry",
    "RegistryApi",
    "Revocation",
    "SignedVersion",
    "StoredDocument",
    "StoredFile",
    "StoredFiles",
    "TokenRecord",
    "UploadedFile",
    "VerifiedDocument",
    "VerifiedInstall",
    "VersionInput",
    "Waiver",
    "WebhookDelivery",
    "WebhookSettings",
    "WebhookSubscription",
    "open_registry",
}


def test_the_public_names_are_pinned_and_all_resolve() -> None:
    assert set(mlprov.__all__) == ROOT
    assert set(mlprov.registry.__all__) == REGISTRY
    for name in ROOT:
        assert getattr(mlprov, name) is not None
    for name in REGISTRY:
        assert getattr(mlprov.registry, name) is not None


def test_importing_the_engines_leaves_mlprov_verify_the_function() -> None:
    """A subpackage named like a root function would replace it once imported (ADR 0038)."""
    code = (
        "import mlprov.verification, mlprov.policy, mlprov.registry, mlprov\n"
        "assert callable(mlprov.verify) and mlprov.verify.__module__ == 'mlprov._api'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
