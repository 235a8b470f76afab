"""noncde.dashboard (non-CDE): administering staff accounts (the admin CLI and the staff pages).

Creating an account, granting or changing its role, enrolling or resetting its TOTP factor,
resetting its password, unlocking, disabling and enabling are each audited with the
administrator's name and the before/after role where it changes (PCI DSS 10.2.1.5). Secrets
(an initial password, a TOTP provisioning URI) are returned once, by the call that makes them,
and never stored or logged in the clear. Sessions of an account end whenever its access
changes (8.2.5, 8.2.6).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from audit.domain import EventType, Outcome
from fincore.ids import random_id, random_token
from noncde.dashboard.domain import (
    Conflict,
    InvalidInput,
    NotFound,
    PasswordPolicy,
    PermissionDenied,
    Role,
    StaffUser,
    UserStatus,
    check_role,
    check_username,
)
from noncde.dashboard.ports import (
    AuditTrail,
    Clock,
    PasswordHasher,
    SecretBox,
    StaffStore,
    TotpFactor,
)
from noncde.dashboard.service.auth import totp_context
from noncde.dashboard.service.context import CLI, Origin, staff_actor, utc_now

RESOURCE = "dashboard.staff"
ISSUER = "FinCore dashboard"


@dataclass(frozen=True, slots=True)
class NewAccount:
    """A created account, with what must be handed to its owner once."""

    user: StaffUser
    provisioning_uri: str
    initial_password: str | None  # only when generated here


def generated_password() -> str:
    """A random initial password that meets the policy (letters and digits, 24 characters)."""
    while True:
        candidate = random_token(18)
        if any(c.isdigit() for c in candidate) and any(c.isalpha() for c in candidate):
            return candidate


class StaffAdmin:
    """Staff account administration; `actor` is the administrator's own name."""

    def __init__(
        self,
        store: StaffStore,
        hasher: PasswordHasher,
        totp: TotpFactor,
        box: SecretBox,
        audit: AuditTrail,
        *,
        passwords: PasswordPolicy,
        issuer: str = ISSUER,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.totp = totp
        self.box = box
        self.audit = audit
        self.passwords = passwords
        self.issuer = issuer
        self.clock = clock

    def _audit(
        self,
        event: EventType,
        actor: str,
        user: StaffUser,
        origin: Origin,
        details: dict[str, Any],
    ) -> None:
        self.audit.record(
            event,
            actor=staff_actor(actor),
            outcome=Outcome.SUCCESS,
            target=user.id,
            resource=RESOURCE,
            details={"username": user.username, **details},
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )

    def user(self, username: str) -> StaffUser:
        found = self.store.find_user(check_username(username))
        if found is None:
            raise NotFound(f"No staff account named {username.strip().lower()[:64]!r}.")
        return found

    def users(self) -> list[StaffUser]:
        return sorted(self.store.list_users(), key=lambda u: u.username)

    def locked_names(self) -> set[str]:
        now = self.clock()
        found = set()
        for user in self.store.list_users():
            guard = self.store.guard(user.username)
            if guard is not None and guard.locked_until is not None and now < guard.locked_until:
                found.add(user.username)
        return found

    def _enrol(self, user: StaffUser) -> tuple[StaffUser, str]:
        secret = self.totp.new_secret()
        uri = self.totp.provisioning_uri(secret, user.username, self.issuer)
        sealed = self.box.seal(secret, totp_context(user.id))
        return replace(
            user, totp_sealed=sealed, totp_last_step=0, mfa_enrolled_at=self.clock()
        ), uri

    def create_user(
        self,
        username: str,
        role: str,
        *,
        actor: str,
        password: str | None = None,
        origin: Origin = CLI,
    ) -> NewAccount:
        """A new account with its role and TOTP factor; the password must be changed at the
        first login (PCI DSS 8.3.5). Raises `Conflict` when the name is taken."""
        name = check_username(username)
        chosen = check_role(role)
        initial = password if password is not None else generated_password()
        self.passwords.check(initial, name)
        now = self.clock()
        user = StaffUser(
            id=random_id("stf"),
            username=name,
            role=chosen,
            status=UserStatus.ACTIVE,
            created_at=now,
            password_hash=self.hasher.hash(initial),
            must_change_password=True,
            password_changed_at=now,
        )
        user, uri = self._enrol(user)
        self.store.add_user(user)
        self._audit(EventType.ACCOUNT_CREATE, actor, user, origin, {"role": str(chosen)})
        self._audit(
            EventType.ROLE_GRANT, actor, user, origin, {"before": None, "after": str(chosen)}
        )
        self._audit(EventType.MFA_ENROL, actor, user, origin, {"factor": "totp"})
        return NewAccount(user, uri, None if password is not None else initial)

    def reset_mfa(self, username: str, *, actor: str, origin: Origin = CLI) -> str:
        """A new TOTP seed (the old one stops working); returns the provisioning URI once.
        The account's sessions end."""
        user, uri = self._enrol(self.user(username))
        self.store.save_user(user)
        ended = self.store.delete_user_sessions(user.id)
        self._audit(EventType.MFA_RESET, actor, user, origin, {"sessions_ended": ended})
        return uri

    def reset_password(self, username: str, *, actor: str, origin: Origin = CLI) -> str:
        """A new random password that must be changed at the next login (returned once)."""
        user = self.user(username)
        password = generated_password()
        changed = user.with_password(self.hasher.hash(password), self.clock(), must_change=True)
        self.store.save_user(changed)
        ended = self.store.delete_user_sessions(user.id)
        self._audit(
            EventType.PASSWORD_RESET,
            actor,
            user,
            origin,
            {"by": "administrator", "sessions_ended": ended},
        )
        return password

    def unlock(self, username: str, *, actor: str, origin: Origin = CLI) -> None:
        """Clear the failed-attempt count and any lock (PCI DSS 8.3.4: or an admin unlocks)."""
        user = self.user(username)
        guard = self.store.guard(user.username)
        self.store.clear_guard(user.username)
        self._audit(
            EventType.ACCOUNT_CHANGE,
            actor,
            user,
            origin,
            {"action": "unlock", "failures_cleared": guard.failures if guard else 0},
        )

    def _not_self(self, user: StaffUser, actor: str) -> None:
        if user.username == actor:
            raise PermissionDenied("Administrators cannot change their own role or status.")

    def set_role(self, username: str, role: str, *, actor: str, origin: Origin = CLI) -> StaffUser:
        user = self.user(username)
        chosen = check_role(role)
        self._not_self(user, actor)
        if chosen is user.role:
            raise Conflict(f"{user.username} already has the role {chosen.value}.")
        changed = replace(user, role=chosen)
        self.store.save_user(changed)
        ended = self.store.delete_user_sessions(user.id)
        details = {"before": str(user.role), "after": str(chosen), "sessions_ended": ended}
        self._audit(EventType.ROLE_REVOKE, actor, user, origin, details)
        self._audit(EventType.ROLE_GRANT, actor, changed, origin, details)
        return changed

    def set_status(
        self, username: str, status: str, *, actor: str, origin: Origin = CLI
    ) -> StaffUser:
        user = self.user(username)
        try:
            chosen = UserStatus(status)
        except ValueError:
            raise InvalidInput("The status must be active or disabled.", field="status") from None
        self._not_self(user, actor)
        changed = replace(user, status=chosen)
        self.store.save_user(changed)
        ended = self.store.delete_user_sessions(user.id) if chosen is UserStatus.DISABLED else 0
        self._audit(
            EventType.ACCOUNT_CHANGE,
            actor,
            changed,
            origin,
            {
                "action": "status",
                "before": str(user.status),
                "after": str(chosen),
                "sessions_ended": ended,
            },
        )
        return changed

    def roles(self) -> list[str]:
        return [role.value for role in Role]
