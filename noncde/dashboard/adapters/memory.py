"""noncde.dashboard adapters, memory: the staff store in one process's memory (tests and
throw-away runs; `memory://`). Same guarantees as the SQL store within one process: one lock
makes every compare-and-set atomic."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime

from noncde.dashboard.domain import (
    Conflict,
    LockoutPolicy,
    LoginGuard,
    NotFound,
    RefundRequest,
    RefundRequestStatus,
    Session,
    StaffUser,
)
from noncde.dashboard.domain.accounts import merged_user
from noncde.dashboard.domain.reconciliation import Resolution


class MemoryStaffStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, StaffUser] = {}
        self._guards: dict[str, LoginGuard] = {}
        self._sessions: dict[str, Session] = {}
        self._refunds: dict[str, RefundRequest] = {}
        self._states: dict[str, tuple[dict[str, str], datetime]] = {}
        self._resolutions: dict[tuple[date, str], Resolution] = {}

    # accounts
    def add_user(self, user: StaffUser) -> None:
        with self._lock:
            if any(u.username == user.username for u in self._users.values()):
                raise Conflict(f"The user name {user.username!r} is taken.")
            self._users[user.id] = user

    def get_user(self, user_id: str) -> StaffUser | None:
        with self._lock:
            return self._users.get(user_id)

    def find_user(self, username: str) -> StaffUser | None:
        with self._lock:
            return next((u for u in self._users.values() if u.username == username), None)

    def list_users(self) -> list[StaffUser]:
        with self._lock:
            return list(self._users.values())

    def save_user(self, user: StaffUser) -> None:
        with self._lock:
            if user.id not in self._users:
                raise NotFound("No such staff account.")
            self._users[user.id] = merged_user(self._users[user.id], user)

    def use_totp_step(self, user_id: str, step: int) -> bool:
        with self._lock:
            user = self._users.get(user_id)
            if user is None or step <= user.totp_last_step:
                return False
            self._users[user_id] = replace(user, totp_last_step=step)
            return True

    # lockout
    def guard(self, key: str) -> LoginGuard | None:
        with self._lock:
            return self._guards.get(key)

    def record_failure(self, key: str, now: datetime, policy: LockoutPolicy) -> LoginGuard:
        with self._lock:
            guard = policy.after_failure(self._guards.get(key), key, now)
            self._guards[key] = guard
            return guard

    def clear_guard(self, key: str) -> None:
        with self._lock:
            self._guards.pop(key, None)

    # sessions
    def add_session(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.key] = session

    def get_session(self, key: str) -> Session | None:
        with self._lock:
            return self._sessions.get(key)

    def touch_session(self, key: str, now: datetime) -> None:
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and now > session.last_seen_at:
                self._sessions[key] = replace(session, last_seen_at=now)

    def mark_mfa(self, key: str, at: datetime) -> None:
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions[key] = replace(session, mfa_at=at)

    def replace_session(self, old_key: str, new: Session) -> bool:
        with self._lock:
            if self._sessions.pop(old_key, None) is None:
                return False
            self._sessions[new.key] = new
            return True

    def delete_session(self, key: str) -> None:
        with self._lock:
            self._sessions.pop(key, None)

    def delete_user_sessions(self, user_id: str, keep: str | None = None) -> int:
        with self._lock:
            doomed = [k for k, s in self._sessions.items() if s.user_id == user_id and k != keep]
            for key in doomed:
                del self._sessions[key]
            return len(doomed)

    def purge_sessions(self, last_seen_before: datetime) -> int:
        with self._lock:
            doomed = [k for k, s in self._sessions.items() if s.last_seen_at < last_seen_before]
            for key in doomed:
                del self._sessions[key]
            return len(doomed)

    # refund requests
    def add_refund_request(self, request: RefundRequest) -> None:
        with self._lock:
            self._refunds[request.id] = request

    def get_refund_request(self, request_id: str) -> RefundRequest | None:
        with self._lock:
            return self._refunds.get(request_id)

    def list_refund_requests(
        self,
        *,
        status: RefundRequestStatus | None = None,
        charge_id: str | None = None,
        limit: int = 100,
    ) -> list[RefundRequest]:
        with self._lock:
            found = [
                r
                for r in self._refunds.values()
                if (status is None or r.status is status)
                and (charge_id is None or r.charge_id == charge_id)
            ]
        return sorted(found, key=lambda r: r.requested_at, reverse=True)[:limit]

    def update_refund_request(self, request: RefundRequest, expected: RefundRequestStatus) -> bool:
        with self._lock:
            stored = self._refunds.get(request.id)
            if stored is None or stored.status is not expected:
                return False
            self._refunds[request.id] = request
            return True

    # reconciliation resolutions
    def set_resolution(self, resolution: Resolution) -> None:
        with self._lock:
            self._resolutions[(resolution.day, resolution.key)] = resolution

    def resolutions(self, day: date) -> dict[str, Resolution]:
        with self._lock:
            return {k: r for (d, k), r in self._resolutions.items() if d == day}

    # OIDC login states
    def put_login_state(self, key: str, value: Mapping[str, str], created: datetime) -> None:
        with self._lock:
            self._states[key] = (dict(value), created)

    def take_login_state(self, key: str, not_before: datetime) -> dict[str, str] | None:
        with self._lock:
            found = self._states.pop(key, None)
        if found is None or found[1] < not_before:
            return None
        return found[0]

    def close(self) -> None:
        return None
