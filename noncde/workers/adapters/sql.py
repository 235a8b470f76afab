"""noncde.workers adapters, SQL (SQLite default, PostgreSQL): WebhookDB, the webhook
deliveries, their per-attempt log and the fan-out's position in the event store.

Claiming works like the platform's job queue: a claim moves `next_attempt_at` past the lease
and stamps a lease token (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so dispatchers never wait for
each other); recording an attempt requires that token, so an attempt from a dispatcher whose
lease ran out changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    select,
    update,
)

from noncde.platform.adapters.sql.schema import BIG_ID, SqlDatabase
from noncde.workers.domain.webhooks import (
    MAX_ERROR,
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
)

FAN_OUT = "webhooks"
_SCHEMA_LOCK = 0x46435F57484B

metadata = MetaData()

webhook_position = Table(
    "webhook_position",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BIG_ID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("event_position", BigInteger, nullable=False),
    Column("endpoint_id", String(64), nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("series", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float),
    Column("first_attempt_at", Float),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("lease_token", String(32)),
    UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_delivery"),
    Index("ix_webhook_due", "status", "next_attempt_at"),
    Index("ix_webhook_endpoint", "endpoint_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BIG_ID, primary_key=True, autoincrement=True),
    Column("delivery_id", BigInteger, nullable=False),
    Column("series", Integer, nullable=False),
    Column("number", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
    Column("next_attempt_at", Float),
    Index("ix_webhook_attempts_delivery", "delivery_id"),
)

_COLUMNS = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.event_id,
    webhook_deliveries.c.event_position,
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.merchant_id,
    webhook_deliveries.c.event_type,
    webhook_deliveries.c.status,
    webhook_deliveries.c.series,
    webhook_deliveries.c.attempts,
    webhook_deliveries.c.next_attempt_at,
    webhook_deliveries.c.first_attempt_at,
    webhook_deliveries.c.last_status,
    webhook_deliveries.c.last_error,
    webhook_deliveries.c.lease_token,
)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=int(row.id),
        event_id=row.event_id,
        event_position=int(row.event_position),
        endpoint_id=row.endpoint_id,
        merchant_id=row.merchant_id,
        event_type=row.event_type,
        status=DeliveryStatus(row.status),
        attempts=int(row.attempts),
        next_attempt_at=row.next_attempt_at,
        first_attempt_at=row.first_attempt_at,
        series=int(row.series),
        last_status=row.last_status,
        last_error=row.last_error,
        lease_token=row.lease_token,
    )


class SqlDeliveryStore:
    """`DeliveryStore` on SQLite or PostgreSQL."""

    def __init__(self, db: SqlDatabase, *, name: str = FAN_OUT, create_schema: bool = True) -> None:
        self.db = db
        self.name = name
        if create_schema:
            self.init_schema()

    def init_schema(self) -> None:
        with self.db.creating_schema(metadata, _SCHEMA_LOCK) as conn:
            conn.execute(
                self.db.insert(webhook_position)
                .values(name=self.name, position=0)
                .on_conflict_do_nothing(index_elements=["name"])
            )

    def position(self) -> int:
        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(webhook_position.c.position).where(webhook_position.c.name == self.name)
                ).scalar_one_or_none()
                or 0
            )

    def fan_out(self, rows: Sequence[Mapping[str, Any]], position: int) -> int:
        with self.db.write() as conn:
            query = select(webhook_position.c.position).where(webhook_position.c.name == self.name)
            if self.db.is_postgres:
                query = query.with_for_update()
            current = int(conn.execute(query).scalar_one_or_none() or 0)
            if position <= current:
                return 0  # another fan-out process wrote this batch
            fresh = [
                {
                    **row,
                    "status": DeliveryStatus.PENDING.value,
                    "series": 1,
                    "attempts": 0,
                }
                for row in rows
                if int(row["event_position"]) > current
            ]
            inserted = 0
            if fresh:
                statement = self.db.insert(webhook_deliveries).on_conflict_do_nothing(
                    index_elements=["event_id", "endpoint_id"]
                )
                inserted = int(conn.execute(statement, fresh).rowcount or 0)
            conn.execute(
                update(webhook_position)
                .where(webhook_position.c.name == self.name)
                .values(position=position)
            )
        return inserted

    def claim_due(
        self, now: float, limit: int, lease_s: float, exclude_endpoints: Sequence[str] = ()
    ) -> list[Delivery]:
        if limit < 1:
            return []
        token = secrets.token_hex(8)
        due = (
            select(webhook_deliveries.c.id)
            .where(
                webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
                webhook_deliveries.c.next_attempt_at <= now,
            )
            .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
            .limit(limit)
        )
        if exclude_endpoints:
            due = due.where(webhook_deliveries.c.endpoint_id.not_in(list(exclude_endpoints)))
        if self.db.is_postgres:
            due = due.with_for_update(skip_locked=True)
        with self.db.write() as conn:
            rows = conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=now + lease_s, lease_token=token)
                .returning(*_COLUMNS)
            ).all()
        return sorted((_delivery(r) for r in rows), key=lambda d: d.id)

    def release(self, delivery: Delivery, now: float) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id == delivery.id,
                    webhook_deliveries.c.lease_token == delivery.lease_token,
                )
                .values(next_attempt_at=now, lease_token=None)
            )

    def payload(self, delivery_id: int) -> str:
        with self.db.read() as conn:
            return str(
                conn.execute(
                    select(webhook_deliveries.c.payload).where(
                        webhook_deliveries.c.id == delivery_id
                    )
                ).scalar_one()
            )

    def record(
        self, delivery: Delivery, result: AttemptResult, now: float, next_attempt_at: float | None
    ) -> bool:
        if result.ok:
            status = DeliveryStatus.DELIVERED
        elif next_attempt_at is None:
            status = DeliveryStatus.FAILED
        else:
            status = DeliveryStatus.PENDING
        number = delivery.attempts + 1
        error = result.error[:MAX_ERROR] if result.error else None
        with self.db.write() as conn:
            changed = conn.execute(
                update(webhook_deliveries)
                .where(
                    and_(
                        webhook_deliveries.c.id == delivery.id,
                        webhook_deliveries.c.lease_token == delivery.lease_token,
                        webhook_deliveries.c.series == delivery.series,
                    )
                )
                .values(
                    status=status.value,
                    attempts=number,
                    next_attempt_at=next_attempt_at,
                    first_attempt_at=func.coalesce(webhook_deliveries.c.first_attempt_at, now),
                    last_status=result.status_code,
                    last_error=error,
                    lease_token=None,
                )
            ).rowcount
            if changed != 1:
                return False
            conn.execute(
                insert(webhook_attempts).values(
                    delivery_id=delivery.id,
                    series=delivery.series,
                    number=number,
                    at=now,
                    status_code=result.status_code,
                    error=error,
                    duration_ms=result.duration_ms,
                    next_attempt_at=next_attempt_at,
                )
            )
        return True

    def redeliver(self, event_id: str, endpoint_id: str | None, now: float) -> int:
        condition = webhook_deliveries.c.event_id == event_id
        if endpoint_id is not None:
            condition = and_(condition, webhook_deliveries.c.endpoint_id == endpoint_id)
        with self.db.write() as conn:
            return int(
                conn.execute(
                    update(webhook_deliveries)
                    .where(condition)
                    .values(
                        status=DeliveryStatus.PENDING.value,
                        series=webhook_deliveries.c.series + 1,
                        attempts=0,
                        next_attempt_at=now,
                        first_attempt_at=None,
                        lease_token=None,
                    )
                ).rowcount
            )

    def deliveries(
        self,
        *,
        event_id: str | None = None,
        endpoint_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        query = select(*_COLUMNS).order_by(webhook_deliveries.c.id.desc()).limit(limit)
        if event_id is not None:
            query = query.where(webhook_deliveries.c.event_id == event_id)
        if endpoint_id is not None:
            query = query.where(webhook_deliveries.c.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status)
        with self.db.read() as conn:
            return [_delivery(r) for r in conn.execute(query)]

    def attempts(self, delivery_id: int) -> list[Attempt]:
        query = (
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id == delivery_id)
            .order_by(webhook_attempts.c.id)
        )
        with self.db.read() as conn:
            return [
                Attempt(
                    delivery_id=int(r.delivery_id),
                    series=int(r.series),
                    number=int(r.number),
                    at=float(r.at),
                    status_code=r.status_code,
                    error=r.error,
                    duration_ms=float(r.duration_ms),
                    next_attempt_at=r.next_attempt_at,
                )
                for r in conn.execute(query)
            ]

    def counts(self) -> dict[str, int]:
        query = select(webhook_deliveries.c.status, func.count()).group_by(
            webhook_deliveries.c.status
        )
        with self.db.read() as conn:
            found = {str(s): int(n) for s, n in conn.execute(query)}
        return {status.value: found.get(status.value, 0) for status in DeliveryStatus}

    def close(self) -> None:
        self.db.dispose()
