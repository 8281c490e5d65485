"""Idempotency keys of export records over HTTP (``POST /api/v1/exports``): a retried
request carrying the same key finds the audit entry and the answer its first attempt
made instead of auditing the export a second time (ADR 0054, amendment).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_keys",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("request_digest", sa.String(80), nullable=False),
        sa.Column("audit_seq", sa.Integer, sa.ForeignKey("audit_log.seq"), nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("export_keys")
