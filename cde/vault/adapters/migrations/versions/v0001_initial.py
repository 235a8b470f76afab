"""The vault schema: KEK registry, wrapped data keys, sealed card records, attestations.

No column holds a PAN, an expiry, a name or a CVC in the clear: card data lives only inside
`vault_records.ciphertext`, and there is no CVC column at all (PCI DSS 3.3.1, 3.5.1).

Revision ID: v0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "vault_keks",
        sa.Column("kek_id", sa.String(256), primary_key=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("retired_at", _TS, nullable=True),
    )
    op.create_table(
        "vault_data_keys",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("kek_id", sa.String(256), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("destroyed_at", _TS, nullable=True),
    )
    op.create_index("ix_vault_data_keys_merchant", "vault_data_keys", ["merchant_id", "purpose"])
    op.create_index("ix_vault_data_keys_kek", "vault_data_keys", ["kek_id"])
    where = sa.text("purpose = 'fingerprint' AND destroyed_at IS NULL")
    op.create_index(
        "ux_vault_data_keys_fingerprint",
        "vault_data_keys",
        ["merchant_id"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )
    op.create_table(
        "vault_records",
        sa.Column("token", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column(
            "data_key_id",
            sa.String(40),
            sa.ForeignKey("vault_data_keys.key_id"),
            nullable=False,
        ),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("used_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_vault_records_merchant_fingerprint", "vault_records", ["merchant_id", "fingerprint"]
    )
    op.create_index("ix_vault_records_data_key", "vault_records", ["data_key_id"])
    op.create_index("ix_vault_records_used_at", "vault_records", ["used_at"])
    op.create_table(
        "vault_attestations",
        sa.Column("merchant_id", sa.String(64), primary_key=True),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.Column("recorded_by", sa.String(120), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vault_attestations")
    op.drop_table("vault_records")
    op.drop_table("vault_data_keys")
    op.drop_table("vault_keks")
