"""noncde.api adapters, SQL: the API database's tables (merchant directory, counters) on SQLite
or PostgreSQL through SQLAlchemy 2 Core. The payment read model the lists use is PaymentDB of
noncde.readmodels (wired in the bootstrap).

The connection handling (WAL, BEGIN IMMEDIATE, error translation) is the platform's
`SqlDatabase`; this module owns only the API's tables. Times are Unix microseconds (UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from noncde.platform.adapters.sql.schema import SqlDatabase

SCHEMA_VERSION = 1
# Any constant: the PostgreSQL advisory lock that serializes concurrent schema creation.
_SCHEMA_LOCK_KEY = 0x46494E415049

metadata = MetaData()

api_schema = Table(
    "api_schema",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

merchants = Table(
    "merchants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", BigInteger, nullable=False),
)

# Secret keys are kept only as HMAC digests (PCI DSS 8.3.2); publishable keys also keep their
# value (they are public by design).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("publishable_value", String(200)),
    Column("hint", String(64), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("revoked_at", BigInteger),
    Index("ix_api_keys_merchant", "merchant_id"),
)

capabilities = Table(
    "merchant_capabilities",
    metadata,
    Column("merchant_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("attestation_expires_on", String(10)),
    Column("changed_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("merchant_id", "name"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("merchant_id", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("enabled_events", Text, nullable=False),
    Column("sealed_secret", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("disabled_at", BigInteger),
    Index("ix_webhook_endpoints_merchant", "merchant_id"),
)

counters = Table(
    "api_counters",
    metadata,
    Column("key", String(250), nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("key", "bucket"),
    Index("ix_api_counters_expires", "expires_at"),
)


def micros(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def from_micros(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1_000_000, tz=UTC)


def init_schema(db: SqlDatabase) -> None:
    """Create missing tables; idempotent and safe to race."""
    with db.creating_schema(
        metadata,
        _SCHEMA_LOCK_KEY,
        stamp=api_schema,
        version=SCHEMA_VERSION,
        what="the API database",
    ):
        pass
