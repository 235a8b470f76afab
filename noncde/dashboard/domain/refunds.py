"""noncde.dashboard (non-CDE): staff refunds under the four-eyes rule; pure.

Support asks for a refund; a finance user who is not the requester approves it (or rejects
it); only then is it sent to the merchant API, with the request id as its Idempotency-Key so
a retry after a lost answer can never refund twice. Every step is audited by the service
(PCI DSS 10.2.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from noncde.dashboard.domain.errors import Conflict, InvalidInput, PermissionDenied

MAX_REASON = 500
# The refund reasons the merchant API knows (Stripe's); the free text is for the approver.
CATEGORIES = ("requested_by_customer", "duplicate", "fraudulent")


class RefundRequestStatus(StrEnum):
    PENDING = "pending_approval"
    APPROVED = "approved"  # approved, not yet accepted by the API (retry sends it again)
    SUBMITTED = "submitted"  # the API accepted it: a refund exists and runs through the jobs
    REJECTED = "rejected"
    FAILED = "failed"  # the API refused it (e.g. nothing left to refund)


class SelfApproval(PermissionDenied):
    """The requester may not approve their own refund (two people)."""

    def __init__(self) -> None:
        super().__init__("A refund must be approved by someone other than the person who asked.")


@dataclass(frozen=True, slots=True)
class RefundRequest:
    id: str
    charge_id: str
    merchant_id: str
    amount: int
    currency: str
    reason: str
    requested_by: str
    requested_at: datetime
    status: RefundRequestStatus = RefundRequestStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    refund_id: str | None = None
    error: str | None = None
    category: str = CATEGORIES[0]

    @classmethod
    def new(
        cls,
        *,
        id: str,
        charge_id: str,
        merchant_id: str,
        amount: int,
        currency: str,
        reason: str,
        requested_by: str,
        now: datetime,
        refundable: int,
        category: str = CATEGORIES[0],
    ) -> RefundRequest:
        """A request, if `amount` fits in what the charge still has to refund."""
        if amount <= 0:
            raise InvalidInput("The amount must be a positive number.", field="amount")
        if amount > refundable:
            raise InvalidInput(
                "The amount is more than the charge has left to refund.", field="amount"
            )
        if category not in CATEGORIES:
            raise InvalidInput("Choose one of the listed refund reasons.", field="category")
        text = reason.strip()
        if not text or len(text) > MAX_REASON:
            raise InvalidInput(
                f"Give a reason (1-{MAX_REASON} characters) for the approver.", field="reason"
            )
        return cls(
            id=id,
            charge_id=charge_id,
            merchant_id=merchant_id,
            amount=amount,
            currency=currency,
            reason=text,
            requested_by=requested_by,
            requested_at=now,
            category=category,
        )

    def _require(self, *states: RefundRequestStatus) -> None:
        if self.status not in states:
            raise Conflict(f"This refund request is {self.status.value.replace('_', ' ')}.")

    def approve(self, by: str, now: datetime) -> RefundRequest:
        self._require(RefundRequestStatus.PENDING)
        if by == self.requested_by:
            raise SelfApproval()
        return replace(self, status=RefundRequestStatus.APPROVED, decided_by=by, decided_at=now)

    def reject(self, by: str, now: datetime, note: str) -> RefundRequest:
        self._require(RefundRequestStatus.PENDING)
        text = note.strip()[:MAX_REASON]
        return replace(
            self,
            status=RefundRequestStatus.REJECTED,
            decided_by=by,
            decided_at=now,
            note=text or None,
        )

    def submitted(self, refund_id: str) -> RefundRequest:
        self._require(RefundRequestStatus.APPROVED)
        return replace(self, status=RefundRequestStatus.SUBMITTED, refund_id=refund_id)

    def failed(self, error: str) -> RefundRequest:
        self._require(RefundRequestStatus.APPROVED)
        return replace(self, status=RefundRequestStatus.FAILED, error=error[:MAX_REASON])
