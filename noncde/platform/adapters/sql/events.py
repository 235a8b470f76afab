"""Non-CDE platform adapters, SQL: the event store (streams with optimistic concurrency, a
gap-free global position, named subscriptions with stored checkpoints)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from noncde.platform.adapters.common import PositionSubscription
from noncde.platform.adapters.sql.schema import (
    SqlDatabase,
    constraint_of,
    event_position,
    events,
    subscription_checkpoints,
)
from noncde.platform.domain import (
    Clock,
    ConcurrencyConflict,
    InvalidArgument,
    NewEvent,
    RecordedEvent,
    check_ref,
    check_stream,
    from_micros,
    load_json,
    prepare_append,
    to_micros,
)

_STREAM_VERSION = select(func.coalesce(func.max(events.c.version), 0)).where(
    events.c.stream == bindparam("stream")
)
_TAKE_POSITIONS = (
    update(event_position)
    .where(event_position.c.id == 1)
    .values(value=event_position.c.value + bindparam("n"))
    .returning(event_position.c.value)
)
_HEAD = select(event_position.c.value).where(event_position.c.id == 1)
_INSERT = events.insert()
_COLUMNS = (
    events.c.position,
    events.c.id,
    events.c.stream,
    events.c.version,
    events.c.type,
    events.c.recorded_at,
    events.c.merchant_id,
    events.c.correlation_id,
    events.c.causation_id,
    events.c.data,
)


def append_events(
    conn: Connection,
    clock: Clock,
    stream: str,
    new_events: Sequence[NewEvent],
    expected_version: int | None,
) -> list[RecordedEvent]:
    """Append inside the caller's transaction (standalone append or a unit of work).

    Round trips: read the stream version, take positions from the counter row (from here to
    commit, other appenders wait), insert the rows. With expected_version None the counter is
    taken first, so the version read under it cannot race. On PostgreSQL a conflict aborts the
    transaction; the caller rolls back.
    """
    prepared = prepare_append(stream, new_events, expected_version)
    n = len(prepared)
    if expected_version is not None:
        current = conn.execute(_STREAM_VERSION, {"stream": stream}).scalar_one()
        if current != expected_version:
            raise ConcurrencyConflict(stream, expected_version, current)
        last = conn.execute(_TAKE_POSITIONS, {"n": n}).scalar_one()
    else:
        last = conn.execute(_TAKE_POSITIONS, {"n": n}).scalar_one()
        current = conn.execute(_STREAM_VERSION, {"stream": stream}).scalar_one()
    now = to_micros(clock())
    first = last - n
    rows = [
        {
            "position": first + index,
            "id": eid,
            "stream": stream,
            "version": current + index,
            "type": event.type,
            "recorded_at": now,
            "merchant_id": event.merchant_id,
            "correlation_id": event.correlation_id,
            "causation_id": event.causation_id,
            "data": data,
        }
        for index, (event, eid, data) in enumerate(prepared, start=1)
    ]
    try:
        conn.execute(_INSERT, rows)
    except IntegrityError as exc:
        if "id" in constraint_of(exc) and "version" not in constraint_of(exc):
            raise InvalidArgument("an event with this id was already appended") from None
        raise ConcurrencyConflict(stream, expected_version, None) from None
    recorded_at = from_micros(now)
    return [
        RecordedEvent(
            id=row["id"],
            type=row["type"],
            stream=stream,
            version=row["version"],
            position=row["position"],
            recorded_at=recorded_at,
            data=load_json(row["data"]),
            merchant_id=row["merchant_id"],
            correlation_id=row["correlation_id"],
            causation_id=row["causation_id"],
        )
        for row in rows
    ]


def _to_event(row: Any) -> RecordedEvent:
    return RecordedEvent(
        id=row.id,
        type=row.type,
        stream=row.stream,
        version=row.version,
        position=row.position,
        recorded_at=from_micros(row.recorded_at),
        data=load_json(row.data),
        merchant_id=row.merchant_id,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
    )


class SqlEventStore:
    """EventStore on the `events` table (SQLite or PostgreSQL)."""

    def __init__(self, db: SqlDatabase, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> list[RecordedEvent]:
        with self.db.write() as conn:
            return append_events(conn, self.clock, stream, events, expected_version)

    def read_stream(
        self, stream: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        check_stream(stream)
        query = (
            select(*_COLUMNS)
            .where(events.c.stream == stream, events.c.version >= from_version)
            .order_by(events.c.version)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as conn:
            return [_to_event(row) for row in conn.execute(query)]

    def read_all(
        self, from_position: int = 1, limit: int = 500, *, merchant_id: str | None = None
    ) -> list[RecordedEvent]:
        check_ref("merchant_id", merchant_id)
        query = select(*_COLUMNS).where(events.c.position >= from_position)
        if merchant_id is not None:
            query = query.where(events.c.merchant_id == merchant_id)
        query = query.order_by(events.c.position).limit(max(0, limit))
        with self.db.read() as conn:
            return [_to_event(row) for row in conn.execute(query)]

    def stream_version(self, stream: str) -> int:
        check_stream(stream)
        with self.db.read() as conn:
            return int(conn.execute(_STREAM_VERSION, {"stream": stream}).scalar_one())

    def head_position(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(_HEAD).scalar_one_or_none() or 0)

    def subscription(self, name: str) -> PositionSubscription:
        return PositionSubscription(name, self, self)

    def load_checkpoint(self, name: str) -> int:
        with self.db.read() as conn:
            found = conn.execute(
                select(subscription_checkpoints.c.position).where(
                    subscription_checkpoints.c.name == name
                )
            ).scalar_one_or_none()
        return int(found or 0)

    def save_checkpoint(self, name: str, position: int, state: str | None = None) -> None:
        insert = self.db.insert(subscription_checkpoints).values(
            name=name, position=position, state=state
        )
        with self.db.write() as conn:
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"position": insert.excluded.position, "state": insert.excluded.state},
                )
            )

    def load_state(self, name: str) -> str | None:
        """A subscriber's opaque checkpoint state (the Kinesis feed keeps shard positions)."""
        with self.db.read() as conn:
            found = conn.execute(
                select(subscription_checkpoints.c.state).where(
                    subscription_checkpoints.c.name == name
                )
            ).scalar_one_or_none()
        return None if found is None else str(found)
