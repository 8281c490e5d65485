"""Where imported versions came from (``mlprov import``, ADR 0051): one row per version
an archive brought in, naming the origin registry, the version there, the archive's
manifest digest and whether the version's bytes came with it. A second import of the
same archive finds its rows and changes nothing.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_origins",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("archive_digest", sa.String(80), nullable=False),
        sa.Column("origin_registry_id", sa.String(80), nullable=False),
        sa.Column("origin_registry_uri", sa.Text, nullable=False),
        sa.Column("origin_version", sa.String(200), nullable=False),
        sa.Column("with_bytes", sa.Boolean, nullable=False),
        sa.Column("imported_at", sa.String(32), nullable=False),
        sa.Column("imported_by", sa.String(256), nullable=False),
    )
    op.create_index("ix_version_origins_archive", "version_origins", ["archive_digest"])


def downgrade() -> None:
    op.drop_index("ix_version_origins_archive", table_name="version_origins")
    op.drop_table("version_origins")
