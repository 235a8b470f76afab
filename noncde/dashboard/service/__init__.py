"""noncde.dashboard (non-CDE): the use cases; they talk to ports only."""

from noncde.dashboard.service.access import AccessControl
from noncde.dashboard.service.audit_pages import AuditPages, EvidenceFile
from noncde.dashboard.service.auth import AuthService, SessionEnded, SignedIn, totp_context
from noncde.dashboard.service.context import Origin, utc_now
from noncde.dashboard.service.merchants import MerchantAdmin
from noncde.dashboard.service.operations import OperationsAdmin
from noncde.dashboard.service.refunds import RefundApprovals
from noncde.dashboard.service.staff import NewAccount, StaffAdmin, generated_password

__all__ = [
    "AccessControl",
    "AuditPages",
    "AuthService",
    "EvidenceFile",
    "MerchantAdmin",
    "NewAccount",
    "OperationsAdmin",
    "Origin",
    "RefundApprovals",
    "SessionEnded",
    "SignedIn",
    "StaffAdmin",
    "generated_password",
    "totp_context",
    "utc_now",
]
