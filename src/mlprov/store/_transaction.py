"""One open transaction: the rows of each aggregate, as records, on one connection.

The registry's use cases compose these inside :meth:`MetadataStore.write`, so a whole
operation (a version with its files, lineage, evidence and audit entries; an alias move
with its history and audit entry) commits together or not at all. Every SQL statement of
mlprov is in the aggregate modules of this package (``models``, ``versions``,
``lineage``, ``evidence``, ``aliases``, ``stages``, ``audit``, ``webhooks``, ...).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy import exc

from mlprov.errors import ConflictError, InvalidInputError, MlprovError, StorageError
from mlprov.store import _schema as t
from mlprov.store._rows import LaterWrites
from mlprov.store.aliases import AliasRows
from mlprov.store.audit import AuditRows
from mlprov.store.blob_holds import BlobHoldRows
from mlprov.store.deployment_aliases import DeploymentAliasRows
from mlprov.store.deployments import DeploymentRows
from mlprov.store.evidence import EvidenceRows
from mlprov.store.export_keys import ExportKeyRows
from mlprov.store.lineage import LineageRows
from mlprov.store.models import ModelRows
from mlprov.store.origins import VersionOriginRows
from mlprov.store.policies import PolicyRows
from mlprov.store.registration_keys import RegistrationKeyRows
from mlprov.store.revocations import RevocationRows
from mlprov.store.stages import StageRows
from mlprov.store.tokens import TokenRows
from mlprov.store.versions import VersionRows
from mlprov.store.webhooks import WebhookRows

__all__ = ["StoreTransaction", "translate_db_error"]


def translate_db_error(error: exc.SQLAlchemyError) -> MlprovError:
    """Map a database failure to the most specific mlprov error."""
    if isinstance(error, exc.IntegrityError):
        return ConflictError(f"conflicting change: {_first_line(error.orig or error)}")
    text = _first_line(error.orig if isinstance(error, exc.DBAPIError) and error.orig else error)
    lowered = text.lower()
    if isinstance(error, exc.DataError) and "nul (0x00)" in lowered:
        # PostgreSQL text cannot hold NUL (SQLite can): the caller's text, not the store.
        return InvalidInputError("text with a NUL character cannot be stored or searched for")
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        return StorageError(f"metadata store is read-only: {text}")
    if "disk is full" in lowered or "no space" in lowered or "database or disk is full" in lowered:
        return StorageError(f"metadata store is full: {text}")
    if "unable to open database" in lowered:
        return StorageError(f"cannot open the metadata store: {text}")
    if isinstance(error, exc.OperationalError):
        return StorageError(f"metadata store unavailable: {text}")
    return StorageError(f"metadata store error: {text}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class StoreTransaction:
    """One open transaction. Each attribute holds one aggregate's queries."""

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of this transaction that rolls back alone when it raises (SAVEPOINT)."""
        # The lock and the queued writes go first, outside the savepoint (the hook
        # would send them before SAVEPOINT anyway); then the head is known.
        self.later.send()
        head = self.audit.known_head
        try:
            with self.connection.begin_nested():
                yield
                self.later.send()  # inside the savepoint, so they are released with it
        except BaseException as e:
            # Its audit entries rolled back with it: the head is the one before it.
            self.later.discard()
            self.audit.known_head = head
            if isinstance(e, exc.SQLAlchemyError):
                raise translate_db_error(e) from e
            raise

    def __init__(self, connection: sa.Connection, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect
        #: Writes sent together later on PostgreSQL (mlprov.store._rows.LaterWrites).
        self.later = LaterWrites(connection, dialect)

    # Each aggregate's queries, made on first use: a transaction uses two or three of
    # them, and making all seventeen was a measurable part of a registration.
    @functools.cached_property
    def models(self) -> ModelRows:
        return ModelRows(self.connection, self.later)

    @functools.cached_property
    def versions(self) -> VersionRows:
        return VersionRows(self.connection, self.later)

    @functools.cached_property
    def lineage(self) -> LineageRows:
        return LineageRows(self.connection)

    @functools.cached_property
    def evidence(self) -> EvidenceRows:
        return EvidenceRows(self.connection)

    @functools.cached_property
    def aliases(self) -> AliasRows:
        return AliasRows(self.connection)

    @functools.cached_property
    def stages(self) -> StageRows:
        return StageRows(self.connection)

    @functools.cached_property
    def audit(self) -> AuditRows:
        return AuditRows(self.connection, self.later)

    @functools.cached_property
    def policies(self) -> PolicyRows:
        return PolicyRows(self.connection)

    @functools.cached_property
    def revocations(self) -> RevocationRows:
        return RevocationRows(self.connection)

    @functools.cached_property
    def registration_keys(self) -> RegistrationKeyRows:
        return RegistrationKeyRows(self.connection)

    @functools.cached_property
    def export_keys(self) -> ExportKeyRows:
        return ExportKeyRows(self.connection)

    @functools.cached_property
    def tokens(self) -> TokenRows:
        return TokenRows(self.connection)

    @functools.cached_property
    def webhooks(self) -> WebhookRows:
        return WebhookRows(self.connection, self.later)

    @functools.cached_property
    def blob_holds(self) -> BlobHoldRows:
        return BlobHoldRows(self.connection, self.later)

    @functools.cached_property
    def deployments(self) -> DeploymentRows:
        return DeploymentRows(self.connection)

    @functools.cached_property
    def deployment_aliases(self) -> DeploymentAliasRows:
        return DeploymentAliasRows(self.connection)

    @functools.cached_property
    def origins(self) -> VersionOriginRows:
        return VersionOriginRows(self.connection)

    def counts(self) -> dict[str, int]:
        """Rows per table (for `audit verify` summaries and the tests' state snapshots).

        ``blob_holds`` and ``blob_removals`` are left out: their rows coordinate gc with
        registrations and expire on their own; they are not registry state (ADR 0045)."""
        tables = (
            t.models,
            t.versions,
            t.version_files,
            t.aliases,
            t.alias_history,
            t.stage_history,
            t.audit_log,
            t.evidence,
            t.policy_sets,
            t.revocations,
            t.registration_keys,
            t.export_keys,
            t.tokens,
            t.webhook_subscriptions,
            t.outbox_events,
            t.webhook_deliveries,
            t.deployments,
            t.deployment_versions,
            t.deployment_members,
            t.deployment_aliases,
            t.deployment_alias_history,
            t.version_origins,
        )
        return {
            table.name: int(
                self.connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
            for table in tables
        }

    def audit_head(self) -> tuple[int, str]:
        """The chain head (kept here too: the tests' snapshots read it)."""
        return self.audit.head()
