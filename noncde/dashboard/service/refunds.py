"""noncde.dashboard (non-CDE): staff refunds with two people (request, then approval).

Support asks (`refunds.request`); a finance user other than the requester approves or rejects
(`refunds.approve`). Only an approved request is sent to the merchant API, with the request
id as Idempotency-Key: an answer lost in transit leaves the request `approved`, and sending it
again can never refund twice. Each step is audited as `admin.refund` with the acting person
(PCI DSS 10.2.1.2); a refused self-approval is audited as a failure.
"""

from __future__ import annotations

from audit.domain import EventType, Outcome
from fincore.ids import random_id
from noncde.dashboard.domain import (
    Conflict,
    InvalidInput,
    NotFound,
    RefundRequest,
    RefundRequestStatus,
    SelfApproval,
    StaffUser,
    Unavailable,
)
from noncde.dashboard.domain.refunds import CATEGORIES
from noncde.dashboard.ports import ApiCommands, AuditTrail, Clock, PaymentReads, StaffStore
from noncde.dashboard.service.context import Origin, staff_actor, utc_now

RESOURCE = "dashboard.refund"
_OPEN = (RefundRequestStatus.PENDING, RefundRequestStatus.APPROVED)


class RefundApprovals:
    def __init__(
        self,
        store: StaffStore,
        payments: PaymentReads,
        commands: ApiCommands,
        audit: AuditTrail,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.payments = payments
        self.commands = commands
        self.audit = audit
        self.clock = clock

    def _audit(
        self,
        user: StaffUser,
        request: RefundRequest,
        step: str,
        origin: Origin,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        reason: str | None = None,
    ) -> None:
        self.audit.record(
            EventType.ADMIN_REFUND,
            actor=staff_actor(user.username),
            outcome=outcome,
            target=request.charge_id,
            resource=RESOURCE,
            reason=reason,
            details={
                "step": step,
                "refund_request": request.id,
                "merchant_id": request.merchant_id,
                "amount": request.amount,
                "currency": request.currency,
                "requested_by": request.requested_by,
                "category": request.category,
                "refund_id": request.refund_id,
            },
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )

    def get(self, request_id: str) -> RefundRequest:
        found = self.store.get_refund_request(request_id)
        if found is None:
            raise NotFound("No such refund request.")
        return found

    def requests(self, status: RefundRequestStatus | None = None) -> list[RefundRequest]:
        return self.store.list_refund_requests(status=status)

    def for_charge(self, charge_id: str) -> list[RefundRequest]:
        return self.store.list_refund_requests(charge_id=charge_id)

    def request(
        self,
        user: StaffUser,
        charge_id: str,
        amount: int,
        reason: str,
        origin: Origin,
        *,
        category: str = CATEGORIES[0],
    ) -> RefundRequest:
        """Ask for a refund of `amount` (minor units); it waits for a finance approval."""
        charge = self.payments.charge(charge_id)
        if charge is None or charge.merchant_id is None:
            raise NotFound("No such charge.")
        waiting = sum(
            r.amount
            for r in self.store.list_refund_requests(charge_id=charge.id)
            if r.status in _OPEN
        )
        request = RefundRequest.new(
            id=random_id("rfr"),
            charge_id=charge.id,
            merchant_id=charge.merchant_id,
            amount=amount,
            currency=charge.currency,
            reason=reason,
            requested_by=user.username,
            now=self.clock(),
            refundable=charge.amount_refundable - waiting,
            category=category,
        )
        self.store.add_refund_request(request)
        self._audit(user, request, "requested", origin)
        return request

    def approve(self, user: StaffUser, request_id: str, origin: Origin) -> RefundRequest:
        """Approve (someone else's request) and send it to the API."""
        request = self.get(request_id)
        try:
            approved = request.approve(user.username, self.clock())
        except SelfApproval:
            self._audit(
                user, request, "approve", origin, outcome=Outcome.FAILURE, reason="self_approval"
            )
            raise
        if not self.store.update_refund_request(approved, RefundRequestStatus.PENDING):
            raise Conflict("Someone else decided this request first.")
        self._audit(user, approved, "approved", origin)
        return self.submit(user, approved, origin)

    def retry(self, user: StaffUser, request_id: str, origin: Origin) -> RefundRequest:
        """Send an approved request whose first submission got no answer, again."""
        request = self.get(request_id)
        if request.status is not RefundRequestStatus.APPROVED:
            raise Conflict("Only an approved request that was not accepted yet can be re-sent.")
        return self.submit(user, request, origin)

    def submit(self, user: StaffUser, request: RefundRequest, origin: Origin) -> RefundRequest:
        try:
            refund_id = self.commands.refund(
                request, actor=user.username, request_id=origin.request_id
            )
        except Unavailable:
            self._audit(
                user, request, "submit", origin, outcome=Outcome.FAILURE, reason="api_unavailable"
            )
            return request
        except (InvalidInput, Conflict, NotFound) as exc:
            failed = request.failed(exc.message)
            self.store.update_refund_request(failed, RefundRequestStatus.APPROVED)
            self._audit(
                user, failed, "submit", origin, outcome=Outcome.FAILURE, reason="api_refused"
            )
            return failed
        done = request.submitted(refund_id)
        self.store.update_refund_request(done, RefundRequestStatus.APPROVED)
        self._audit(user, done, "submitted", origin)
        return done

    def reject(self, user: StaffUser, request_id: str, note: str, origin: Origin) -> RefundRequest:
        request = self.get(request_id)
        rejected = request.reject(user.username, self.clock(), note)
        if not self.store.update_refund_request(rejected, RefundRequestStatus.PENDING):
            raise Conflict("Someone else decided this request first.")
        self._audit(user, rejected, "rejected", origin)
        return rejected
