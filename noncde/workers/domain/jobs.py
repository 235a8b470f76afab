"""noncde.workers (non-CDE): the job worker's values and decisions; pure, no I/O.

What the gateway answered (`PaymentAnswer`, `RefundAnswer`), how a failure is classified
(retry, give up, or record as the outcome), and which published-language events an answer
becomes for a charge in its current state (`outcome_events`). A charge's outcome is recorded
only while the charge is still waiting for it, so a re-delivered job, a second worker, or the
API applying the same PSP webhook first, never records an outcome twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from noncde.api.domain import (
    AuthorizeCharge,
    CancelCharge,
    CaptureCharge,
    Charge,
    ChargeAuthorized,
    ChargeCanceled,
    ChargeCaptured,
    ChargeFailed,
    ChargeStatus,
    DomainEvent,
    ExecuteRefund,
    RefundFailed,
    RefundStatus,
    RefundSucceeded,
)

Job = AuthorizeCharge | CaptureCharge | CancelCharge | ExecuteRefund

MAX_REASON = 500


class PaymentStatus(StrEnum):
    """The gateway's view of a PSP payment (interfaces.md)."""

    SUCCEEDED = "succeeded"
    REQUIRES_CAPTURE = "requires_capture"
    FAILED = "failed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"


class RefundAnswerStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"


# ---------------------------------------------------------------- errors


class WorkerError(Exception):
    """Base of the job worker's errors. Messages never carry tokens or card data."""


class GatewayUnavailable(WorkerError):
    """No usable answer (connection failure, timeout, 5xx, 429): the call may or may not have
    reached the PSP, so the next attempt must first ask for the payment's status."""


