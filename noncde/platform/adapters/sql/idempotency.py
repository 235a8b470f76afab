"""Non-CDE platform adapters, SQL: idempotency records (one row per merchant and key)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, or_, select, update

from fincore.ids import random_token
from noncde.platform.adapters.sql.schema import SqlDatabase, idempotency_keys
from noncde.platform.domain import (
    MIN_IDEMPOTENCY_RETENTION_S,
    Clock,
    InvalidArgument,
    Reservation,
    ReservationLost,
    ReservationStatus,
    StoredResponse,
    check_reservation_args,
    check_response,
    classify,
    to_micros,
)

t = idempotency_keys
_PK = and_(t.c.merchant_id == bindparam("b_merchant"), t.c.key == bindparam("b_key"))


def _expired(now: Any) -> Any:
    """SQL: the record no longer counts (an in-flight lock ran out, or retention passed)."""
    return or_(
        and_(t.c.response.is_(None), t.c.locked_until <= now),
        and_(t.c.response.is_not(None), t.c.expires_at <= now),
    )


def _claim(db: SqlDatabase) -> Any:
    return (
        db.insert(t)
        .on_conflict_do_nothing(index_elements=["merchant_id", "key"])
        .returning(t.c.token)
    )


_FIND = select(t.c.fingerprint, t.c.response, t.c.locked_until, t.c.expires_at).where(_PK)
_TAKE_OVER = update(t).where(_PK, _expired(bindparam("b_now")))
_COMPLETE = update(t).where(_PK, t.c.token == bindparam("b_token"), t.c.response.is_(None))


class SqlIdempotencyStore:
    """IdempotencyStore on `idempotency_keys`; usable standalone or inside a unit of work."""

    def __init__(
        self,
        db: SqlDatabase,
        *,
        retention_s: float = MIN_IDEMPOTENCY_RETENTION_S,
        lock_ttl_s: float = 60.0,
        clock: Clock = time.time,
    ) -> None:
        if retention_s < MIN_IDEMPOTENCY_RETENTION_S:
            raise InvalidArgument("idempotency retention must be at least 24 h")
        self.db = db
        self.retention_s = retention_s
        self.lock_ttl_s = lock_ttl_s
        self.clock = clock

    def reserve(self, merchant_id: str, key: str, fingerprint: str) -> Reservation:
        with self.db.write() as conn:
            return self.reserve_in(conn, merchant_id, key, fingerprint)

    def reserve_in(
        self, conn: Connection, merchant_id: str, key: str, fingerprint: str
    ) -> Reservation:
        """Reserve inside the caller's transaction."""
        check_reservation_args(merchant_id, key, fingerprint)
        now = to_micros(self.clock())
        token = random_token()
        fresh = {
            "fingerprint": fingerprint,
            "token": token,
            "locked_until": now + to_micros(self.lock_ttl_s),
            "expires_at": now + to_micros(self.retention_s),
            "response": None,
            "created_at": now,
        }
        new = Reservation(merchant_id, key, fingerprint, ReservationStatus.NEW, token=token)
        where = {"b_merchant": merchant_id, "b_key": key}
        claim = self.db.prepared("idempotency.claim", _claim)
        # Three tries: a record can vanish (released, purged) between the statements.
        for _ in range(3):
            inserted = conn.execute(claim, {"merchant_id": merchant_id, "key": key, **fresh})
            if inserted.first() is not None:
                return new
            row = conn.execute(_FIND, where).one_or_none()
            if row is None:
                continue
            live = (row.locked_until > now) if row.response is None else (row.expires_at > now)
            if live:
                response = None if row.response is None else StoredResponse.from_json(row.response)
                status = classify(row.fingerprint, fingerprint, response)
                return Reservation(merchant_id, key, fingerprint, status, response=response)
            taken = conn.execute(_TAKE_OVER.values(**fresh), {**where, "b_now": now}).rowcount
            if taken:
                return new
        raise ReservationLost(merchant_id)

    def complete(self, reservation: Reservation, response: StoredResponse) -> None:
        with self.db.write() as conn:
            self.complete_in(conn, reservation, response)

    def complete_in(
        self, conn: Connection, reservation: Reservation, response: StoredResponse
    ) -> None:
        check_response(response)
        if reservation.token is None:
            raise ReservationLost(reservation.merchant_id)
        now = to_micros(self.clock())
        changed = conn.execute(
            _COMPLETE,
            {
                "b_merchant": reservation.merchant_id,
                "b_key": reservation.key,
                "b_token": reservation.token,
                "response": response.to_json(),
                "token": None,
                "expires_at": now + to_micros(self.retention_s),
            },
        ).rowcount
        if changed != 1:
            raise ReservationLost(reservation.merchant_id)

    def release(self, reservation: Reservation) -> None:
        if reservation.token is None:
            return
        with self.db.write() as conn:
            conn.execute(
                delete(t).where(
                    t.c.merchant_id == reservation.merchant_id,
                    t.c.key == reservation.key,
                    t.c.token == reservation.token,
                )
            )

    def purge_expired(self) -> int:
        with self.db.write() as conn:
            return int(conn.execute(delete(t).where(_expired(to_micros(self.clock())))).rowcount)
