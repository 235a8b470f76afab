"""noncde.dashboard (non-CDE): staff accounts, the password policy, the lockout rule and TOTP
replay protection; pure.

- Every account has a unique name (PCI DSS 8.2.1) and exactly one role.
- Passwords: at least 12 characters with letters and digits, not the user name, not one of the
  last four (8.3.6, 8.3.7); stored only as argon2id hashes (8.3.2, by the adapter).
- Lockout: after at most 10 failed attempts the account is refused for at least 30 minutes,
  or until an administrator unlocks it (8.3.4).
- TOTP is required for every account (8.4.2); a code's time step is accepted once only, so a
  code seen by someone else cannot be replayed (8.5.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from fincore.cards import contains_card_number
from noncde.dashboard.domain.access import Role
from noncde.dashboard.domain.errors import InvalidInput, WeakPassword

USERNAME = re.compile(r"^[a-z][a-z0-9._@-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
PASSWORD_HISTORY = 4
MAX_LOCKOUT_THRESHOLD = 10
MIN_LOCKOUT = timedelta(minutes=30)


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def check_username(value: str) -> str:
    """A normalized (lowercase) user name, or `InvalidInput`."""
    name = value.strip().lower()
    if not USERNAME.match(name) or contains_card_number(name):
        raise InvalidInput(
            "A user name is 2-64 characters: lowercase letters, digits, '.', '_', '-', '@', "
            "starting with a letter.",
            field="username",
        )
    return name


def check_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(
            "The role must be one of: " + ", ".join(r.value for r in Role) + ".", field="role"
        ) from None


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """PCI DSS 8.3.6: length and character classes; 8.3.7: not a recent password."""

    min_length: int = MIN_PASSWORD_LENGTH

    def __post_init__(self) -> None:
        if self.min_length < MIN_PASSWORD_LENGTH:
            raise ValueError(f"passwords must be at least {MIN_PASSWORD_LENGTH} characters")

    def problems(self, password: str, username: str) -> list[str]:
        """Every rule the password breaks (empty when it is acceptable)."""
        found: list[str] = []
        if len(password) < self.min_length:
            found.append(f"at least {self.min_length} characters")
        if len(password) > MAX_PASSWORD_LENGTH:
            found.append(f"at most {MAX_PASSWORD_LENGTH} characters")
        if not re.search(r"[A-Za-z]", password):
            found.append("at least one letter")
        if not re.search(r"[0-9]", password):
            found.append("at least one digit")
        if username and username.lower() in password.lower():
            found.append("must not contain the user name")
        if contains_card_number(password):
            found.append("must not contain a card-like number")
        return found

    def check(self, password: str, username: str) -> None:
        found = self.problems(password, username)
        if found:
            raise WeakPassword(found)


@dataclass(frozen=True, slots=True)
class StaffUser:
    """A staff account. `password_hash` and `totp_sealed` are opaque stored forms (argon2id
    hash, sealed TOTP seed), never the secrets themselves."""

    id: str
    username: str
    role: Role
    status: UserStatus
    created_at: datetime
    password_hash: str | None = None
    totp_sealed: str | None = None
    totp_last_step: int = 0
    must_change_password: bool = True
    password_changed_at: datetime | None = None
    mfa_enrolled_at: datetime | None = None
    last_login_at: datetime | None = None
    password_history: tuple[str, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return self.status is UserStatus.ACTIVE

    @property
    def mfa_enrolled(self) -> bool:
        return self.totp_sealed is not None

    def with_password(self, password_hash: str, now: datetime, *, must_change: bool) -> StaffUser:
        """The account with a new password hash; the old one joins the history."""
        history = self.password_history
        if self.password_hash is not None:
            history = (self.password_hash, *history)[:PASSWORD_HISTORY]
        return replace(
            self,
            password_hash=password_hash,
            password_changed_at=now,
            must_change_password=must_change,
            password_history=history,
        )

    def summary(self) -> dict[str, object]:
        """What the staff pages and the access review show (no hash, no seed)."""
        return {
            "id": self.id,
            "username": self.username,
            "role": str(self.role),
            "status": str(self.status),
            "created_at": self.created_at,
            "mfa_enrolled": self.mfa_enrolled,
            "must_change_password": self.must_change_password,
            "last_login_at": self.last_login_at,
        }


def merged_user(stored: StaffUser, new: StaffUser) -> StaffUser:
    """`new`, except that the last used TOTP step never moves back while the seed is the
    same (a save from a copy read before a login must not re-open a used code)."""
    if new.totp_sealed == stored.totp_sealed and stored.totp_last_step > new.totp_last_step:
        return replace(new, totp_last_step=stored.totp_last_step)
    return new


# ---------------------------------------------------------------- lockout


@dataclass(frozen=True, slots=True)
class LoginGuard:
    """Failed attempts for one user name (known or not, so a lock says nothing about whether
    the name exists)."""

    key: str
    failures: int = 0
    locked_until: datetime | None = None
    last_failure_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """PCI DSS 8.3.4: lock after `threshold` (<= 10) failures for `duration` (>= 30 min)."""

    threshold: int = MAX_LOCKOUT_THRESHOLD
    duration: timedelta = MIN_LOCKOUT

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= MAX_LOCKOUT_THRESHOLD:
            raise ValueError(f"the lockout threshold must be 1-{MAX_LOCKOUT_THRESHOLD} attempts")
        if self.duration < MIN_LOCKOUT:
            raise ValueError("a lockout must last at least 30 minutes")

    def locked(self, guard: LoginGuard | None, now: datetime) -> bool:
        return guard is not None and guard.locked_until is not None and now < guard.locked_until

    def after_failure(self, guard: LoginGuard | None, key: str, now: datetime) -> LoginGuard:
        """The guard after one more failure; it locks on reaching the threshold. A lock that
        has run out starts the count again."""
        if guard is None or (guard.locked_until is not None and now >= guard.locked_until):
            guard = LoginGuard(key)
        failures = guard.failures + 1
        locked_until = guard.locked_until
        if failures >= self.threshold and locked_until is None:
            locked_until = now + self.duration
        return LoginGuard(key, failures, locked_until, now)


# ---------------------------------------------------------------- TOTP

TOTP_PERIOD_S = 30
TOTP_DIGITS = 6
# One step either side absorbs clock drift between the phone and the server (RFC 6238 5.2).
TOTP_DRIFT_STEPS = 1
_CODE = re.compile(r"^[0-9]{6}$")


def normalize_code(value: str) -> str | None:
    """A 6-digit code with spaces removed, or None when it cannot be one."""
    code = value.replace(" ", "").strip()
    return code if _CODE.match(code) else None


def candidate_steps(now: datetime) -> list[int]:
    """The time steps a code typed at `now` may belong to, newest first."""
    current = int(now.timestamp()) // TOTP_PERIOD_S
    return [current + offset for offset in range(TOTP_DRIFT_STEPS, -TOTP_DRIFT_STEPS - 1, -1)]


def fresh_step(matched: int | None, last_used: int) -> bool:
    """A matching step is accepted only if it is newer than the last one used (no replay)."""
    return matched is not None and matched > last_used
