"""noncde.dashboard (non-CDE): values, entities and errors of the staff dashboard; pure, no I/O."""

from noncde.dashboard.domain.access import (
    ROLE_PERMISSIONS,
    Permission,
    Role,
    allowed,
    permissions_of,
)
from noncde.dashboard.domain.accounts import (
    LockoutPolicy,
    LoginGuard,
    PasswordPolicy,
    StaffUser,
    UserStatus,
    check_role,
    check_username,
)
from noncde.dashboard.domain.errors import (
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    CsrfRejected,
    DashboardError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
    WeakPassword,
)
from noncde.dashboard.domain.refunds import RefundRequest, RefundRequestStatus, SelfApproval
from noncde.dashboard.domain.sessions import (
    AuthMethod,
    Session,
    SessionPolicy,
    SessionStage,
    token_key,
)

__all__ = [
    "ROLE_PERMISSIONS",
    "AccountLocked",
    "AuthMethod",
    "AuthenticationFailed",
    "Conflict",
    "CsrfRejected",
    "DashboardError",
    "InvalidInput",
    "LockoutPolicy",
    "LoginGuard",
    "NotFound",
    "PasswordPolicy",
    "Permission",
    "PermissionDenied",
    "RefundRequest",
    "RefundRequestStatus",
    "Role",
    "SelfApproval",
    "Session",
    "SessionPolicy",
    "SessionStage",
    "StaffUser",
    "Unavailable",
    "UserStatus",
    "WeakPassword",
    "allowed",
    "check_role",
    "check_username",
    "permissions_of",
    "token_key",
]
