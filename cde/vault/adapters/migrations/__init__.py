"""cde.vault (CDE): Alembic migrations of the vault schema."""
