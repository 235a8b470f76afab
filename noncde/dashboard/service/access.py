"""noncde.dashboard (non-CDE): the permission check every page and action goes through.

Deny by default (PCI DSS 7.2.1-7.2.2): the role must hold the page's permission; otherwise the
request gets 403 and the attempt is written to the audit log as `access.denied` (10.2.1.4).
"""

from __future__ import annotations

from audit.domain import EventType, Outcome
from noncde.dashboard.domain import Permission, PermissionDenied, StaffUser, allowed
from noncde.dashboard.ports import AuditTrail
from noncde.dashboard.service.context import Origin, staff_actor


class AccessControl:
    def __init__(self, audit: AuditTrail) -> None:
        self.audit = audit

    def require(
        self, user: StaffUser, permission: Permission, *, resource: str, origin: Origin
    ) -> None:
        """Return when `user`'s role holds `permission`; else audit and raise 403."""
        if allowed(user.role, permission):
            return
        self.audit.record(
            EventType.ACCESS_DENIED,
            actor=staff_actor(user.username),
            outcome=Outcome.FAILURE,
            target=resource,
            resource="dashboard.page",
            reason="role lacks permission",
            details={"permission": str(permission), "role": str(user.role)},
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )
        raise PermissionDenied(
            f"Your role ({user.role.value}) may not open this page or do this action."
        )
