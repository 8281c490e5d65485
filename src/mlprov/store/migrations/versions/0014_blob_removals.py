"""Blob removals: a record of every blob ``mlprov gc`` (or an import undoing what it
stored) claimed for removal, numbered in commit order, so a registration from stored
blobs can check at commit that none of its blobs was removed since it looked, without a
write of its own before it reads them (ADR 0045, amendment of 2026-12-04).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # AUTOINCREMENT on SQLite: a number is never given twice, even after every row was
    # pruned (a registration compares numbers it read earlier with later ones).
    op.create_table(
        "blob_removals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_blob_removals_digest", "blob_removals", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_blob_removals_digest", table_name="blob_removals")
    op.drop_table("blob_removals")
