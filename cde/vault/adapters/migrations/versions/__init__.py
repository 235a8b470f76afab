"""cde.vault (CDE): Alembic revisions of the vault schema, oldest first."""
