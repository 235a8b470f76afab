"""Non-CDE platform adapters, SQL: the job queue (leases by visibility time, retries with
backoff, dead letters). PostgreSQL leases with `FOR UPDATE SKIP LOCKED`, so concurrent workers
never wait for each other's rows; SQLite has one writer at a time and needs no row locks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, func, select, update

from fincore.ids import random_token
from noncde.platform.adapters.sql.schema import SqlDatabase, job_dedup, jobs
from noncde.platform.domain import (
    JSON,
    Clock,
    DeadLetter,
    Job,
    Lease,
    LeaseLost,
    NackOutcome,
    NewJob,
    QueueCounts,
    RetryPolicy,
    check_delay,
    check_ref,
    from_micros,
    load_json,
    safe_error_text,
    to_micros,
)

DEDUP_WINDOW_S = 24 * 3600
_EXPIRED_LEASE = "lease expired without ack or nack (the worker stopped)"

_LEASE_RETURNING = (
    jobs.c.seq,
    jobs.c.id,
    jobs.c.type,
    jobs.c.payload,
    jobs.c.attempts,
    jobs.c.enqueued_at,
    jobs.c.last_error,
)


def _insert_job(db: SqlDatabase) -> Any:
    return db.insert(jobs).on_conflict_do_nothing(index_elements=["id"])


def _insert_dedup(db: SqlDatabase) -> Any:
    return (
        db.insert(job_dedup)
        .on_conflict_do_nothing(index_elements=["dedup_id"])
        .returning(job_dedup.c.dedup_id)
    )


_RENEW_DEDUP = (
    update(job_dedup)
    .where(
        job_dedup.c.dedup_id == bindparam("b_dedup"), job_dedup.c.expires_at <= bindparam("b_now")
    )
    .values(expires_at=bindparam("b_expires"))
)
_LEASED = and_(
    jobs.c.seq == bindparam("b_seq"),
    jobs.c.lease_token == bindparam("b_token"),
    jobs.c.state == "ready",
)
_ACK = delete(jobs).where(_LEASED)


def enqueue_job(conn: Connection, db: SqlDatabase, clock: Clock, job: NewJob) -> str:
    """Insert a job inside the caller's transaction; returns its id (deduplicated)."""
    job_id, payload = job.prepared()
    now = to_micros(clock())
    if job.dedup_id is not None and not _claim_dedup(conn, db, job.dedup_id, job_id, now):
        return job_id
    conn.execute(
        db.prepared("jobs.insert", _insert_job),
        {
            "id": job_id,
            "type": job.type,
            "payload": payload,
            "state": "ready",
            "attempts": 0,
            "available_at": now + to_micros(job.delay_s),
            "enqueued_at": now,
        },
    )
    return job_id


def _claim_dedup(conn: Connection, db: SqlDatabase, dedup_id: str, job_id: str, now: int) -> bool:
    """True when this dedup id is new (or its window ran out): the job should be inserted."""
    expires = now + to_micros(DEDUP_WINDOW_S)
    inserted = conn.execute(
        db.prepared("jobs.dedup", _insert_dedup),
        {"dedup_id": dedup_id, "job_id": job_id, "expires_at": expires},
    ).first()
    if inserted is not None:
        return True
    renewed = conn.execute(
        _RENEW_DEDUP, {"b_dedup": dedup_id, "b_now": now, "b_expires": expires}
    ).rowcount
    return bool(renewed)


def _parse_handle(job: Job) -> tuple[int, str]:
    seq, _, token = job.lease.handle.partition(":")
    if not seq.isdigit() or not token:
        raise LeaseLost(job.id)
    return int(seq), token


