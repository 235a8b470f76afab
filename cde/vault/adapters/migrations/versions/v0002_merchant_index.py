"""Card records: index the merchant alone instead of (merchant, fingerprint).

No query looks a record up by its fingerprint; the index only served finding a merchant's
records (crypto-shredding, `delete_merchant_records`). Keyed by the random fingerprint, every
insert landed on a random leaf page, so each group commit wrote one more random page per
record (measured on SQLite: about 20 µs of CPU per inserted record, docs/vault.md
"Performance"). Keyed by the merchant alone (the row id after it), a merchant's new records
go to the same few pages.

Revision ID: v0002
Revises: v0001
"""

from __future__ import annotations

from alembic import op

revision = "v0002"
down_revision = "v0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_vault_records_merchant", "vault_records", ["merchant_id"])
    op.drop_index("ix_vault_records_merchant_fingerprint", table_name="vault_records")


def downgrade() -> None:
    op.create_index(
        "ix_vault_records_merchant_fingerprint", "vault_records", ["merchant_id", "fingerprint"]
    )
    op.drop_index("ix_vault_records_merchant", table_name="vault_records")
