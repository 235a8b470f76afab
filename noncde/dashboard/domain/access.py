"""noncde.dashboard (non-CDE): roles, permissions and the least-privilege matrix; pure.

Deny by default (PCI DSS 7.2.1, 7.2.2, 7.3.3): a role holds exactly the permissions listed in
`ROLE_PERMISSIONS`; every page and every action of the dashboard names one permission, and a
route without one does not start (tests/unit/dashboard/test_access.py checks the registry).
Each account has exactly one role, so a person's rights are read in one place.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a staff member does: support, finance, auditor or admin."""

    SUPPORT = "support"
    FINANCE = "finance"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(StrEnum):
    """One page or action. Reads and writes are separate permissions."""

    PAYMENTS_VIEW = "payments.view"
    REFUNDS_VIEW = "refunds.view"
    REFUNDS_REQUEST = "refunds.request"
    REFUNDS_APPROVE = "refunds.approve"
    MERCHANTS_VIEW = "merchants.view"
    MERCHANTS_MANAGE = "merchants.manage"
    FINANCE_VIEW = "finance.view"
    FINANCE_RESOLVE = "finance.resolve"
    OPERATIONS_VIEW = "operations.view"
    OPERATIONS_REPLAY = "operations.replay"
    AUDIT_VIEW = "audit.view"
    AUDIT_EXPORT = "audit.export"
    STAFF_VIEW = "staff.view"
    STAFF_MANAGE = "staff.manage"
    # Every signed-in account: the home page and its own password.
    ACCOUNT_SELF = "account.self"


_P = Permission

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # Support finds a payment, sees what happened, and may ask for a refund (never run one).
    Role.SUPPORT: frozenset(
        {_P.PAYMENTS_VIEW, _P.REFUNDS_VIEW, _P.REFUNDS_REQUEST, _P.ACCOUNT_SELF}
    ),
    # Finance reads the money side, approves (or rejects) refunds others asked for, and
    # records how each reconciliation mismatch was resolved.
    Role.FINANCE: frozenset(
        {
            _P.PAYMENTS_VIEW,
            _P.REFUNDS_VIEW,
            _P.REFUNDS_APPROVE,
            _P.FINANCE_VIEW,
            _P.FINANCE_RESOLVE,
            _P.ACCOUNT_SELF,
        }
    ),
    # Auditors read the audit logs, export evidence and review who has access (7.2.4); they
    # change nothing.
    Role.AUDITOR: frozenset({_P.AUDIT_VIEW, _P.AUDIT_EXPORT, _P.STAFF_VIEW, _P.ACCOUNT_SELF}),
    # Administrators run merchants, capabilities, staff accounts and operations; they see no
    # payments, no money and no audit log (separation of duties).
    Role.ADMIN: frozenset(
        {
            _P.MERCHANTS_VIEW,
            _P.MERCHANTS_MANAGE,
            _P.OPERATIONS_VIEW,
            _P.OPERATIONS_REPLAY,
            _P.STAFF_VIEW,
            _P.STAFF_MANAGE,
            _P.ACCOUNT_SELF,
        }
    ),
}


def permissions_of(role: Role | str) -> frozenset[Permission]:
    """The permissions of `role`; an unknown role has none (deny by default)."""
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()


def allowed(role: Role | str, permission: Permission) -> bool:
    """True only when `role` is a known role that holds `permission`."""
    return permission in permissions_of(role)