class GatewayRefused(WorkerError):
    """The gateway refused the request (4xx): retrying the same request cannot succeed.

    `status` is the HTTP status, `code` the Stripe-style error code.
    """

    def __init__(self, status: int, code: str | None, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message[:MAX_REASON]
        super().__init__(f"gateway refused ({status} {code or 'error'}): {self.message}")

    @property
    def needs_operator(self) -> bool:
        """Our own identity or configuration was refused (401/403), or the reference is in
        conflict (409): no outcome to record; retry, then dead-letter for a human."""
        return self.status in (401, 403, 409)


class PaymentNotFound(WorkerError):
    """The PSP has no payment for the charge: nothing was charged, authorizing is safe."""


class Retry(WorkerError):
    """This attempt ends without an outcome; try again after the queue's backoff."""


class GiveUp(WorkerError):
    """Retrying cannot help (e.g. the charge does not exist): dead-letter now."""


# ---------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class PaymentAnswer:
    """`POST /v1/authorizations|captures|cancellations` and `GET /v1/payments/{id}`."""

    status: PaymentStatus
    psp_reference: str | None = None
    decline_code: str | None = None
    failure_code: str | None = None
    message: str | None = None
    amount_capturable: int | None = None
    amount_received: int | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PaymentAnswer:
        try:
            status = PaymentStatus(str(body.get("status")))
        except ValueError:
            status = PaymentStatus.UNKNOWN
        return cls(
            status=status,
            psp_reference=_text(body.get("psp_reference")),
            decline_code=_text(body.get("decline_code")),
            failure_code=_text(body.get("failure_code")),
            message=_text(body.get("message")),
            amount_capturable=_int(body.get("amount_capturable")),
            amount_received=_int(body.get("amount_received")),
        )


@dataclass(frozen=True, slots=True)
class RefundAnswer:
    """`POST /v1/refunds`."""

    status: RefundAnswerStatus
    psp_reference: str | None = None
    amount: int | None = None
    failure_code: str | None = None
    message: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RefundAnswer:
        try:
            status = RefundAnswerStatus(str(body.get("status")))
        except ValueError:
            status = RefundAnswerStatus.UNKNOWN
        return cls(
            status=status,
            psp_reference=_text(body.get("psp_reference")),
            amount=_int(body.get("amount")),
            failure_code=_text(body.get("failure_code")),
            message=_text(body.get("message")),
        )


def _text(value: object) -> str | None:
    return str(value)[:MAX_REASON] if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------- decisions


def is_settled(job: Job, charge: Charge) -> bool:
    """True when the charge no longer waits for this job's outcome (nothing left to do)."""
    if isinstance(job, AuthorizeCharge):
        return charge.status is not ChargeStatus.PROCESSING
    if isinstance(job, CaptureCharge | CancelCharge):
        return charge.status is not ChargeStatus.REQUIRES_CAPTURE
    refund = charge.refund(job.refund_id)
    return refund is not None and refund.status is not RefundStatus.PENDING


def payment_events(job: Job, charge: Charge, answer: PaymentAnswer) -> list[DomainEvent]:
    """The events that record `answer` for `job` on `charge` in its current state.

    [] when the answer is not final (`unknown`, or still `requires_capture` for a capture or
    cancel), or when the charge has moved on (another writer recorded an outcome first).
    """
    if is_settled(job, charge) or answer.status is PaymentStatus.UNKNOWN:
        return []
    reference = answer.psp_reference or charge.psp_reference or ""
    if answer.status is PaymentStatus.SUCCEEDED:
        # For a cancel too: the payment was captured before the cancel reached the PSP, and
        # the capture that happened is what the charge must show.
        amount = answer.amount_received
        if amount is None or amount <= 0:
            amount = job.amount if isinstance(job, CaptureCharge) else charge.amount
        return [ChargeCaptured(charge.id, amount, amount, reference)]
    if answer.status is PaymentStatus.REQUIRES_CAPTURE:
        if not isinstance(job, AuthorizeCharge):
            return []  # capture/cancel not done yet
        authorized = answer.amount_capturable or charge.amount
        return [ChargeAuthorized(charge.id, authorized, reference)]
    if answer.status is PaymentStatus.CANCELED:
        return [ChargeCanceled(charge.id, reference or None)]
    # failed
    return [
        ChargeFailed(
            charge_id=charge.id,
            failure_code=answer.failure_code or "card_declined",
            failure_message=answer.message or "The payment was declined.",
            decline_code=answer.decline_code,
            psp_reference=answer.psp_reference,
        )
    ]


def refund_events(job: ExecuteRefund, charge: Charge, answer: RefundAnswer) -> list[DomainEvent]:
    """The events that record a refund answer ([] while pending/unknown or already final)."""
    if is_settled(job, charge):
        return []
    if answer.status is RefundAnswerStatus.SUCCEEDED:
        amount = answer.amount if answer.amount and answer.amount > 0 else job.amount
        return [RefundSucceeded(job.refund_id, charge.id, amount, answer.psp_reference or "")]
    if answer.status in (RefundAnswerStatus.FAILED, RefundAnswerStatus.CANCELED):
        return [
            RefundFailed(
                refund_id=job.refund_id,
                charge_id=charge.id,
                failure_code=answer.failure_code or f"refund_{answer.status}",
                failure_message=answer.message or "The refund did not go through.",
            )
        ]
    return []


def refused_events(job: Job, charge: Charge, refused: GatewayRefused) -> list[DomainEvent]:
    """A definite refusal (4xx other than 401/403/409) as the job's outcome.

    An authorization the gateway refuses charged nothing: the charge fails. A refund the PSP
    refuses (over-refund, not captured) fails. A refused capture or cancel has no outcome
    event in the published language: [] (the job is dead-lettered for an operator).
    """
    if is_settled(job, charge) or refused.needs_operator:
        return []
    if isinstance(job, AuthorizeCharge):
        return [
            ChargeFailed(
                charge_id=charge.id,
                failure_code=refused.code or "processing_error",
                failure_message=refused.message or "The payment could not be processed.",
            )
        ]
    if isinstance(job, ExecuteRefund):
        return [
            RefundFailed(
                refund_id=job.refund_id,
                charge_id=charge.id,
                failure_code=refused.code or "refund_refused",
                failure_message=refused.message or "The refund was refused.",
            )
        ]
    return []


def operation_of(job: Job) -> str:
    return {
        AuthorizeCharge: "authorize",
        CaptureCharge: "capture",
        CancelCharge: "cancel",
        ExecuteRefund: "refund",
    }[type(job)]
