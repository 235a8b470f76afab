"""noncde.dashboard adapters, SQL: the staff store on SQLite (default, `var/noncde/dashboard.db`)
or PostgreSQL (production) through SQLAlchemy 2 Core.

Connection handling (WAL, BEGIN IMMEDIATE, error translation) is the platform's `SqlDatabase`.
Times are Unix microseconds (UTC). Password hashes are argon2id strings and TOTP seeds are
sealed (AES-256-GCM) before they reach this module; sessions are stored by the SHA-256 of
their token. Read-modify-write methods lock the row (`FOR UPDATE` on PostgreSQL; SQLite has
one writer), so counts and compare-and-sets hold across processes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from noncde.dashboard.domain import (
    AuthMethod,
    Conflict,
    LockoutPolicy,
    LoginGuard,
    NotFound,
    RefundRequest,
    RefundRequestStatus,
    Role,
    Session,
    SessionStage,
    StaffUser,
    UserStatus,
)
from noncde.dashboard.domain.accounts import merged_user
from noncde.dashboard.domain.reconciliation import Resolution, ResolutionStatus
from noncde.platform.adapters.sql.schema import SqlDatabase

SCHEMA_VERSION = 1
# Any constant: the PostgreSQL advisory lock that serializes concurrent schema creation.
_SCHEMA_LOCK_KEY = 0x46435F444153

metadata = MetaData()

dash_schema = Table(
    "dash_schema",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

dash_users = Table(
    "dash_users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),  # PCI DSS 8.2.1
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("password_hash", Text),
    Column("totp_sealed", Text),
    Column("totp_last_step", BigInteger, nullable=False),
    Column("must_change_password", Boolean, nullable=False),
    Column("password_changed_at", BigInteger),
    Column("mfa_enrolled_at", BigInteger),
    Column("last_login_at", BigInteger),
    Column("password_history", Text, nullable=False),
)

dash_login_guards = Table(
    "dash_login_guards",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", BigInteger),
    Column("last_failure_at", BigInteger),
)

dash_sessions = Table(
    "dash_sessions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("method", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("mfa_at", BigInteger),
    Index("ix_dash_sessions_user", "user_id"),
    Index("ix_dash_sessions_seen", "last_seen_at"),
)

dash_refund_requests = Table(
    "dash_refund_requests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("charge_id", String(64), nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("decided_by", String(64)),
    Column("decided_at", BigInteger),
    Column("note", Text),
    Column("refund_id", String(64)),
    Column("error", Text),
    Column("category", String(32), nullable=False),
    Index("ix_dash_refunds_status", "status", "requested_at"),
    Index("ix_dash_refunds_charge", "charge_id"),
)

dash_resolutions = Table(
    "dash_recon_resolutions",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=False),
    Column("decided_by", String(64), nullable=False),
    Column("at", BigInteger, nullable=False),
)

dash_login_states = Table(
    "dash_login_states",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


def micros(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def when(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1_000_000, tz=UTC)


def _at(value: int) -> datetime:
    moment = when(value)
    assert moment is not None
    return moment


def _opt(moment: datetime | None) -> int | None:
    return None if moment is None else micros(moment)


def _user_row(user: StaffUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": str(user.role),
        "status": str(user.status),
        "created_at": micros(user.created_at),
        "password_hash": user.password_hash,
        "totp_sealed": user.totp_sealed,
        "totp_last_step": user.totp_last_step,
        "must_change_password": user.must_change_password,
        "password_changed_at": _opt(user.password_changed_at),
        "mfa_enrolled_at": _opt(user.mfa_enrolled_at),
        "last_login_at": _opt(user.last_login_at),
        "password_history": json.dumps(list(user.password_history)),
    }


def _user(row: Any) -> StaffUser:
    return StaffUser(
        id=row.id,
        username=row.username,
        role=Role(row.role),
        status=UserStatus(row.status),
        created_at=_at(row.created_at),
        password_hash=row.password_hash,
        totp_sealed=row.totp_sealed,
        totp_last_step=int(row.totp_last_step),
        must_change_password=bool(row.must_change_password),
        password_changed_at=when(row.password_changed_at),
        mfa_enrolled_at=when(row.mfa_enrolled_at),
        last_login_at=when(row.last_login_at),
        password_history=tuple(json.loads(row.password_history)),
    )


def _session_row(session: Session) -> dict[str, Any]:
    return {
        "key": session.key,
        "user_id": session.user_id,
        "stage": str(session.stage),
        "method": str(session.method),
        "created_at": micros(session.created_at),
        "last_seen_at": micros(session.last_seen_at),
        "csrf_token": session.csrf_token,
        "mfa_at": _opt(session.mfa_at),
    }


def _session(row: Any) -> Session:
    return Session(
        key=row.key,
        user_id=row.user_id,
        stage=SessionStage(row.stage),
        method=AuthMethod(row.method),
        created_at=_at(row.created_at),
        last_seen_at=_at(row.last_seen_at),
        csrf_token=row.csrf_token,
        mfa_at=when(row.mfa_at),
    )


def _refund_row(request: RefundRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "charge_id": request.charge_id,
        "merchant_id": request.merchant_id,
        "amount": request.amount,
        "currency": request.currency,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "requested_at": micros(request.requested_at),
        "status": str(request.status),
        "decided_by": request.decided_by,
        "decided_at": _opt(request.decided_at),
        "note": request.note,
        "refund_id": request.refund_id,
        "error": request.error,
        "category": request.category,
    }


def _refund(row: Any) -> RefundRequest:
    return RefundRequest(
        id=row.id,
        charge_id=row.charge_id,
        merchant_id=row.merchant_id,
        amount=int(row.amount),
        currency=row.currency,
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=_at(row.requested_at),
        status=RefundRequestStatus(row.status),
        decided_by=row.decided_by,
        decided_at=when(row.decided_at),
        note=row.note,
        refund_id=row.refund_id,
        error=row.error,
        category=row.category,
    )


def _guard(row: Any) -> LoginGuard:
    return LoginGuard(
        key=row.key,
        failures=int(row.failures),
        locked_until=when(row.locked_until),
        last_failure_at=when(row.last_failure_at),
    )


def init_schema(db: SqlDatabase) -> None:
    """Create missing tables; idempotent and safe when several processes start at once."""
    with db.creating_schema(
        metadata,
        _SCHEMA_LOCK_KEY,
        stamp=dash_schema,
        version=SCHEMA_VERSION,
        what="the dashboard database",
    ):
        pass


class SqlStaffStore:
    """The staff store (see `noncde.dashboard.ports.StaffStore` for the guarantees)."""

    def __init__(self, db: SqlDatabase, *, create_schema: bool = True) -> None:
        self.db = db
        if create_schema:
            init_schema(db)

    def _locked(self, query: Any) -> Any:
        return query.with_for_update() if self.db.is_postgres else query

    # ------------------------------------------------------------ accounts

    def add_user(self, user: StaffUser) -> None:
        try:
            with self.db.write() as conn:
                conn.execute(dash_users.insert().values(**_user_row(user)))
        except IntegrityError:
            raise Conflict(f"The user name {user.username!r} is taken.") from None

    def get_user(self, user_id: str) -> StaffUser | None:
        with self.db.read() as conn:
            row = conn.execute(select(dash_users).where(dash_users.c.id == user_id)).first()
        return _user(row) if row else None

    def find_user(self, username: str) -> StaffUser | None:
        with self.db.read() as conn:
            row = conn.execute(select(dash_users).where(dash_users.c.username == username)).first()
        return _user(row) if row else None

    def list_users(self) -> list[StaffUser]:
        with self.db.read() as conn:
            rows = conn.execute(select(dash_users).order_by(dash_users.c.username)).all()
        return [_user(row) for row in rows]

    def save_user(self, user: StaffUser) -> None:
        with self.db.write() as conn:
            row = conn.execute(
                self._locked(select(dash_users).where(dash_users.c.id == user.id))
            ).first()
            if row is None:
                raise NotFound("No such staff account.")
            merged = merged_user(_user(row), user)
            values = _user_row(merged)
            values.pop("id")
            conn.execute(update(dash_users).where(dash_users.c.id == user.id).values(**values))

    def use_totp_step(self, user_id: str, step: int) -> bool:
        with self.db.write() as conn:
            result = conn.execute(
                update(dash_users)
                .where(dash_users.c.id == user_id, dash_users.c.totp_last_step < step)
                .values(totp_last_step=step)
            )
        return result.rowcount == 1

    # ------------------------------------------------------------ lockout

    def guard(self, key: str) -> LoginGuard | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(dash_login_guards).where(dash_login_guards.c.key == key)
            ).first()
        return _guard(row) if row else None

    def record_failure(self, key: str, now: datetime, policy: LockoutPolicy) -> LoginGuard:
        with self.db.write() as conn:
            conn.execute(
                self.db.insert(dash_login_guards)
                .values(key=key, failures=0, locked_until=None, last_failure_at=None)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            row = conn.execute(
                self._locked(select(dash_login_guards).where(dash_login_guards.c.key == key))
            ).one()
            current = _guard(row)
            after = policy.after_failure(current if current.failures else None, key, now)
            conn.execute(
                update(dash_login_guards)
                .where(dash_login_guards.c.key == key)
                .values(
                    failures=after.failures,
                    locked_until=_opt(after.locked_until),
                    last_failure_at=_opt(after.last_failure_at),
                )
            )
        return after

    def clear_guard(self, key: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(dash_login_guards).where(dash_login_guards.c.key == key))

    # ------------------------------------------------------------ sessions

    def add_session(self, session: Session) -> None:
        with self.db.write() as conn:
            conn.execute(dash_sessions.insert().values(**_session_row(session)))

    def get_session(self, key: str) -> Session | None:
        with self.db.read() as conn:
            row = conn.execute(select(dash_sessions).where(dash_sessions.c.key == key)).first()
        return _session(row) if row else None

    def touch_session(self, key: str, now: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(dash_sessions)
                .where(dash_sessions.c.key == key, dash_sessions.c.last_seen_at < micros(now))
                .values(last_seen_at=micros(now))
            )

    def mark_mfa(self, key: str, at: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(dash_sessions).where(dash_sessions.c.key == key).values(mfa_at=micros(at))
            )

    def replace_session(self, old_key: str, new: Session) -> bool:
        with self.db.write() as conn:
            gone = conn.execute(delete(dash_sessions).where(dash_sessions.c.key == old_key))
            if gone.rowcount != 1:
                return False
            conn.execute(dash_sessions.insert().values(**_session_row(new)))
        return True

    def delete_session(self, key: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(dash_sessions).where(dash_sessions.c.key == key))

    def delete_user_sessions(self, user_id: str, keep: str | None = None) -> int:
        query = delete(dash_sessions).where(dash_sessions.c.user_id == user_id)
        if keep is not None:
            query = query.where(dash_sessions.c.key != keep)
        with self.db.write() as conn:
            return int(conn.execute(query).rowcount)

    def purge_sessions(self, last_seen_before: datetime) -> int:
        with self.db.write() as conn:
            result = conn.execute(
                delete(dash_sessions).where(dash_sessions.c.last_seen_at < micros(last_seen_before))
            )
            conn.execute(
                delete(dash_login_states).where(
                    dash_login_states.c.created_at < micros(last_seen_before)
                )
            )
        return int(result.rowcount)

    # ------------------------------------------------------------ refund requests

    def add_refund_request(self, request: RefundRequest) -> None:
        with self.db.write() as conn:
            conn.execute(dash_refund_requests.insert().values(**_refund_row(request)))

    def get_refund_request(self, request_id: str) -> RefundRequest | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(dash_refund_requests).where(dash_refund_requests.c.id == request_id)
            ).first()
        return _refund(row) if row else None

    def list_refund_requests(
        self,
        *,
        status: RefundRequestStatus | None = None,
        charge_id: str | None = None,
        limit: int = 100,
    ) -> list[RefundRequest]:
        query = select(dash_refund_requests)
        if status is not None:
            query = query.where(dash_refund_requests.c.status == str(status))
        if charge_id is not None:
            query = query.where(dash_refund_requests.c.charge_id == charge_id)
        query = query.order_by(dash_refund_requests.c.requested_at.desc()).limit(limit)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [_refund(row) for row in rows]

    def update_refund_request(self, request: RefundRequest, expected: RefundRequestStatus) -> bool:
        values = _refund_row(request)
        values.pop("id")
        with self.db.write() as conn:
            result = conn.execute(
                update(dash_refund_requests)
                .where(
                    dash_refund_requests.c.id == request.id,
                    dash_refund_requests.c.status == str(expected),
                )
                .values(**values)
            )
        return result.rowcount == 1

    # ------------------------------------------------------------ reconciliation

    def set_resolution(self, resolution: Resolution) -> None:
        values = {
            "status": str(resolution.status),
            "note": resolution.note,
            "decided_by": resolution.by,
            "at": micros(resolution.at),
        }
        with self.db.write() as conn:
            conn.execute(
                self.db.insert(dash_resolutions)
                .values(day=resolution.day.isoformat(), key=resolution.key, **values)
                .on_conflict_do_update(index_elements=["day", "key"], set_=values)
            )

    def resolutions(self, day: date) -> dict[str, Resolution]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(dash_resolutions).where(dash_resolutions.c.day == day.isoformat())
            ).all()
        return {
            row.key: Resolution(
                day, row.key, ResolutionStatus(row.status), row.note, row.decided_by, _at(row.at)
            )
            for row in rows
        }

    # ------------------------------------------------------------ OIDC login states

    def put_login_state(self, key: str, value: Mapping[str, str], created: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                dash_login_states.insert().values(
                    key=key, value=json.dumps(dict(value)), created_at=micros(created)
                )
            )

    def take_login_state(self, key: str, not_before: datetime) -> dict[str, str] | None:
        with self.db.write() as conn:
            row = conn.execute(
                self._locked(select(dash_login_states).where(dash_login_states.c.key == key))
            ).first()
            if row is None:
                return None
            conn.execute(delete(dash_login_states).where(dash_login_states.c.key == key))
        if row.created_at < micros(not_before):
            return None
        value: dict[str, str] = json.loads(row.value)
        return value

    def close(self) -> None:
        self.db.engine.dispose()
