"""noncde.readmodels adapters, SQL: helpers shared by PaymentDB and LedgerDB (content digests,
chunked IN lists, the position row)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Boolean, Connection, Table, select, update

T = TypeVar("T")

# Well under SQLite's bound-parameter limit and PostgreSQL's; large enough for few round trips.
IN_CHUNK = 900


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def table_digest(conn: Connection, table: Table, page: int = 5000) -> str:
    """SHA-256 over every row in primary-key order, each row as canonical JSON.

    Two databases built from the same events must give the same digest per table; the
    encoding is dialect-neutral (booleans as JSON booleans, integers as integers)."""
    digest = hashlib.sha256()
    keys = list(table.primary_key.columns)
    columns = list(table.columns)
    query = select(*columns).order_by(*keys)
    count = 0
    for row in conn.execution_options(stream_results=True, yield_per=page).execute(query):
        values: list[Any] = []
        for column, value in zip(columns, row, strict=True):
            if isinstance(column.type, Boolean) and value is not None:
                value = bool(value)
            values.append(value)
        digest.update(json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode())
        digest.update(b"\n")
        count += 1
    return f"{count}:{digest.hexdigest()}"


def read_position(conn: Connection, table: Table, name: str, *, lock: bool) -> int:
    """The stored position of projection `name`; with `lock` (PostgreSQL) the row stays locked
    until commit, so a second projector process waits and then skips what this one applied
    (SQLite's BEGIN IMMEDIATE already admits one writer at a time)."""
    query = select(table.c.position).where(table.c.name == name)
    if lock:
        query = query.with_for_update()
    return int(conn.execute(query).scalar_one_or_none() or 0)


def write_position(conn: Connection, table: Table, name: str, position: int) -> None:
    conn.execute(update(table).where(table.c.name == name).values(position=position))
