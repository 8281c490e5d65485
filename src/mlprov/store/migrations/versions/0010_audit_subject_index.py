"""An index of audit entries by subject and sequence: ``mlprov verify NAME@ALIAS``,
``pull`` and ``status`` read the newest entry that moved an alias (the ``registry.alias``
check) on every call, which must not scan the whole log.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_log_subject_seq", "audit_log", ["subject", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_subject_seq", table_name="audit_log")
