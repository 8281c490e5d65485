"""Each version's artefact formats, detected by content at registration.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: versions registered before had no formats detected (their ML-BOM records
    # none, and a formats requirement fails for them: docs/policies.md, "formats").
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("formats", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("formats")
