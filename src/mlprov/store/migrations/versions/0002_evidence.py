"""Evidence stored with versions: signatures and attestations as the exact bytes signed.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence",
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
    op.create_index("ix_evidence_version", "evidence", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_evidence_version", "evidence")
    op.drop_table("evidence")
