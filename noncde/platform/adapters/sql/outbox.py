"""Non-CDE platform adapters, SQL: the transactional outbox for jobs bound for an external queue
(SQS) and the relay that publishes it after commit.

A row is written in the same transaction as the events that caused it; the relay publishes
due rows in `seq` order and deletes what the broker accepted. A crash between the publish and
the delete publishes the row again on the next run with the same message id, which the broker
drops (SQS FIFO deduplication by job id, see adapters/sqs.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Select, delete, func, select

from noncde.platform.adapters.sql.schema import SqlDatabase, outbox
from noncde.platform.domain import Clock, NewJob, OutboxMessage, job_message_body, to_micros

# Publishes messages; returns the message ids the broker accepted (the rest stay for later).
Publisher = Callable[[Sequence[OutboxMessage]], Sequence[str]]


def add_job(conn: Connection, db: SqlDatabase, clock: Clock, job: NewJob) -> str:
    """Write a job into the outbox inside the caller's transaction; returns its id. The delay is
    kept here (the relay publishes when due), so SQS needs no per-message delay."""
    job_id, _payload = job.prepared()
    now = to_micros(clock())
    conn.execute(
        db.insert(outbox)
        .values(
            message_id=job_id,
            kind="job",
            body=job_message_body(job_id, job, now),
            available_at=now + to_micros(job.delay_s),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["message_id"])
    )
    return job_id


class OutboxRelay:
    """Relay: outbox rows → broker, after commit. On PostgreSQL the rows being published are
    locked with SKIP LOCKED so two relays never publish the same row at once; on SQLite the
    write lock is not held across the network call (it would stall every writer), so run one
    relay per SQLite database (a second one is harmless: the broker drops the duplicates)."""

    def __init__(
        self,
        db: SqlDatabase,
        publish: Publisher,
        *,
        name: str = "outbox",
        batch: int = 10,
        clock: Clock = time.time,
    ) -> None:
        self.db = db
        self.name = name
        self.publish = publish
        self.batch = batch
        self.clock = clock

    def _due(self, n: int) -> Select[int, str, str, str]:
        query = (
            select(outbox.c.seq, outbox.c.message_id, outbox.c.kind, outbox.c.body)
            .where(outbox.c.available_at <= to_micros(self.clock()))
            .order_by(outbox.c.seq)
            .limit(n)
        )
        return query.with_for_update(skip_locked=True) if self.db.is_postgres else query

    def run_once(self, limit: int = 500) -> int:
        published = 0
        while published < limit:
            done = self._run_batch(min(self.batch, limit - published))
            if done == 0:
                break
            published += done
        return published

    def _run_batch(self, n: int) -> int:
        if self.db.is_postgres:
            with self.db.write() as conn:
                rows = [OutboxMessage(r[0], r[1], r[2], r[3]) for r in conn.execute(self._due(n))]
                return self._forget(conn, rows, self._send(rows))
        with self.db.read() as conn:
            rows = [OutboxMessage(r[0], r[1], r[2], r[3]) for r in conn.execute(self._due(n))]
        accepted = self._send(rows)
        with self.db.write() as conn:
            return self._forget(conn, rows, accepted)

    def _send(self, rows: list[OutboxMessage]) -> set[str]:
        return set(self.publish(rows)) if rows else set()

    @staticmethod
    def _forget(conn: Connection, rows: list[OutboxMessage], accepted: set[str]) -> int:
        seqs = [row.seq for row in rows if row.message_id in accepted]
        if seqs:
            conn.execute(delete(outbox).where(outbox.c.seq.in_(seqs)))
        return len(seqs)

    def pending(self) -> int:
        """Rows not yet published (a gauge for metrics and tests)."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
