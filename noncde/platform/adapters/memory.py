"""Non-CDE platform adapters: in-memory event store, job queue, idempotency store, rules store
and unit of work, for unit tests and single-process experiments (`memory://`).

One `MemoryBackend` holds the state of every port behind one re-entrant lock; a unit of work
holds that lock from start to commit (like SQLite's single writer) and undoes its changes on
rollback. Nothing survives the process; production refuses `memory://`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from fincore.ids import random_token
from noncde.platform.adapters.common import PositionSubscription
from noncde.platform.domain import (
    JSON,
    MIN_IDEMPOTENCY_RETENTION_S,
    Clock,
    ConcurrencyConflict,
    DeadLetter,
    InvalidArgument,
    Job,
    Lease,
    LeaseLost,
    NackOutcome,
    NewEvent,
    NewJob,
    QueueCounts,
    RecordedEvent,
    Reservation,
    ReservationLost,
    ReservationStatus,
    RetryPolicy,
    RuleSet,
    StoredResponse,
    UnitOfWorkClosed,
    check_delay,
    check_ref,
    check_reservation_args,
    check_response,
    check_stream,
    classify,
    from_micros,
    load_json,
    prepare_append,
    prepare_rules,
    safe_error_text,
    to_micros,
)

Undo = list[Callable[[], None]]
DEDUP_WINDOW_S = 24 * 3600


@dataclass
class _MemJob:
    seq: int
    id: str
    type: str
    payload: JSON
    enqueued_at: float
    available_at: float
    attempts: int = 0
    token: str | None = None
    leased_by: str | None = None
    last_error: str | None = None
    dead_at: float | None = None


@dataclass
class _MemIdem:
    fingerprint: str
    token: str | None
    locked_until: float
    expires_at: float
    response: StoredResponse | None = None


@dataclass
class MemoryBackend:
    """All state of one in-memory platform."""

    clock: Clock = time.time
    lock: threading.RLock = field(default_factory=threading.RLock)
    events: list[RecordedEvent] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    versions: dict[str, int] = field(default_factory=dict)
    checkpoints: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, _MemJob] = field(default_factory=dict)
    dedup: dict[str, tuple[str, float]] = field(default_factory=dict)
    job_seq: int = 0
    idempotency: dict[tuple[str, str], _MemIdem] = field(default_factory=dict)
    rule_sets: list[RuleSet] = field(default_factory=list)


# ---------------------------------------------------------------- events


class MemoryEventStore:
    """EventStore on a list; positions are list indexes + 1."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._b = backend

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> list[RecordedEvent]:
        return self._append(stream, events, expected_version, None)

    def _append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        undo: Undo | None,
    ) -> list[RecordedEvent]:
        prepared = prepare_append(stream, events, expected_version)
        b = self._b
        with b.lock:
            current = b.versions.get(stream, 0)
            if expected_version is not None and expected_version != current:
                raise ConcurrencyConflict(stream, expected_version, current)
            ids = {eid for _, eid, _ in prepared}
            if len(ids) < len(prepared) or ids & b.event_ids:
                raise InvalidArgument("an event with this id was already appended")
            now = from_micros(to_micros(b.clock()))
            recorded = [
                RecordedEvent(
                    id=eid,
                    type=event.type,
                    stream=stream,
                    version=current + index,
                    position=len(b.events) + index,
                    recorded_at=now,
                    data=load_json(data),
                    merchant_id=event.merchant_id,
                    correlation_id=event.correlation_id,
                    causation_id=event.causation_id,
                )
                for index, (event, eid, data) in enumerate(prepared, start=1)
            ]
            size = len(b.events)
            b.events.extend(recorded)
            b.event_ids.update(ids)
            b.versions[stream] = current + len(recorded)
            if undo is not None:

                def revert() -> None:
                    del b.events[size:]
                    b.event_ids.difference_update(ids)
                    if current:
                        b.versions[stream] = current
                    else:
                        b.versions.pop(stream, None)

                undo.append(revert)
            return recorded

    def read_stream(
        self, stream: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        check_stream(stream)
        with self._b.lock:
            found = [e for e in self._b.events if e.stream == stream and e.version >= from_version]
        return found if limit is None else found[:limit]

    def read_all(
        self, from_position: int = 1, limit: int = 500, *, merchant_id: str | None = None
    ) -> list[RecordedEvent]:
        check_ref("merchant_id", merchant_id)
        with self._b.lock:
            tail = self._b.events[max(0, from_position - 1) :]
            if merchant_id is not None:
                tail = [e for e in tail if e.merchant_id == merchant_id]
            return tail[: max(0, limit)]

    def stream_version(self, stream: str) -> int:
        check_stream(stream)
        with self._b.lock:
            return self._b.versions.get(stream, 0)

    def head_position(self) -> int:
        with self._b.lock:
            return len(self._b.events)

    def subscription(self, name: str) -> PositionSubscription:
        return PositionSubscription(name, self, self)

    def load_checkpoint(self, name: str) -> int:
        with self._b.lock:
            return self._b.checkpoints.get(name, 0)

    def save_checkpoint(self, name: str, position: int) -> None:
        with self._b.lock:
            self._b.checkpoints[name] = position


# ---------------------------------------------------------------- jobs


class MemoryJobQueue:
    """JobQueue on a dict; leases are random tokens, time is the backend clock."""

    def __init__(self, backend: MemoryBackend, policy: RetryPolicy | None = None) -> None:
        self._b = backend
        self.policy = policy or RetryPolicy()

    def enqueue(
        self,
        job_type: str,
        payload: JSON,
        *,
        delay_s: float = 0.0,
        dedup_id: str | None = None,
    ) -> str:
        return self._enqueue(NewJob(job_type, payload, delay_s, dedup_id), None)

    def _enqueue(self, job: NewJob, undo: Undo | None) -> str:
        job_id, payload = job.prepared()
        b = self._b
        with b.lock:
            now = b.clock()
            if job.dedup_id is not None:
                seen = b.dedup.get(job.dedup_id)
                if seen is not None and seen[1] > now:
                    return seen[0]
                b.dedup[job.dedup_id] = (job_id, now + DEDUP_WINDOW_S)
            b.job_seq += 1
            b.jobs[job_id] = _MemJob(
                b.job_seq, job_id, job.type, load_json(payload), now, now + job.delay_s
            )
            if undo is not None:

                def revert() -> None:
                    b.jobs.pop(job_id, None)
                    if job.dedup_id is not None:
                        b.dedup.pop(job.dedup_id, None)

                undo.append(revert)
            return job_id

    def lease(self, worker_id: str, n: int = 1, visibility_timeout_s: float = 30.0) -> list[Job]:
        check_ref("worker_id", worker_id)
        check_delay("visibility_timeout_s", visibility_timeout_s)
        b = self._b
        with b.lock:
            now = b.clock()
            due = sorted(
                (j for j in b.jobs.values() if j.dead_at is None and j.available_at <= now),
                key=lambda j: (j.available_at, j.seq),
            )
            leased: list[Job] = []
            for job in due:
                if len(leased) >= n:
                    break
                if self.policy.exhausted(job.attempts):
                    # Delivered max_attempts times and never acked or nacked: the worker died
                    # on it every time (a poison job). Dead-letter instead of a new delivery.
                    job.dead_at = now
                    job.last_error = job.last_error or "lease expired without ack or nack"
                    continue
                job.attempts += 1
                job.token = random_token()
                job.leased_by = worker_id
                job.available_at = now + visibility_timeout_s
                leased.append(self._view(job, worker_id))
            return leased

    @staticmethod
    def _view(job: _MemJob, worker_id: str) -> Job:
        return Job(
            id=job.id,
            type=job.type,
            payload=job.payload,
            attempts=job.attempts,
            enqueued_at=from_micros(to_micros(job.enqueued_at)),
            lease=Lease(
                worker_id, f"{job.id}/{job.token}", from_micros(to_micros(job.available_at))
            ),
            last_error=job.last_error,
        )

    def _held(self, job: Job) -> _MemJob:
        held = self._b.jobs.get(job.id)
        if (
            held is None
            or held.dead_at is not None
            or f"{held.id}/{held.token}" != job.lease.handle
        ):
            raise LeaseLost(job.id)
        return held

    def ack(self, job: Job) -> None:
        with self._b.lock:
            self._held(job)
            del self._b.jobs[job.id]

    def nack(self, job: Job, error: str | BaseException) -> NackOutcome:
        with self._b.lock:
            held = self._held(job)
            now = self._b.clock()
            held.last_error = safe_error_text(error)
            held.token = None
            if self.policy.exhausted(held.attempts):
                held.dead_at = now
                return NackOutcome(dead_lettered=True)
            held.available_at = now + self.policy.backoff_s(held.attempts)
            return NackOutcome(False, from_micros(to_micros(held.available_at)))

    def extend(self, job: Job, visibility_timeout_s: float) -> Job:
        check_delay("visibility_timeout_s", visibility_timeout_s)
        with self._b.lock:
            held = self._held(job)
            held.available_at = self._b.clock() + visibility_timeout_s
            return self._view(held, job.lease.worker_id)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._b.lock:
            dead = sorted(
                (j for j in self._b.jobs.values() if j.dead_at is not None),
                key=lambda j: (-(j.dead_at or 0.0), -j.seq),
            )
            return [
                DeadLetter(
                    j.id,
                    j.type,
                    j.payload,
                    j.attempts,
                    j.last_error,
                    from_micros(to_micros(j.dead_at or 0.0)),
                )
                for j in dead[:limit]
            ]

    def replay(self, job_ids: Sequence[str] | None = None) -> int:
        wanted = None if job_ids is None else set(job_ids)
        with self._b.lock:
            now = self._b.clock()
            count = 0
            for job in self._b.jobs.values():
                if job.dead_at is not None and (wanted is None or job.id in wanted):
                    job.dead_at = None
                    job.attempts = 0
                    job.token = None
                    job.available_at = now
                    count += 1
            return count

    def counts(self) -> QueueCounts:
        with self._b.lock:
            now = self._b.clock()
            ready = in_flight = delayed = dead = 0
            for job in self._b.jobs.values():
                if job.dead_at is not None:
                    dead += 1
                elif job.available_at <= now:
                    ready += 1
                elif job.token is not None:
                    in_flight += 1
                else:
                    delayed += 1
            return QueueCounts(ready, in_flight, delayed, dead)


# ---------------------------------------------------------------- idempotency


class MemoryIdempotencyStore:
    """IdempotencyStore on a dict with lazy expiry."""

    def __init__(
        self,
        backend: MemoryBackend,
        retention_s: float = MIN_IDEMPOTENCY_RETENTION_S,
        lock_ttl_s: float = 60.0,
    ) -> None:
        if retention_s < MIN_IDEMPOTENCY_RETENTION_S:
            raise InvalidArgument("idempotency retention must be at least 24 h")
        self._b = backend
        self.retention_s = retention_s
        self.lock_ttl_s = lock_ttl_s

    def reserve(self, merchant_id: str, key: str, fingerprint: str) -> Reservation:
        return self._reserve(merchant_id, key, fingerprint, None)

    def _reserve(
        self, merchant_id: str, key: str, fingerprint: str, undo: Undo | None
    ) -> Reservation:
        check_reservation_args(merchant_id, key, fingerprint)
        b = self._b
        with b.lock:
            now = b.clock()
            record = b.idempotency.get((merchant_id, key))
            if record is not None and _memory_live(record, now):
                status = classify(record.fingerprint, fingerprint, record.response)
                return Reservation(merchant_id, key, fingerprint, status, response=record.response)
            token = random_token()
            b.idempotency[(merchant_id, key)] = _MemIdem(
                fingerprint, token, now + self.lock_ttl_s, now + self.retention_s
            )
            if undo is not None:

                def revert() -> None:
                    if record is None:
                        b.idempotency.pop((merchant_id, key), None)
                    else:
                        b.idempotency[(merchant_id, key)] = record

                undo.append(revert)
            return Reservation(merchant_id, key, fingerprint, ReservationStatus.NEW, token=token)

    def complete(self, reservation: Reservation, response: StoredResponse) -> None:
        self._complete(reservation, response, None)

    def _complete(
        self, reservation: Reservation, response: StoredResponse, undo: Undo | None
    ) -> None:
        check_response(response)
        b = self._b
        with b.lock:
            record = self._owned(reservation)
            before = _MemIdem(**record.__dict__)
            record.response = response
            record.token = None
            record.expires_at = b.clock() + self.retention_s
            if undo is not None:
                undo.append(lambda: record.__dict__.update(before.__dict__))

    def _owned(self, reservation: Reservation) -> _MemIdem:
        record = self._b.idempotency.get((reservation.merchant_id, reservation.key))
        if (
            record is None
            or reservation.token is None
            or record.token != reservation.token
            or not _memory_live(record, self._b.clock())
        ):
            raise ReservationLost(reservation.merchant_id)
        return record

    def release(self, reservation: Reservation) -> None:
        with self._b.lock:
            record = self._b.idempotency.get((reservation.merchant_id, reservation.key))
            if record is not None and reservation.token and record.token == reservation.token:
                del self._b.idempotency[(reservation.merchant_id, reservation.key)]

    def purge_expired(self) -> int:
        with self._b.lock:
            now = self._b.clock()
            gone = [k for k, r in self._b.idempotency.items() if not _memory_live(r, now)]
            for k in gone:
                del self._b.idempotency[k]
            return len(gone)


def _memory_live(record: _MemIdem, now: float) -> bool:
    if record.response is None:
        return record.locked_until > now
    return record.expires_at > now


# ---------------------------------------------------------------- rules


class MemoryRulesStore:
    """RulesStore on a list of published versions."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._b = backend

    def active(self) -> RuleSet:
        with self._b.lock:
            return self._b.rule_sets[-1] if self._b.rule_sets else RuleSet.empty()

    def active_version(self) -> int:
        with self._b.lock:
            return len(self._b.rule_sets)

    def publish(self, rules: Sequence[JSON], *, expected_version: int | None = None) -> RuleSet:
        text = prepare_rules(rules, expected_version)
        with self._b.lock:
            current = len(self._b.rule_sets)
            if expected_version is not None and expected_version != current:
                raise ConcurrencyConflict("rules", expected_version, current)
            published = RuleSet(
                current + 1, tuple(load_json(text)), from_micros(to_micros(self._b.clock()))
            )
            self._b.rule_sets.append(published)
            return published

    def get(self, version: int) -> RuleSet | None:
        with self._b.lock:
            if 1 <= version <= len(self._b.rule_sets):
                return self._b.rule_sets[version - 1]
            return None


# ---------------------------------------------------------------- unit of work


class _UowEvents:
    def __init__(self, uow: MemoryUnitOfWork, store: MemoryEventStore) -> None:
        self._uow, self._store = uow, store

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> list[RecordedEvent]:
        return self._store._append(stream, events, expected_version, self._uow.undo)


class _UowJobs:
    def __init__(self, uow: MemoryUnitOfWork, queue: MemoryJobQueue) -> None:
        self._uow, self._queue = uow, queue

    def enqueue(
        self,
        job_type: str,
        payload: JSON,
        *,
        delay_s: float = 0.0,
        dedup_id: str | None = None,
    ) -> str:
        job = NewJob(job_type, payload, delay_s, dedup_id)
        return self._queue._enqueue(job, self._uow.undo)


class _UowIdempotency:
    def __init__(self, uow: MemoryUnitOfWork, store: MemoryIdempotencyStore) -> None:
        self._uow, self._store = uow, store

    def reserve(self, merchant_id: str, key: str, fingerprint: str) -> Reservation:
        return self._store._reserve(merchant_id, key, fingerprint, self._uow.undo)

    def complete(self, reservation: Reservation, response: StoredResponse) -> None:
        self._store._complete(reservation, response, self._uow.undo)


class MemoryUnitOfWork:
    """Holds the backend lock from `__enter__` to commit/rollback; rollback runs the undo log."""

    def __init__(
        self,
        backend: MemoryBackend,
        events: MemoryEventStore,
        jobs: MemoryJobQueue,
        idempotency: MemoryIdempotencyStore,
    ) -> None:
        self._backend = backend
        self._undo: Undo | None = None
        self.events = _UowEvents(self, events)
        self.jobs = _UowJobs(self, jobs)
        self.idempotency = _UowIdempotency(self, idempotency)

    @property
    def undo(self) -> Undo:
        if self._undo is None:
            raise UnitOfWorkClosed("use the unit of work inside `with` and before commit")
        return self._undo

    def __enter__(self) -> Self:
        if self._undo is not None:
            raise UnitOfWorkClosed("this unit of work is already open")
        self._backend.lock.acquire()
        self._undo = []
        return self

    def commit(self) -> None:
        self.undo.clear()
        self._finish()

    def rollback(self) -> None:
        if self._undo is None:
            return
        for revert in reversed(self._undo):
            revert()
        self._finish()

    def _finish(self) -> None:
        self._undo = None
        self._backend.lock.release()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()
