"""The registry: the one place where IO and decisions meet.

:class:`Registry` is a facade and only wires: each method is one use case, implemented
in its own module of this package over a shared :class:`~mlprov.registry._context.RegistryContext`
(ARCHITECTURE.md, "Target tree"). The CLI and the server call it and never touch the
stores, so every rule (validation, immutability, compare-and-set, the gate, audit) is
enforced here and cannot be bypassed.

* ``models``, ``versions``, ``lineage``, ``evidence``, ``signatures``, ``audit``: the
  aggregates and what a user does with each;
* ``pointers``: aliases and stages, through one move path with the gate in it (``gate``);
* ``resolution``: the registry's signed answer to what an alias names, and a pull that
  installs only what such an answer names (rollback and freeze protection);
* ``gc``: unreferenced blobs removed after a grace period, never racing a registration
  (leases and claims on blobs, ADR 0045);
* ``download``: a version installed in a folder, every digest checked, with its stored
  signature; ``install_verified`` verifies that signature against the trust given first;
* ``tokens``: bearer tokens created, listed, revoked and authenticated into a
  :class:`~mlprov.access.Principal`; :meth:`Registry.acting_as` records that principal as
  the actor;
* ``webhooks``: subscriptions, the delivery log and the :class:`Dispatcher` that sends
  the outbox's events after commit;
* ``_unit``: :class:`~mlprov.registry._unit.Mutation`, one write transaction with its audit
  entries (and their outbox events), and the denial record written in its own transaction.

Importing this package is cheap: each public name is imported from the module that
defines it on first use (PEP 562 ``__getattr__``), so a client-mode command, which needs
only the light value types (:mod:`mlprov.registry.types`, :mod:`mlprov.records`), never
loads the store or SQLAlchemy (ADR 0049). :class:`Registry` itself is in
:mod:`mlprov.registry._facade`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlprov.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from mlprov.events import WebhookSettings
    from mlprov.records import (
        Deployment,
        DeploymentMember,
        DeploymentVersion,
        Revocation,
        StoredFile,
        TokenRecord,
    )
    from mlprov.registry._facade import Registry, open_registry
    from mlprov.registry.api import ProgressCallback as ProgressCallback
    from mlprov.registry.api import RegistryApi
    from mlprov.registry.archive_writing import ExportClosure, ExportedArchive
    from mlprov.registry.deployment_judge import PulledDeployment
    from mlprov.registry.gate import Gate, GateDecision, OpenGate, PointerMove, PolicyGate
    from mlprov.registry.gc import GcReport
    from mlprov.registry.inputs import LINEAGE_RELATIONS, DatasetInput, LineageInput, VersionInput
    from mlprov.registry.policies import Judgement
    from mlprov.registry.pull import PulledVersion
    from mlprov.registry.rebuild import REBUILD_PREDICATE_TYPE, RebuildCheck
    from mlprov.registry.resolution import AliasResolution
    from mlprov.registry.types import (
        AliasStatus,
        Approval,
        EvidenceCheck,
        ImportedArchive,
        IssuedToken,
        NewEvidence,
        PreparedVersion,
        SignedVersion,
        StoredDocument,
        StoredFiles,
        VerifiedDocument,
        VerifiedInstall,
        Waiver,
    )
    from mlprov.registry.uploads import UploadedFile
    from mlprov.registry.webhooks import Dispatcher, DispatchReport
    from mlprov.store.webhooks import OutboxEvent, WebhookDelivery, WebhookSubscription

__all__ = [
    "LINEAGE_RELATIONS",
    "REBUILD_PREDICATE_TYPE",
    "AliasResolution",
    "AliasStatus",
    "Approval",
    "DatasetInput",
    "Deployment",
    "DeploymentMember",
    "DeploymentVersion",
    "DispatchReport",
    "Dispatcher",
    "EvidenceCheck",
    "ExportClosure",
    "ExportedArchive",
    "Gate",
    "GateDecision",
    "GcReport",
    "ImportedArchive",
    "IssuedToken",
    "Judgement",
    "LineageInput",
    "NewEvidence",
    "OpenGate",
    "OutboxEvent",
    "PointerMove",
    "PolicyGate",
    "PreparedVersion",
    "PulledDeployment",
    "PulledVersion",
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
]

#: Where each public name is defined; imported on first use.
_HOMES = {
    "Registry": "mlprov.registry._facade",
    "open_registry": "mlprov.registry._facade",
    "ProgressCallback": "mlprov.registry.api",
    "RegistryApi": "mlprov.registry.api",
    "AliasStatus": "mlprov.registry.types",
    "Approval": "mlprov.registry.types",
    "EvidenceCheck": "mlprov.registry.types",
    "ImportedArchive": "mlprov.registry.types",
    "IssuedToken": "mlprov.registry.types",
    "NewEvidence": "mlprov.registry.types",
    "PreparedVersion": "mlprov.registry.types",
    "SignedVersion": "mlprov.registry.types",
    "StoredDocument": "mlprov.registry.types",
    "StoredFiles": "mlprov.registry.types",
    "VerifiedDocument": "mlprov.registry.types",
    "VerifiedInstall": "mlprov.registry.types",
    "Waiver": "mlprov.registry.types",
    "Deployment": "mlprov.records",
    "DeploymentMember": "mlprov.records",
    "DeploymentVersion": "mlprov.records",
    "Revocation": "mlprov.records",
    "StoredFile": "mlprov.records",
    "TokenRecord": "mlprov.records",
    "LINEAGE_RELATIONS": "mlprov.registry.inputs",
    "DatasetInput": "mlprov.registry.inputs",
    "LineageInput": "mlprov.registry.inputs",
    "VersionInput": "mlprov.registry.inputs",
    "REBUILD_PREDICATE_TYPE": "mlprov.registry.rebuild",
    "RebuildCheck": "mlprov.registry.rebuild",
    "AliasResolution": "mlprov.registry.resolution",
    "DispatchReport": "mlprov.registry.webhooks",
    "Dispatcher": "mlprov.registry.webhooks",
    "ExportClosure": "mlprov.registry.archive_writing",
    "ExportedArchive": "mlprov.registry.archive_writing",
    "Gate": "mlprov.registry.gate",
    "GateDecision": "mlprov.registry.gate",
    "OpenGate": "mlprov.registry.gate",
    "PointerMove": "mlprov.registry.gate",
    "PolicyGate": "mlprov.registry.gate",
    "GcReport": "mlprov.registry.gc",
    "Judgement": "mlprov.registry.policies",
    "OutboxEvent": "mlprov.store.webhooks",
    "WebhookDelivery": "mlprov.store.webhooks",
    "WebhookSubscription": "mlprov.store.webhooks",
    "PulledDeployment": "mlprov.registry.deployment_judge",
    "PulledVersion": "mlprov.registry.pull",
    "UploadedFile": "mlprov.registry.uploads",
    "WebhookSettings": "mlprov.events",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
