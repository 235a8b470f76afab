"""noncde.readmodels adapters, SQL: the tables of PaymentDB and LedgerDB (SQLite default,
PostgreSQL in production), each in its own database, and LedgerDB's immutability triggers.

Both databases are created idempotently (safe when several processes start at once) and
stamped with a schema version. LedgerDB's journal tables refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL) in the database itself, so no code path, operator console or bug can
rewrite history: corrections are reversing transactions (PCI DSS 10.3.2-style integrity for
financial records; DESIGN.md section 3).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from noncde.platform.adapters.sql.schema import SqlDatabase

SCHEMA_VERSION = 1
# Any constants: PostgreSQL advisory locks that serialize concurrent schema creation.
_PAYMENTS_LOCK = 0x46435F504159
_LEDGER_LOCK = 0x46435F4C4447

payments_metadata = MetaData()

pdb_schema = Table(
    "pdb_schema",
    payments_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

# One row per projection name: the last applied event-store position, updated in the same
# transaction as the rows (the "rows + position in one transaction" rule).
pdb_position = Table(
    "pdb_position",
    payments_metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

pdb_charges = Table(
    "pdb_charges",
    payments_metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64)),
    Column("seq", BigInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_captured", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("psp_reference", String(100)),
    Column("dead_lettered", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Index("ix_pdb_charges_merchant_seq", "merchant_id", "seq"),
    Index("ix_pdb_charges_merchant_status_seq", "merchant_id", "status", "seq"),
    Index("ix_pdb_charges_psp_reference", "psp_reference"),
)

pdb_refunds = Table(
    "pdb_refunds",
    payments_metadata,
    Column("id", String(64), primary_key=True),
    Column("charge_id", String(64), nullable=False),
    Column("merchant_id", String(64)),
    Column("seq", BigInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("psp_reference", String(100)),
    Column("state", Text, nullable=False),
    Index("ix_pdb_refunds_merchant_seq", "merchant_id", "seq"),
    Index("ix_pdb_refunds_charge", "charge_id"),
)

pdb_sessions = Table(
    "pdb_sessions",
    payments_metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64)),
    Column("seq", BigInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("charge_id", String(64)),
    Column("version", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Index("ix_pdb_sessions_merchant_seq", "merchant_id", "seq"),
)

pdb_events = Table(
    "pdb_events",
    payments_metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("merchant_id", String(64), nullable=False),
    Column("type", String(100), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_pdb_events_merchant_position", "merchant_id", "position"),
)

pdb_counts = Table(
    "pdb_counts",
    payments_metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("object", String(16), primary_key=True),
    Column("status", String(24), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

PAYMENT_TABLES: dict[str, tuple[Table, str]] = {
    "pdb_charges": (pdb_charges, "id"),
    "pdb_refunds": (pdb_refunds, "id"),
    "pdb_sessions": (pdb_sessions, "id"),
    "pdb_events": (pdb_events, "position"),
    "pdb_counts": (pdb_counts, "merchant_id, object, status"),
    "pdb_position": (pdb_position, "name"),
}

# ---------------------------------------------------------------- LedgerDB

ledger_metadata = MetaData()

ledger_schema = Table(
    "ledger_schema",
    ledger_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

ledger_position = Table(
    "ledger_position",
    ledger_metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# Sequence numbers are assigned by the writer (max + 1 under the position lock), never by a
# database sequence: a rolled-back batch would leave gaps in a sequence, and a rebuild from
# zero must number every transaction exactly as the original did.
ledger_transactions = Table(
    "ledger_transactions",
    ledger_metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("source_event_id", String(64), nullable=False, unique=True),
    Column("event_position", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("merchant_id", String(64)),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("psp_reference", String(100)),
    Column("charge_id", String(64)),
    Column("refund_id", String(64)),
    Column("posted_at", BigInteger, nullable=False),
    Column("memo", Text),
    Column("reverses", BigInteger),
    Index("ix_ledger_transactions_psp_reference", "psp_reference"),
    Index("ix_ledger_transactions_posted", "posted_at"),
)

ledger_entries = Table(
    "ledger_entries",
    ledger_metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("txn_seq", BigInteger, nullable=False),
    Column("account", String(120), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("posted_at", BigInteger, nullable=False),
    Index("ix_ledger_entries_account", "account", "currency", "posted_at"),
    Index("ix_ledger_entries_txn", "txn_seq"),
)

# Insert-only facts the posting rules need (owner and currency of each charge).
ledger_charges = Table(
    "ledger_charges",
    ledger_metadata,
    Column("charge_id", String(64), primary_key=True),
    Column("merchant_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
)

IMMUTABLE_TABLES = ("ledger_transactions", "ledger_entries", "ledger_charges")

LEDGER_TABLES: dict[str, tuple[Table, str]] = {
    "ledger_transactions": (ledger_transactions, "seq"),
    "ledger_entries": (ledger_entries, "seq"),
    "ledger_charges": (ledger_charges, "charge_id"),
    "ledger_position": (ledger_position, "name"),
}

_PG_REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'ledger % is immutable: % refused (post a reversing transaction)',
    TG_TABLE_NAME, TG_OP USING ERRCODE = 'integrity_constraint_violation';
END
$$ LANGUAGE plpgsql
"""


def _sqlite_triggers(table: str) -> Iterable[str]:
    for op in ("UPDATE", "DELETE"):
        yield (
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'ledger {table} is immutable: {op} refused "
            "(post a reversing transaction)'); END"
        )


def _pg_triggers(table: str) -> Iterable[str]:
    yield (
        f"CREATE OR REPLACE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
    )
    yield (
        f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )


def init_payments_schema(db: SqlDatabase, names: Iterable[str]) -> None:
    """Create PaymentDB's tables and the position rows of `names` (idempotent)."""
    with db.creating_schema(
        payments_metadata,
        _PAYMENTS_LOCK,
        stamp=pdb_schema,
        version=SCHEMA_VERSION,
        what="PaymentDB",
    ) as conn:
        for name in names:
            conn.execute(
                db.insert(pdb_position)
                .values(name=name, position=0)
                .on_conflict_do_nothing(index_elements=["name"])
            )


def init_ledger_schema(db: SqlDatabase, names: Iterable[str]) -> None:
    """Create LedgerDB's tables, its immutability triggers and position rows (idempotent)."""
    with db.creating_schema(
        ledger_metadata, _LEDGER_LOCK, stamp=ledger_schema, version=SCHEMA_VERSION, what="LedgerDB"
    ) as conn:
        if db.is_postgres:
            conn.execute(text(_PG_REFUSE_FUNCTION))
        for table in IMMUTABLE_TABLES:
            for statement in _pg_triggers(table) if db.is_postgres else _sqlite_triggers(table):
                conn.execute(text(statement))
        for name in names:
            conn.execute(
                db.insert(ledger_position)
                .values(name=name, position=0)
                .on_conflict_do_nothing(index_elements=["name"])
            )
