"""cde.gateway: values, entities, events and errors of the PSP gateway; pure, no I/O.

CDE. The PSP's answers in the gateway's own small, typed words: a payment's outcome (never
guessed: a lost answer is `unknown`), a refund's, a checkout session, a verified webhook event.
Only `CardDetails` holds card data, in masked types; every other value here is token-only and
may leave the CDE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from fincore.sensitive import Cvc, Pan


class PaymentStatus(StrEnum):
    """Where a PSP payment stands, as far as the gateway knows."""

    succeeded = "succeeded"  # captured (or captured automatically)
    requires_capture = "requires_capture"  # authorized, waiting for capture or cancel
    failed = "failed"  # declined or otherwise not authorized; `decline_code` says why
    canceled = "canceled"  # authorization released (or never confirmed and abandoned)
    unknown = "unknown"  # no answer (timeout, connection lost, 5xx) or still in progress


class RefundStatus(StrEnum):
    succeeded = "succeeded"
    pending = "pending"
    failed = "failed"
    canceled = "canceled"
    unknown = "unknown"


class CheckoutStatus(StrEnum):
    open = "open"
    complete = "complete"
    expired = "expired"


@dataclass(frozen=True, slots=True)
class CardDetails:
    """A card for one PSP call. The PAN and CVC stay masked until the adapter's SDK call
    (PCI DSS 3.3.1, 3.4.1); `repr` shows only the masked forms."""

    pan: Pan
    exp_month: int
    exp_year: int
    cvc: Cvc | None = None


@dataclass(frozen=True, slots=True)
class PspPaymentMethod:
    """A PSP payment-method token (`pm_…`) and the display data the PSP returned."""

    psp_reference: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Authorize `amount` (minor units) with a PSP payment method; capture at once unless
    `capture` is False. `reference` is our charge id, stored at the PSP as metadata."""

    reference: str
    amount: int
    currency: str
    payment_method: str
    capture: bool = True
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """The PSP's view of one payment (a PaymentIntent)."""

    status: PaymentStatus
    psp_reference: str | None  # pi_… (None when the PSP never told us)
    reference: str | None = None  # our charge id, from the PSP's metadata
    amount: int | None = None
    currency: str | None = None
    amount_received: int | None = None
    amount_capturable: int | None = None
    amount_refunded: int | None = None
    decline_code: str | None = None  # Stripe's decline code (generic_decline, lost_card…)
    failure_code: str | None = None  # Stripe's error code (card_declined, expired_card…)
    failure_message: str | None = None  # a message fit to show the payer
    psp_status: str | None = None  # the PSP's own status word, for diagnostics


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    status: RefundStatus
    psp_reference: str | None  # re_…
    payment_reference: str | None  # pi_…
    amount: int | None = None
    currency: str | None = None
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """A hosted payment page for `amount`; the payer returns to `success_url` or
    `cancel_url`. The session is one-time use and expires at `expires_at`."""

    reference: str
    amount: int
    currency: str
    success_url: str
    cancel_url: str | None = None
    description: str = "Payment"
    expires_at: datetime | None = None
    capture: bool = True
    customer_email: str | None = None


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    psp_reference: str  # cs_…
    url: str | None
    status: CheckoutStatus
    payment_status: str
    amount: int | None
    currency: str | None
    expires_at: datetime | None
    reference: str | None  # our reference (client_reference_id)
    payment_reference: str | None  # pi_… once paid


@dataclass(frozen=True, slots=True)
class PspEvent:
    """A verified PSP webhook event, normalized. Holds no card data: only ids, amounts,
    statuses and codes (the raw event never leaves the adapter)."""

    id: str  # evt_… (deduplicate on it)
    type: str
    created: datetime
    payment: PaymentOutcome | None = None
    refund: RefundOutcome | None = None
    checkout_session: CheckoutSession | None = None


# ---------------------------------------------------------------- errors


class PspError(Exception):
    """Base of the gateway's PSP errors. Messages never carry card data or keys."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class PspRequestError(PspError):
    """The PSP refused the request and did nothing (bad parameter, wrong state, over-refund)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.param = param
        self.http_status = http_status


class CardRejected(PspError):
    """The PSP would not accept the card itself (incorrect number, invalid expiry or CVC)."""

    def __init__(self, message: str, *, code: str | None, decline_code: str | None) -> None:
        super().__init__(message, code=code)
        self.decline_code = decline_code


class PspAuthenticationError(PspError):
    """The PSP refused our API key (401/403): a configuration problem, not a payment one."""


class PspIdempotencyError(PspError):
    """The Idempotency-Key was used with other parameters, or its first request is still
    running (retry later with the same key)."""


class PspRateLimited(PspError):
    """The PSP asked us to slow down (429); nothing was done."""


class PspUnavailable(PspError):
    """No usable answer (timeout, connection lost, 5xx): the outcome of a write is unknown.
    Retrying with the same Idempotency-Key is safe."""


class WebhookVerificationError(PspError):
    """A webhook failed its signature, timestamp tolerance or shape check; never trust it."""
