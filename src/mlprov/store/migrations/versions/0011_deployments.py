"""Deployments: named, numbered bundles of pinned model versions by role, each version
carrying its signed bundle statement, with aliases and their history (docs/deployments.md,
ADR 0050).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("next_version", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_table(
        "deployment_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        # Canonical JSON of the free metadata (also inside the signed statement).
        sa.Column("meta", sa.Text, nullable=False),
        # The signed bundle statement as the exact bytes signed, and their digest.
        sa.Column("bundle", sa.LargeBinary, nullable=False),
        sa.Column("bundle_digest", sa.String(80), nullable=False),
        sa.Column("signer", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.UniqueConstraint("deployment_id", "number", name="uq_deployment_versions_number"),
    )
    op.create_table(
        "deployment_members",
        sa.Column(
            "deployment_version_id",
            sa.Integer,
            sa.ForeignKey("deployment_versions.id"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        # The member's manifest digest when it was bound (the statement's subject).
        sa.Column("digest", sa.String(160), nullable=False),
    )
    op.create_table(
        "deployment_aliases",
        sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column(
            "deployment_version_id",
            sa.Integer,
            sa.ForeignKey("deployment_versions.id"),
            nullable=True,
        ),
        sa.Column("generation", sa.Integer, nullable=False),
    )
    op.create_table(
        "deployment_alias_history",
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


def downgrade() -> None:
    op.drop_table("deployment_alias_history")
    op.drop_table("deployment_aliases")
    op.drop_table("deployment_members")
    op.drop_table("deployment_versions")
    op.drop_table("deployments")
