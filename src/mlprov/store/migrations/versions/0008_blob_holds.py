"""Blob holds: the leases registrations take on blobs and the claims ``mlprov gc`` takes
before removing one (ADR 0045).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
# 0006 and 0007 are being written on other branches; the merge re-chains this one.
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per digest: the primary key makes a lease and a claim on the same blob
    # mutually exclusive on SQLite and PostgreSQL alike.
    op.create_table(
        "blob_holds",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.CheckConstraint("state IN ('lease', 'claim')", name="ck_blob_holds_state"),
    )
    # gc asks "does any version reference this blob?" for every blob it considers.
    op.create_index("ix_version_files_blob", "version_files", ["blob"])


def downgrade() -> None:
    op.drop_index("ix_version_files_blob", table_name="version_files")
    op.drop_table("blob_holds")
