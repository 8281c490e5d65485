"""Idempotency keys of registrations over HTTP: a retried request carrying the same key
finds the version its first attempt made instead of making a second one; and an index
of version files by blob, for blob downloads.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registration_keys",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("request_digest", sa.String(80), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
    )
    # Blob downloads look a blob's size up by its key (GET /api/v1/blobs/{sha256}).
    op.create_index("ix_version_files_blob", "version_files", ["blob"])


def downgrade() -> None:
    op.drop_index("ix_version_files_blob", table_name="version_files")
    op.drop_table("registration_keys")
