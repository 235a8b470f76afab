"""noncde.dashboard (non-CDE): signing staff in and out.

Two factors for every account (PCI DSS 8.4.2): a password (argon2id, 8.3.2) or the OIDC
provider, then a TOTP code whose time step is used once (8.5.1: no replay). Both factors
must succeed before any page opens, and failures of either count toward the lockout (8.3.4:
at most 10 attempts, at least 30 minutes). Sessions end after 15 idle minutes (8.2.8). Every
login, failure, lockout, timeout and logout is audited (10.2.1.2, 10.2.1.4); if the audit log
cannot record it, nobody is let in (fail closed).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import NoReturn

from audit.domain import EventType, Outcome
from fincore.ids import random_token
from noncde.dashboard.domain import (
    AccountLocked,
    AuthenticationFailed,
    AuthMethod,
    LockoutPolicy,
    PasswordPolicy,
    PermissionDenied,
    Session,
    SessionPolicy,
    SessionStage,
    StaffUser,
    token_key,
)
from noncde.dashboard.domain.accounts import candidate_steps, fresh_step, normalize_code
from noncde.dashboard.domain.errors import WeakPassword
from noncde.dashboard.ports import (
    AuditTrail,
    Clock,
    OidcProvider,
    PasswordHasher,
    SecretBox,
    StaffStore,
    TotpFactor,
)
from noncde.dashboard.service.context import (
    Origin,
    anonymous_actor,
    shown_name,
    staff_actor,
    utc_now,
)

RESOURCE = "dashboard.login"
OIDC_STATE_TTL = timedelta(minutes=10)
# Touch a session at most this often: the idle clock is exact to within this much.
_TOUCH_EVERY = timedelta(seconds=5)
# Abandoned sessions (never logged out) are deleted this often, at a login.
_PURGE_EVERY = timedelta(minutes=5)


def totp_context(user_id: str) -> str:
    """What a sealed TOTP seed is bound to: one account (a seed moved to another row fails)."""
    return f"fincore.dashboard.totp:{user_id}"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A signed-in request: its session and account."""

    session: Session
    user: StaffUser