class SqlJobQueue:
    """JobQueue on the `jobs` table. Ack deletes the row; dead letters stay with state 'dead'."""

    def __init__(
        self, db: SqlDatabase, policy: RetryPolicy | None = None, clock: Clock = time.time
    ) -> None:
        self.db = db
        self.policy = policy or RetryPolicy()
        self.clock = clock
        due = (
            select(jobs.c.seq)
            .where(jobs.c.state == "ready", jobs.c.available_at <= bindparam("now"))
            .order_by(jobs.c.available_at, jobs.c.seq)
            .limit(bindparam("n"))
        )
        if db.is_postgres:
            due = due.with_for_update(skip_locked=True)
        self._lease = (
            update(jobs)
            .where(jobs.c.seq.in_(due.scalar_subquery()))
            .values(
                attempts=jobs.c.attempts + 1,
                available_at=bindparam("until"),
                lease_token=bindparam("token"),
                leased_by=bindparam("worker"),
            )
            .returning(*_LEASE_RETURNING)
        )

    def enqueue(
        self,
        job_type: str,
        payload: JSON,
        *,
        delay_s: float = 0.0,
        dedup_id: str | None = None,
    ) -> str:
        job = NewJob(job_type, payload, delay_s, dedup_id)
        with self.db.write() as conn:
            return enqueue_job(conn, self.db, self.clock, job)

    def lease(self, worker_id: str, n: int = 1, visibility_timeout_s: float = 30.0) -> list[Job]:
        check_ref("worker_id", worker_id)
        check_delay("visibility_timeout_s", visibility_timeout_s)
        if n < 1:
            return []
        now = to_micros(self.clock())
        until = now + to_micros(visibility_timeout_s)
        token = random_token()
        with self.db.write() as conn:
            rows = conn.execute(
                self._lease,
                {"now": now, "n": n, "until": until, "token": token, "worker": worker_id},
            ).all()
            poison = [r.seq for r in rows if r.attempts > self.policy.max_attempts]
            if poison:
                # Delivered max_attempts times, never acked or nacked: the worker died on it
                # every time. Dead-letter it instead of delivering it again.
                conn.execute(
                    update(jobs)
                    .where(jobs.c.seq.in_(poison))
                    .values(
                        state="dead",
                        dead_at=now,
                        attempts=jobs.c.attempts - 1,
                        lease_token=None,
                        last_error=func.coalesce(jobs.c.last_error, _EXPIRED_LEASE),
                    )
                )
        expires_at = from_micros(until)
        return [
            Job(
                id=r.id,
                type=r.type,
                payload=load_json(r.payload),
                attempts=r.attempts,
                enqueued_at=from_micros(r.enqueued_at),
                lease=Lease(worker_id, f"{r.seq}:{token}", expires_at),
                last_error=r.last_error,
            )
            for r in sorted(rows, key=lambda r: r.seq)
            if r.attempts <= self.policy.max_attempts
        ]

    def _update_leased(self, job: Job, **values: Any) -> None:
        seq, token = _parse_handle(job)
        with self.db.write() as conn:
            changed = conn.execute(
                update(jobs).where(_LEASED).values(**values), {"b_seq": seq, "b_token": token}
            ).rowcount
        if changed != 1:
            raise LeaseLost(job.id)

    def ack(self, job: Job) -> None:
        seq, token = _parse_handle(job)
        with self.db.write() as conn:
            gone = conn.execute(_ACK, {"b_seq": seq, "b_token": token}).rowcount
        if gone != 1:
            raise LeaseLost(job.id)

    def nack(self, job: Job, error: str | BaseException) -> NackOutcome:
        now = self.clock()
        text = safe_error_text(error)
        if self.policy.exhausted(job.attempts):
            self._update_leased(
                job, state="dead", dead_at=to_micros(now), lease_token=None, last_error=text
            )
            return NackOutcome(dead_lettered=True)
        retry_at = to_micros(now + self.policy.backoff_s(job.attempts))
        self._update_leased(job, available_at=retry_at, lease_token=None, last_error=text)
        return NackOutcome(False, from_micros(retry_at))

    def extend(self, job: Job, visibility_timeout_s: float) -> Job:
        check_delay("visibility_timeout_s", visibility_timeout_s)
        until = to_micros(self.clock() + visibility_timeout_s)
        self._update_leased(job, available_at=until)
        return Job(
            job.id,
            job.type,
            job.payload,
            job.attempts,
            job.enqueued_at,
            Lease(job.lease.worker_id, job.lease.handle, from_micros(until)),
            job.last_error,
        )

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        query = (
            select(
                jobs.c.id,
                jobs.c.type,
                jobs.c.payload,
                jobs.c.attempts,
                jobs.c.last_error,
                jobs.c.dead_at,
            )
            .where(jobs.c.state == "dead")
            .order_by(jobs.c.dead_at.desc(), jobs.c.seq.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [
                DeadLetter(
                    r.id,
                    r.type,
                    load_json(r.payload),
                    r.attempts,
                    r.last_error,
                    from_micros(r.dead_at),
                )
                for r in conn.execute(query)
            ]

    def replay(self, job_ids: Sequence[str] | None = None) -> int:
        condition = jobs.c.state == "dead"
        if job_ids is not None:
            if not job_ids:
                return 0
            condition = and_(condition, jobs.c.id.in_(list(job_ids)))
        with self.db.write() as conn:
            return int(
                conn.execute(
                    update(jobs)
                    .where(condition)
                    .values(
                        state="ready",
                        attempts=0,
                        available_at=to_micros(self.clock()),
                        lease_token=None,
                        leased_by=None,
                        dead_at=None,
                    )
                ).rowcount
            )

    def counts(self) -> QueueCounts:
        now = to_micros(self.clock())
        ready = jobs.c.state == "ready"
        waiting = and_(ready, jobs.c.available_at > now)

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        query = select(
            count(and_(ready, jobs.c.available_at <= now)),
            count(and_(waiting, jobs.c.lease_token.is_not(None))),
            count(and_(waiting, jobs.c.lease_token.is_(None))),
            count(jobs.c.state == "dead"),
        )
        with self.db.read() as conn:
            row = conn.execute(query).one()
        return QueueCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def purge_dedup(self) -> int:
        """Delete dedup records past their window (housekeeping)."""
        with self.db.write() as conn:
            return int(
                conn.execute(
                    delete(job_dedup).where(job_dedup.c.expires_at <= to_micros(self.clock()))
                ).rowcount
            )
