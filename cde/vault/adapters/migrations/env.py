"""cde.vault (CDE): Alembic environment for the vault schema (run by `upgrade_schema`)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table="vault_alembic_version")
with context.begin_transaction():
    context.run_migrations()
