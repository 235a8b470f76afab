"""noncde.dashboard (non-CDE): browser sessions and their timeouts; pure.

A session is created when the password (or the OIDC provider) is accepted, in stage `mfa`; it
becomes `active` only after the TOTP code, under a new id (no session fixation). It ends after
15 minutes without a request (PCI DSS 8.2.8), after an absolute lifetime, on logout, or when an
administrator disables the account or resets its MFA. The browser holds a random token; the
store keeps only its SHA-256, so a copy of the store cannot be replayed as a cookie.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_IDLE = timedelta(minutes=15)


class SessionStage(StrEnum):
    MFA = "mfa"  # password accepted, TOTP code still owed
    ACTIVE = "active"


class AuthMethod(StrEnum):
    PASSWORD = "password"  # noqa: S105 - a method name, not a secret
    OIDC = "oidc"


def token_key(token: str) -> str:
    """The stored key of a session token: SHA-256, base64url (never the token itself)."""
    digest = hashlib.sha256(token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Session:
    key: str
    user_id: str
    stage: SessionStage
    method: AuthMethod
    created_at: datetime
    last_seen_at: datetime
    csrf_token: str
    # When a TOTP code (or the provider's second factor) was last verified in this session:
    # actions that reach into the CDE's neighbourhood ask again after a while (step-up).
    mfa_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Idle timeout (<= 15 minutes), absolute lifetime, and the time allowed for the code."""

    idle: timedelta = MAX_IDLE
    absolute: timedelta = timedelta(hours=12)
    mfa_window: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if not timedelta(seconds=1) <= self.idle <= MAX_IDLE:
            raise ValueError("the idle timeout must be at most 15 minutes (PCI DSS 8.2.8)")
        if self.absolute < self.idle:
            raise ValueError("the absolute session lifetime must exceed the idle timeout")

    def expiry_reason(self, session: Session, now: datetime) -> str | None:
        """Why the session is over at `now`, or None while it is valid."""
        if session.stage is SessionStage.MFA and now - session.created_at > self.mfa_window:
            return "mfa_timeout"
        if now - session.last_seen_at > self.idle:
            return "idle_timeout"
        if now - session.created_at > self.absolute:
            return "absolute_timeout"
        return None

    def stepped_up(self, session: Session, now: datetime, window: timedelta) -> bool:
        """True when the second factor was verified within `window` before `now`."""
        return session.mfa_at is not None and now - session.mfa_at <= window
