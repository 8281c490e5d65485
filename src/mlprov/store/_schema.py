"""Table definitions used by queries. The schema itself is made only by Alembic migrations.

Times are ISO-8601 UTC text with microseconds (``2026-11-27T03:45:01.123456Z``) so they
round-trip exactly on SQLite and PostgreSQL, which the audit chain's hashes rely on.
Documents (params, metrics, datasets, details) are canonical JSON text for the same reason.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("next_version", sa.Integer, nullable=False, server_default="1"),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("hash_algorithm", sa.String(16), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("single_file", sa.Boolean, nullable=False),
    sa.Column("artifact_name", sa.String(255), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("datasets", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("source_uri", sa.Text, nullable=True),
    sa.Column("run_id", sa.String(256), nullable=True),
    sa.Column("code_repo", sa.Text, nullable=True),
    sa.Column("code_commit", sa.String(80), nullable=True),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    # Added by migration 0003: what the training job captured.
    sa.Column("code_dirty", sa.Boolean, nullable=True),
    sa.Column("builder_id", sa.Text, nullable=True),
    sa.Column("started_at", sa.String(32), nullable=True),
    sa.Column("finished_at", sa.String(32), nullable=True),
    sa.Column("environment", sa.Text, nullable=True),  # JSON ["name==version", ...]
    sa.Column("card", sa.Text, nullable=True),  # JSON: the user's model card spec
    # Added by migration 0005: each file's format by content (JSON list of FileFormat).
    sa.Column("formats", sa.Text, nullable=True),
    sa.UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
)

version_files = sa.Table(
    "version_files",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(140), nullable=False),
    sa.Column("blob", sa.String(64), nullable=False),
)

version_tags = sa.Table(
    "version_tags",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

lineage_edges = sa.Table(
    "lineage_edges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("relation", sa.String(32), nullable=False),
    sa.Column("target_version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=True),
    sa.Column("target_uri", sa.Text, nullable=True),
    sa.Column("target_digest", sa.String(140), nullable=True),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

stage_history = sa.Table(
    "stage_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("from_stage", sa.String(16), nullable=False),
    sa.Column("to_stage", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row: the head of the audit chain. Every mutation locks it first (SELECT ... FOR
# UPDATE on PostgreSQL; SQLite's immediate transactions already serialise writers), so
# audit sequence numbers and the hash chain never fork under concurrency.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Signatures and attestations, kept as the exact bytes that were signed (STYLE.md, 2).
evidence = sa.Table(
    "evidence",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("media_type", sa.String(128), nullable=False),
    sa.Column("predicate_type", sa.String(256), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("signer", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.UniqueConstraint("version_id", "digest", name="uq_evidence_version_digest"),
)

# Policy sets applied to the registry (migration 0004): the newest version is active.
# Files are kept as the exact bytes applied, so the digest recomputes.
policy_sets = sa.Table(
    "policy_sets",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("applied_at", sa.String(32), nullable=False),
    sa.Column("applied_by", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

policy_files = sa.Table(
    "policy_files",
    metadata,
    sa.Column("version", sa.Integer, sa.ForeignKey("policy_sets.version"), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("content", sa.LargeBinary, nullable=False),
)

# Revocations (migration 0004): a version (name/number), a key (its hint) or an identity.
revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("signer", sa.Text, nullable=False),
    sa.Column("bundle", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("kind", "value", name="uq_revocations_kind_value"),
)

# Idempotency keys of registrations over HTTP (migration 0009): one per model and key,
# with the digest of the request that made the version, so a retry with the same key and
# the same request returns that version and a different request under it is refused.
registration_keys = sa.Table(
    "registration_keys",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("request_digest", sa.String(80), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

# Idempotency keys of export records over HTTP (migration 0013, ADR 0054 amendment): one
# per key, whatever the reference (it is in the request's body, not its path), with the
# digest of the request, the audit entry it made and the answer it was given, so a retry
# with the same key and request gets that answer and writes no second entry.
export_keys = sa.Table(
    "export_keys",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("request_digest", sa.String(80), nullable=False),
    sa.Column("audit_seq", sa.Integer, sa.ForeignKey("audit_log.seq"), nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

# Bearer tokens (migration 0006). ``models`` is a canonical JSON list of name patterns;
# ``secret_sha256`` the hex SHA-256 of the whole secret (docs/adr/0042), never the secret.
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("models", sa.Text, nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=True),
    sa.Column("revoked_at", sa.String(32), nullable=True),
    sa.Column("revoked_by", sa.String(256), nullable=True),
    sa.Column("revoke_reason", sa.Text, nullable=True),
)

# Webhooks (migration 0007): subscriptions (the secret is kept: the dispatcher signs
# with it), the outbox (one row per event, written with its audit entry) and the delivery
# log (one row per event and subscription, claimed by compare-and-set).
webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),  # JSON list; empty: every event
    sa.Column("models", sa.Text, nullable=False),  # JSON list of patterns; empty: every model
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

outbox_events = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("model", sa.String(128), nullable=True),
    sa.Column("audit_seq", sa.Integer, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),  # the exact body every POST sends
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("dispatched", sa.Boolean, nullable=False),  # fanned out to deliveries
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "subscription_id", sa.Integer, sa.ForeignKey("webhook_subscriptions.id"), nullable=False
    ),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("outbox_events.id"), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending, delivered, failed
    sa.Column("next_attempt_at", sa.String(32), nullable=False),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_attempt_at", sa.String(32), nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("claimed_by", sa.String(128), nullable=True),
    sa.Column("claimed_until", sa.String(32), nullable=True),
)

# Holds on blobs (migration 0008, ADR 0045): a registration's lease on a blob it stores
# or reuses, or mlprov gc's claim on one it removes. One row per digest, so the two
# exclude each other; ``holder`` names the row's incarnation (a registration checks at
# commit that the lease it took is still that row), ``expires_at`` when it goes stale.
blob_holds = sa.Table(
    "blob_holds",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
)

# Added by migration 0014: every claim on a blob (gc removing it, or an import undoing a
# blob it stored), numbered in commit order (claims are taken under the writer lock): a
# registration from stored blobs reads the highest number before it reads the blobs and
# checks at commit that no claim on them came after (ADR 0045, amendment). Pruned by gc
# after a day; AUTOINCREMENT so that SQLite never gives a number twice.
blob_removals = sa.Table(
    "blob_removals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sqlite_autoincrement=True,
)

# Added by migration 0011: deployments (docs/deployments.md).
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("next_version", sa.Integer, nullable=False, server_default="1"),
)

deployment_versions = sa.Table(
    "deployment_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("meta", sa.Text, nullable=False),
    sa.Column("bundle", sa.LargeBinary, nullable=False),
    sa.Column("bundle_digest", sa.String(80), nullable=False),
    sa.Column("signer", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

deployment_members = sa.Table(
    "deployment_members",
    metadata,
    sa.Column(
        "deployment_version_id",
        sa.Integer,
        sa.ForeignKey("deployment_versions.id"),
        primary_key=True,
    ),
    sa.Column("role", sa.String(64), primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("digest", sa.String(160), nullable=False),
)

deployment_aliases = sa.Table(
    "deployment_aliases",
    metadata,
    sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column(
        "deployment_version_id", sa.Integer, sa.ForeignKey("deployment_versions.id"), nullable=True
    ),
    sa.Column("generation", sa.Integer, nullable=False),
)

deployment_alias_history = sa.Table(
    "deployment_alias_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"), nullable=False),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

# Where imported versions came from (migration 0012, ADR 0051): the origin registry and
# version, the digest of the archive's signed manifest, whether the bytes came along.
version_origins = sa.Table(
    "version_origins",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("archive_digest", sa.String(80), nullable=False),
    sa.Column("origin_registry_id", sa.String(80), nullable=False),
    sa.Column("origin_registry_uri", sa.Text, nullable=False),
    sa.Column("origin_version", sa.String(200), nullable=False),
    sa.Column("with_bytes", sa.Boolean, nullable=False),
    sa.Column("imported_at", sa.String(32), nullable=False),
    sa.Column("imported_by", sa.String(256), nullable=False),
)
