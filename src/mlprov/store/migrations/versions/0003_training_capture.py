"""What a training job captured with a version: builder, times, dirty tree, environment, card.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("code_dirty", sa.Boolean),
    ("builder_id", sa.Text),
    ("started_at", sa.String(32)),
    ("finished_at", sa.String(32)),
    ("environment", sa.Text),
    ("card", sa.Text),
)


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        for name, kind in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        for name, _kind in reversed(_COLUMNS):
            batch.drop_column(name)
