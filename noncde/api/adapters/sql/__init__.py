"""noncde.api adapters, SQL (SQLite default, PostgreSQL in production): the merchant
directory and the counters on the API's own database."""

from noncde.api.adapters.sql.counters import SqlCounters
from noncde.api.adapters.sql.directory import SqlMerchantDirectory
from noncde.api.adapters.sql.schema import SCHEMA_VERSION, init_schema

__all__ = [
    "SCHEMA_VERSION",
    "SqlCounters",
    "SqlMerchantDirectory",
    "init_schema",
]
