"""Non-CDE platform adapters, SQL: the unit of work (events, jobs and idempotency records in one
database transaction; jobs for SQS go to the outbox in that same transaction)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from sqlalchemy import Connection

from fincore.logs import get_logger
from noncde.platform.adapters.sql import outbox
from noncde.platform.adapters.sql.events import append_events
from noncde.platform.adapters.sql.idempotency import SqlIdempotencyStore
from noncde.platform.adapters.sql.jobs import enqueue_job
from noncde.platform.adapters.sql.schema import SqlDatabase, translate_errors
from noncde.platform.domain import (
    JSON,
    Clock,
    NewEvent,
    NewJob,
    RecordedEvent,
    Reservation,
    ReservationStatus,
    StoredResponse,
    UnitOfWorkClosed,
    check_response,
)
from noncde.platform.ports import IdempotencyStore


class _Events:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> list[RecordedEvent]:
        return append_events(self._uow.conn, self._uow.clock, stream, events, expected_version)


class _Jobs:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def enqueue(
        self,
        job_type: str,
        payload: JSON,
        *,
        delay_s: float = 0.0,
        dedup_id: str | None = None,
    ) -> str:
        uow = self._uow
        job = NewJob(job_type, payload, delay_s, dedup_id)
        if uow.jobs_to_outbox:
            return outbox.add_job(uow.conn, uow.db, uow.clock, job)
        return enqueue_job(uow.conn, uow.db, uow.clock, job)


class _SqlIdempotency:
    def __init__(self, uow: SqlUnitOfWork, store: SqlIdempotencyStore) -> None:
        self._uow, self._store = uow, store

    def reserve(self, merchant_id: str, key: str, fingerprint: str) -> Reservation:
        return self._store.reserve_in(self._uow.conn, merchant_id, key, fingerprint)

    def complete(self, reservation: Reservation, response: StoredResponse) -> None:
        self._store.complete_in(self._uow.conn, reservation, response)


class _ExternalIdempotency:
    """Idempotency in another store (Redis): reserved now, completed only after the SQL
    transaction commits, released if it rolls back."""

    def __init__(self, uow: SqlUnitOfWork, store: IdempotencyStore) -> None:
        self._uow, self._store = uow, store
        self.taken: list[Reservation] = []
        self.finished: list[tuple[Reservation, StoredResponse]] = []

    def reserve(self, merchant_id: str, key: str, fingerprint: str) -> Reservation:
        self._uow.conn  # noqa: B018 - fail fast outside the with block
        reservation = self._store.reserve(merchant_id, key, fingerprint)
        if reservation.status is ReservationStatus.NEW:
            self.taken.append(reservation)
        return reservation

    def complete(self, reservation: Reservation, response: StoredResponse) -> None:
        check_response(response)
        self.finished.append((reservation, response))

    def after_commit(self) -> None:
        log = get_logger("platform.uow")
        for reservation, response in self.finished:
            try:
                self._store.complete(reservation, response)
            except Exception as exc:  # noqa: BLE001 - committed already: report, never undo
                log.warning(
                    "idempotency completion after commit failed; the key stays in flight "
                    "until its lock TTL",
                    merchant_id=reservation.merchant_id,
                    error=type(exc).__name__,
                )

    def after_rollback(self) -> None:
        for reservation in self.taken:
            # Best effort: if Redis is unreachable the lock TTL frees the key anyway.
            with contextlib.suppress(Exception):
                self._store.release(reservation)


class SqlUnitOfWork:
    """One SQL transaction (BEGIN IMMEDIATE on SQLite) from `__enter__` to commit/rollback."""

    def __init__(
        self,
        db: SqlDatabase,
        *,
        idempotency: SqlIdempotencyStore | IdempotencyStore,
        jobs_to_outbox: bool = False,
        clock: Clock = time.time,
    ) -> None:
        self.db = db
        self.clock = clock
        self.jobs_to_outbox = jobs_to_outbox
        self._conn: Connection | None = None
        self.events = _Events(self)
        self.jobs = _Jobs(self)
        self._external: _ExternalIdempotency | None = None
        self.idempotency: _SqlIdempotency | _ExternalIdempotency
        if isinstance(idempotency, SqlIdempotencyStore) and idempotency.db is db:
            self.idempotency = _SqlIdempotency(self, idempotency)
        else:
            self._external = _ExternalIdempotency(self, idempotency)
            self.idempotency = self._external

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise UnitOfWorkClosed("use the unit of work inside `with` and before commit")
        return self._conn

    def __enter__(self) -> Self:
        if self._conn is not None:
            raise UnitOfWorkClosed("this unit of work is already open")
        self._conn = self.db.connect()
        return self

    def commit(self) -> None:
        conn = self.conn
        try:
            with translate_errors(self.db.dialect):
                conn.commit()
        except BaseException:
            self.rollback()
            raise
        self._conn = None
        self.db.close(conn)
        if self._external is not None:
            self._external.after_commit()

    def rollback(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rollback()
        finally:
            self.db.close(conn)
            if self._external is not None:
                self._external.after_rollback()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()
