"""noncde.dashboard (non-CDE): the dashboard's error family; pure.

Messages are safe to show to the person at the screen: they never hold a password, a TOTP
code, a session token or a submitted value (PCI DSS 3.3.1, 8.3.2).
"""

from __future__ import annotations

from datetime import datetime


class DashboardError(Exception):
    """Base of every dashboard error; `message` is what the page shows."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DashboardError):
    """A form value is missing or malformed (the field is named, never the value)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DashboardError):
    status = 404


class Conflict(DashboardError):
    """The object changed (or is in another state) since the page was shown."""

    status = 409


class AuthenticationFailed(DashboardError):
    """Login refused. One message for every cause, so a caller learns nothing about which
    of username, password or code was wrong (the reason goes to the audit log only)."""

    status = 401
    SHOWN = "Invalid username, password or code."

    def __init__(self, reason: str) -> None:
        super().__init__(self.SHOWN)
        self.reason = reason


class AccountLocked(AuthenticationFailed):
    """Too many failed attempts (PCI DSS 8.3.4): refused until `until` or an admin unlock."""

    status = 423

    def __init__(self, until: datetime) -> None:
        super().__init__("locked")
        self.until = until
        self.message = (
            "Too many failed attempts: this account is locked. Try again later or ask an "
            "administrator to unlock it."
        )


class PermissionDenied(DashboardError):
    """The signed-in role may not see this page or do this action (PCI DSS 7.2.1)."""

    status = 403


class WeakPassword(InvalidInput):
    """The password breaks the policy (PCI DSS 8.3.6); `problems` lists each rule broken."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("The password does not meet the policy: " + "; ".join(problems) + ".")
        self.problems = problems


class CsrfRejected(DashboardError):
    """A form post without the session's anti-forgery token, or from another site."""

    status = 403


class Unavailable(DashboardError):
    """A dependency (API, read model, audit log) could not be reached; nothing was changed."""

    status = 503
