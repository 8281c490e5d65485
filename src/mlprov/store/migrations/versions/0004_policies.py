"""Policy sets applied to the registry (each version with its files' exact bytes), and
revocations of versions, keys and identities.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_sets",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("applied_at", sa.String(32), nullable=False),
        sa.Column("applied_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "policy_files",
        sa.Column("version", sa.Integer, sa.ForeignKey("policy_sets.version"), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )

    op.create_table(
        "revocations",
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


def downgrade() -> None:
    op.drop_table("revocations")
    op.drop_table("policy_files")
    op.drop_table("policy_sets")
