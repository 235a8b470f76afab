"""Non-CDE platform adapters, SQL (SQLite default, PostgreSQL in production) via SQLAlchemy 2
Core: event store, job queue, idempotency store, rules store, unit of work and outbox."""

from noncde.platform.adapters.sql.events import SqlEventStore
from noncde.platform.adapters.sql.idempotency import SqlIdempotencyStore
from noncde.platform.adapters.sql.jobs import SqlJobQueue
from noncde.platform.adapters.sql.outbox import OutboxRelay
from noncde.platform.adapters.sql.rules import SqlRulesStore
from noncde.platform.adapters.sql.schema import SCHEMA_VERSION, SqlDatabase
from noncde.platform.adapters.sql.uow import SqlUnitOfWork

__all__ = [
    "SCHEMA_VERSION",
    "OutboxRelay",
    "SqlDatabase",
    "SqlEventStore",
    "SqlIdempotencyStore",
    "SqlJobQueue",
    "SqlRulesStore",
    "SqlUnitOfWork",
]