class SessionEnded(Exception):
    """The session cookie names a session that is over (`reason`: idle_timeout, …)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthService:
    """Login (password or OIDC, then TOTP), session checks, step-up, logout, own password."""

    def __init__(
        self,
        store: StaffStore,
        hasher: PasswordHasher,
        totp: TotpFactor,
        box: SecretBox,
        audit: AuditTrail,
        *,
        sessions: SessionPolicy,
        lockout: LockoutPolicy,
        passwords: PasswordPolicy,
        step_up_window: timedelta = timedelta(minutes=10),
        oidc: OidcProvider | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.totp = totp
        self.box = box
        self.audit = audit
        self.sessions = sessions
        self.lockout = lockout
        self.passwords = passwords
        self.step_up_window = step_up_window
        self.oidc = oidc
        self.clock = clock
        # Verified against when the user name is unknown, so both cases take the same time.
        self._decoy = hasher.hash(random_token(24))
        self._purged_at = clock() - _PURGE_EVERY

    # ------------------------------------------------------------ audit helpers

    def _fail(
        self,
        reason: str,
        origin: Origin,
        *,
        username: str | None,
        details: dict[str, object] | None = None,
    ) -> None:
        """Record a failed attempt (PCI DSS 10.2.1.4)."""
        self.audit.record(
            EventType.AUTHENTICATION_FAILURE,
            actor=staff_actor(username) if username else anonymous_actor(),
            outcome=Outcome.FAILURE,
            target=username,
            resource=RESOURCE,
            reason=reason,
            details=details or {},
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )

    def _count_failure(self, key: str | None, reason: str, origin: Origin) -> NoReturn:
        """Count the failure toward the lockout, audit it, and raise the right error."""
        now = self.clock()
        if key is None:
            self._fail(reason, origin, username=None)
            raise AuthenticationFailed(reason)
        guard = self.store.record_failure(key, now, self.lockout)
        locked = self.lockout.locked(guard, now)
        self._fail(
            reason,
            origin,
            username=key,
            details={
                "failures": guard.failures,
                "threshold": self.lockout.threshold,
                "locked_until": (
                    guard.locked_until.isoformat() if locked and guard.locked_until else None
                ),
            },
        )
        if locked and guard.locked_until is not None:
            raise AccountLocked(guard.locked_until)
        raise AuthenticationFailed(reason)

    def _refuse_if_locked(self, key: str, origin: Origin) -> None:
        guard = self.store.guard(key)
        now = self.clock()
        if self.lockout.locked(guard, now):
            assert guard is not None and guard.locked_until is not None
            self._fail(
                "account_locked",
                origin,
                username=key,
                details={"locked_until": guard.locked_until.isoformat()},
            )
            raise AccountLocked(guard.locked_until)

    def _new_session(
        self, user: StaffUser, stage: SessionStage, method: AuthMethod, *, mfa: bool
    ) -> tuple[str, Session]:
        token = random_token(32)
        now = self.clock()
        session = Session(
            key=token_key(token),
            user_id=user.id,
            stage=stage,
            method=method,
            created_at=now,
            last_seen_at=now,
            csrf_token=random_token(24),
            mfa_at=now if mfa else None,
        )
        return token, session

    def _signed_in(self, user: StaffUser, method: AuthMethod, origin: Origin, mfa: str) -> None:
        self.store.clear_guard(user.username)
        self.store.save_user(replace(user, last_login_at=self.clock()))
        self.audit.record(
            EventType.ADMIN_LOGIN,
            actor=staff_actor(user.username),
            outcome=Outcome.SUCCESS,
            target=user.id,
            resource=RESOURCE,
            details={"method": str(method), "role": str(user.role), "second_factor": mfa},
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )

    def _audited_or_undone(self, session: Session, record: Callable[[], None]) -> None:
        """Fail closed: a login the audit log cannot record does not happen (10.7.2)."""
        try:
            record()
        except BaseException:
            self.store.delete_session(session.key)
            raise

    # ------------------------------------------------------------ password, then code

    def login(self, username: str, password: str, origin: Origin) -> str:
        """Check the password; returns the token of a session that still owes the TOTP code.

        Raises `AccountLocked` or `AuthenticationFailed` (one message for every cause).
        """
        self._housekeeping()
        key = shown_name(username)
        if key is None:
            self._fail("invalid_user_name", origin, username=None)
            raise AuthenticationFailed("invalid_user_name")
        self._refuse_if_locked(key, origin)
        user = self.store.find_user(key)
        if user is None or user.password_hash is None:
            self.hasher.verify(self._decoy, password)
            self._count_failure(key, "unknown_user" if user is None else "no_password", origin)
        assert user is not None and user.password_hash is not None
        if not self.hasher.verify(user.password_hash, password):
            self._count_failure(key, "bad_password", origin)
        if not user.active:
            self._count_failure(key, "account_disabled", origin)
        if not user.mfa_enrolled:
            # No second factor, no entry (8.4.2): an administrator must enrol TOTP first.
            self._count_failure(key, "mfa_not_enrolled", origin)
        if self.hasher.needs_rehash(user.password_hash):
            self.store.save_user(replace(user, password_hash=self.hasher.hash(password)))
        token, session = self._new_session(user, SessionStage.MFA, AuthMethod.PASSWORD, mfa=False)
        self.store.add_session(session)
        return token

    def _housekeeping(self) -> None:
        """Delete sessions of browsers that never came back (an hour past the idle timeout:
        a person who returns sooner still sees, and the log records, why the session ended)."""
        now = self.clock()
        if now - self._purged_at >= _PURGE_EVERY:
            self._purged_at = now
            self.store.purge_sessions(now - self.sessions.idle - timedelta(hours=1))

    def pending_user(self, token: str) -> StaffUser | None:
        """The account of a session that still owes its code (for the code page)."""
        session = self.store.get_session(token_key(token))
        if session is None or session.stage is not SessionStage.MFA:
            return None
        if self.sessions.expiry_reason(session, self.clock()) is not None:
            return None
        return self.store.get_user(session.user_id)

    def _check_code(self, user: StaffUser, code: str) -> str | None:
        """None when `code` is a fresh, valid code of `user` (and marks its step used);
        otherwise the failure reason."""
        if user.totp_sealed is None:
            return "mfa_not_enrolled"
        normalized = normalize_code(code)
        if normalized is None:
            return "totp_malformed"
        secret = self.box.open(user.totp_sealed, totp_context(user.id))
        step = self.totp.matching_step(secret, normalized, candidate_steps(self.clock()))
        if step is None:
            return "totp_invalid"
        if not fresh_step(step, user.totp_last_step) or not self.store.use_totp_step(user.id, step):
            return "totp_replayed"
        return None

    def verify_code(self, token: str, code: str, origin: Origin) -> str:
        """The second factor: returns the token of the now active session (a new id).

        Raises `AuthenticationFailed` (wrong or replayed code: the code page may be tried
        again until the lockout) or `AccountLocked`; `SessionEnded` when the password step
        must be done again.
        """
        old_key = token_key(token)
        session = self.store.get_session(old_key)
        now = self.clock()
        if session is None or session.stage is not SessionStage.MFA:
            raise SessionEnded("no_pending_login")
        if self.sessions.expiry_reason(session, now) is not None:
            self.store.delete_session(old_key)
            raise SessionEnded("mfa_timeout")
        user = self.store.get_user(session.user_id)
        if user is None or not user.active:
            self.store.delete_session(old_key)
            raise SessionEnded("account_unavailable")
        try:
            self._refuse_if_locked(user.username, origin)
        except AccountLocked:
            self.store.delete_session(old_key)
            raise
        problem = self._check_code(user, code)
        if problem is not None:
            try:
                self._count_failure(user.username, problem, origin)
            except AccountLocked:
                self.store.delete_session(old_key)
                raise
        new_token, active = self._new_session(user, SessionStage.ACTIVE, session.method, mfa=True)
        if not self.store.replace_session(old_key, active):
            raise SessionEnded("no_pending_login")
        self._audited_or_undone(
            active, lambda: self._signed_in(user, session.method, origin, "totp")
        )
        return new_token

    # ------------------------------------------------------------ OIDC

    def oidc_begin(self, redirect_uri: str) -> str:
        """The provider's authorization URL; the state, nonce and PKCE verifier stay here."""
        if self.oidc is None:
            raise PermissionDenied("Single sign-on is not configured.")
        start = self.oidc.begin(redirect_uri)
        self.store.put_login_state(
            token_key(start.state),
            {"nonce": start.nonce, "code_verifier": start.code_verifier},
            self.clock(),
        )
        return start.url

    def oidc_finish(
        self, code: str, state: str, redirect_uri: str, origin: Origin
    ) -> tuple[str, SessionStage]:
        """Complete an OIDC login: the new session's token and stage, `active` when the
        provider reports a second factor (`amr`), else `mfa` (the TOTP code is still owed)."""
        if self.oidc is None:
            raise PermissionDenied("Single sign-on is not configured.")
        stored = self.store.take_login_state(token_key(state), self.clock() - OIDC_STATE_TTL)
        if stored is None:
            self._fail("oidc_state_invalid", origin, username=None)
            raise AuthenticationFailed("oidc_state_invalid")
        try:
            identity = self.oidc.finish(
                code,
                redirect_uri=redirect_uri,
                code_verifier=stored["code_verifier"],
                nonce=stored["nonce"],
            )
        except AuthenticationFailed as exc:
            self._fail(exc.reason, origin, username=None)
            raise
        key = shown_name(identity.username)
        if key is None:
            self._fail("oidc_username_invalid", origin, username=None)
            raise AuthenticationFailed("oidc_username_invalid")
        self._refuse_if_locked(key, origin)
        user = self.store.find_user(key)
        if user is None or not user.active:
            reason = "oidc_unknown_user" if user is None else "account_disabled"
            self._count_failure(key, reason, origin)
        assert user is not None
        if not identity.mfa and not user.mfa_enrolled:
            self._count_failure(key, "mfa_not_enrolled", origin)
        stage = SessionStage.ACTIVE if identity.mfa else SessionStage.MFA
        token, session = self._new_session(user, stage, AuthMethod.OIDC, mfa=identity.mfa)
        self.store.add_session(session)
        if identity.mfa:
            self._audited_or_undone(
                session, lambda: self._signed_in(user, AuthMethod.OIDC, origin, "idp")
            )
        return token, stage

    # ------------------------------------------------------------ every request

    def resolve(self, token: str | None, origin: Origin) -> SignedIn | None:
        """The signed-in account behind a session cookie, or None (no cookie, unknown or
        half-finished session). Raises `SessionEnded` when the session just timed out (the
        end is audited and the session deleted)."""
        if not token:
            return None
        key = token_key(token)
        session = self.store.get_session(key)
        if session is None or session.stage is not SessionStage.ACTIVE:
            return None
        now = self.clock()
        reason = self.sessions.expiry_reason(session, now)
        user = self.store.get_user(session.user_id)
        if reason is None and (user is None or not user.active):
            reason = "account_unavailable"
        if reason is not None:
            self.store.delete_session(key)
            self.audit.record(
                EventType.ADMIN_ACTION,
                actor=staff_actor(user.username) if user else anonymous_actor(),
                outcome=Outcome.SUCCESS,
                target=session.user_id,
                resource=RESOURCE,
                details={"action": "session_end", "cause": reason},
                request_id=origin.request_id,
                origin_ip=origin.ip,
            )
            raise SessionEnded(reason)
        assert user is not None
        if now - session.last_seen_at >= _TOUCH_EVERY:
            self.store.touch_session(key, now)
            session = replace(session, last_seen_at=now)
        return SignedIn(session, user)

    def stepped_up(self, signed: SignedIn) -> bool:
        return self.sessions.stepped_up(signed.session, self.clock(), self.step_up_window)

    def step_up(self, signed: SignedIn, code: str, origin: Origin) -> None:
        """Verify a fresh TOTP code inside a session (MFA step-up, PCI DSS 8.4 / E8)."""
        user = self.store.get_user(signed.user.id)
        if user is None:
            raise SessionEnded("account_unavailable")
        self._refuse_if_locked(user.username, origin)
        problem = self._check_code(user, code)
        if problem is not None:
            self._count_failure(user.username, problem, origin)
        self.store.mark_mfa(signed.session.key, self.clock())
        self.audit.record(
            EventType.ADMIN_ACTION,
            actor=staff_actor(user.username),
            outcome=Outcome.SUCCESS,
            target=user.id,
            resource=RESOURCE,
            details={"action": "mfa_step_up"},
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )

    def check_csrf(
        self, signed: SignedIn | None, pending_token: str | None, submitted: str
    ) -> bool:
        """The form's anti-forgery token equals the session's (constant-time compare)."""
        session = signed.session if signed else None
        if session is None and pending_token:
            session = self.store.get_session(token_key(pending_token))
        if session is None or not submitted:
            return False
        return hmac.compare_digest(session.csrf_token.encode(), submitted.encode())

    def logout(self, signed: SignedIn, origin: Origin) -> None:
        self.store.delete_session(signed.session.key)
        self.audit.record(
            EventType.ADMIN_ACTION,
            actor=staff_actor(signed.user.username),
            outcome=Outcome.SUCCESS,
            target=signed.user.id,
            resource=RESOURCE,
            details={"action": "logout"},
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )

    def change_password(self, signed: SignedIn, current: str, new: str, origin: Origin) -> None:
        """Replace the own password (PCI DSS 8.3.6 policy, 8.3.7 not one of the last four).
        Other sessions of the account end."""
        user = self.store.get_user(signed.user.id)
        if user is None or user.password_hash is None:
            raise PermissionDenied("This account signs in through single sign-on.")
        if not self.hasher.verify(user.password_hash, current):
            self._count_failure(user.username, "bad_password_on_change", origin)
        self.passwords.check(new, user.username)
        for old in (user.password_hash, *user.password_history):
            if self.hasher.verify(old, new):
                raise WeakPassword(["must differ from your last four passwords"])
        changed = user.with_password(self.hasher.hash(new), self.clock(), must_change=False)
        self.store.save_user(changed)
        ended = self.store.delete_user_sessions(user.id, keep=signed.session.key)
        self.audit.record(
            EventType.PASSWORD_RESET,
            actor=staff_actor(user.username),
            outcome=Outcome.SUCCESS,
            target=user.id,
            resource="dashboard.account",
            details={"action": "own_password_change", "other_sessions_ended": ended},
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )
