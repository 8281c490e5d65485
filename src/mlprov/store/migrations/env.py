"""Alembic environment: runs migrations on the connection mlprov hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - mlprov always passes a connection
    raise RuntimeError("mlprov migrations run only through mlprov.store")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
