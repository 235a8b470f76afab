"""cde.gateway: values, entities, events and errors of the PSP gateway; pure, no I/O.

CDE. The PSP's answers in the gateway's own small, typed words: a payment's outcome (never
guessed: a lost answer is `unknown`), a refund's, a checkout session, a verified webhook event;
the gateway's own records of what it asked for (by our references), request validation,
derived Idempotency-Keys and the token-only events relayed to the non-CDE API. Only
`CardDetails` holds card data, in masked types; every other value here is token-only and may
leave the CDE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from fincore.cards import contains_card_number, find_card_data, is_card_key
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
    payment_method: str | None = None  # the PSP payment-method token (pm_…) it was made with


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


# ================================================================ the gateway's own records
#
# What the gateway keeps about the payments it asked the PSP for: our references, the PSP's
# references and outcomes. Never card data (PCI DSS 3.2.1: the gateway stores nothing
# card-related; the vault token and the PSP payment-method token are not card data).

REFERENCE_PATTERNS: dict[str, re.Pattern[str]] = {
    "charge_id": re.compile(r"^ch_[A-Za-z0-9]{6,64}$"),
    "refund_id": re.compile(r"^re_[A-Za-z0-9]{6,64}$"),
    "session_id": re.compile(r"^ps_[A-Za-z0-9]{6,64}$"),
    "merchant_id": re.compile(r"^mer_[A-Za-z0-9_]{1,64}$"),
}
TOKEN_PATTERNS: dict[str, re.Pattern[str]] = {
    "vault_token": re.compile(r"^tok_[A-Za-z0-9]{8,64}$"),
    "psp_token": re.compile(r"^pm_[A-Za-z0-9]{8,64}$"),
}
PSP_REFERENCE = re.compile(r"^(?:pi|cs|re|pm)_[A-Za-z0-9_]{6,128}$")
CURRENCY = re.compile(r"^[a-z]{3}$")
MAX_AMOUNT = 99_999_999  # Stripe's limit: eight digits of minor units
MAX_UNIX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime holds


class MethodType(StrEnum):
    """How a payment is paid: a vault token (S2S raw card) or a PSP token (SDK flow)."""

    vault_token = "vault_token"  # noqa: S105 - a method name, not a secret
    psp_token = "psp_token"  # noqa: S105 - a method name, not a secret


class Operation(StrEnum):
    """The PSP operations the gateway performs; each has its own Idempotency-Key."""

    payment_method = "payment_method"
    authorize = "authorize"
    capture = "capture"
    cancel = "cancel"
    refund = "refund"
    checkout_session = "checkout_session"
    expire_checkout_session = "expire_checkout_session"
    retrieve = "retrieve"  # reads: no key, moves nothing
    retrieve_payment_method = "retrieve_payment_method"


def idempotency_key(reference: str, operation: Operation, attempt: int | None = None) -> str:
    """The PSP Idempotency-Key of one operation on one of our references.

    Derived, never random: a retried job sends the same key, so the PSP answers with the first
    outcome instead of moving money again. `attempt` is only used for operations that move no
    money and may need a fresh key (a payment method re-created after the CVC was consumed).
    """
    key = f"fincore:{reference}:{operation.value}"
    return key if attempt is None else f"{key}:{attempt}"


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """One charge as the gateway knows it. `submitted` turns true before the first PSP
    authorize request is sent: from then on, a missing answer must be resolved with the PSP
    (by reference) before anything is retried."""

    charge_id: str
    merchant_id: str
    amount: int
    currency: str
    capture: bool
    method_type: MethodType
    method_token: str
    description: str | None
    created_at: float
    updated_at: float
    status: PaymentStatus = PaymentStatus.unknown
    submitted: bool = False
    psp_reference: str | None = None
    psp_payment_method: str | None = None
    payment_method_attempts: int = 0
    amount_received: int | None = None
    amount_capturable: int | None = None
    amount_refunded: int | None = None
    decline_code: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None

    def same_request(self, other: PaymentRecord) -> bool:
        """True when `other` asks for the very same payment (an idempotent retry)."""
        return (
            self.merchant_id == other.merchant_id
            and self.amount == other.amount
            and self.currency == other.currency
            and self.capture == other.capture
            and self.method_type == other.method_type
            and self.method_token == other.method_token
            and (self.description or None) == (other.description or None)
        )

    @property
    def final(self) -> bool:
        return self.status is not PaymentStatus.unknown

    def as_outcome(self) -> PaymentOutcome:
        """What the gateway answers about this charge."""
        return PaymentOutcome(
            status=self.status,
            psp_reference=self.psp_reference,
            reference=self.charge_id,
            amount=self.amount,
            currency=self.currency,
            amount_received=self.amount_received,
            amount_capturable=self.amount_capturable,
            amount_refunded=self.amount_refunded,
            decline_code=self.decline_code,
            failure_code=self.failure_code,
            failure_message=self.failure_message,
            payment_method=self.psp_payment_method,
        )

    def with_outcome(self, outcome: PaymentOutcome, now: float) -> PaymentRecord:
        """This record updated with what the PSP said (an `unknown` keeps what we knew)."""
        if outcome.status is PaymentStatus.unknown and outcome.psp_reference is None:
            return replace(self, status=PaymentStatus.unknown, updated_at=now)
        failed = outcome.status is PaymentStatus.failed
        return replace(
            self,
            status=outcome.status,
            psp_reference=outcome.psp_reference or self.psp_reference,
            psp_payment_method=outcome.payment_method or self.psp_payment_method,
            amount_received=_first(outcome.amount_received, self.amount_received),
            amount_capturable=_first(outcome.amount_capturable, self.amount_capturable),
            amount_refunded=_first(outcome.amount_refunded, self.amount_refunded),
            decline_code=outcome.decline_code if failed else None,
            failure_code=outcome.failure_code if failed else None,
            failure_message=outcome.failure_message if failed else None,
            updated_at=now,
        )


def _first(value: int | None, fallback: int | None) -> int | None:
    return value if value is not None else fallback


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """One refund as the gateway knows it (`refund_id` is ours, `psp_reference` the PSP's)."""

    refund_id: str
    charge_id: str
    amount: int | None  # as asked: None is "the whole refundable amount"
    created_at: float
    updated_at: float
    status: RefundStatus = RefundStatus.unknown
    psp_reference: str | None = None
    payment_reference: str | None = None
    amount_refunded: int | None = None  # as the PSP refunded it
    currency: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None

    def same_request(self, other: RefundRecord) -> bool:
        return self.charge_id == other.charge_id and self.amount == other.amount

    def with_outcome(self, outcome: RefundOutcome, now: float) -> RefundRecord:
        return replace(
            self,
            status=outcome.status,
            psp_reference=outcome.psp_reference or self.psp_reference,
            payment_reference=outcome.payment_reference or self.payment_reference,
            amount_refunded=_first(outcome.amount, self.amount_refunded),
            currency=outcome.currency or self.currency,
            failure_code=outcome.failure_code,
            failure_message=outcome.failure_message,
            updated_at=now,
        )


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One hosted checkout session: our `session_id`, the PSP's `psp_session_id` (cs_…)."""

    session_id: str
    merchant_id: str
    amount: int
    currency: str
    success_url: str
    cancel_url: str | None
    expires_at: float | None
    created_at: float
    updated_at: float
    status: CheckoutStatus = CheckoutStatus.open
    psp_session_id: str | None = None
    url: str | None = None
    payment_reference: str | None = None

    def same_request(self, other: SessionRecord) -> bool:
        return (
            self.merchant_id == other.merchant_id
            and self.amount == other.amount
            and self.currency == other.currency
            and self.success_url == other.success_url
            and self.cancel_url == other.cancel_url
            and self.expires_at == other.expires_at
        )


@dataclass(frozen=True, slots=True)
class RelayItem:
    """One normalized, token-only event waiting in the outbox for the API."""

    id: int
    event_id: str  # pspevt_…
    body: str  # the JSON sent to the API
    attempts: int
    created_at: float


def relay_backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Delay before the next delivery after `attempts` failed ones: base·2^(n-1), capped."""
    if attempts <= 0:
        return 0.0
    return float(min(max_s, base_s * (2 ** min(attempts - 1, 32))))


# ---------------------------------------------------------------- decline messages

# A clear message per Stripe decline code, for when the PSP gave none (localstripe, charges).
DECLINE_MESSAGES: dict[str, str] = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "invalid_cvc": "Your card's security code is invalid.",
    "incorrect_number": "Your card number is incorrect.",
    "invalid_number": "Your card number is invalid.",
    "invalid_expiry_month": "Your card's expiration month is invalid.",
    "invalid_expiry_year": "Your card's expiration year is invalid.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "do_not_honor": "Your card was declined.",
    "fraudulent": "Your card was declined.",
    "test_mode_live_card": "Your card was declined. A live card was used in test mode.",
}


def decline_message(decline_code: str | None, given: str | None) -> str:
    """The payer-fit message for a decline: the PSP's, else ours for the code."""
    if given:
        return given
    return DECLINE_MESSAGES.get(decline_code or "", "Your card was declined.")


# ---------------------------------------------------------------- errors of the gateway


class GatewayError(Exception):
    """Base of the gateway's own refusals. Messages never carry submitted values."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


class InvalidRequest(GatewayError):
    """The request is malformed; nothing was done."""


class CardDataRefused(GatewayError):
    """Card data arrived where only tokens belong (PCI DSS 3.2.1, checklist A2); refused."""


class ReferenceConflict(GatewayError):
    """Our reference was used before with other parameters (an idempotency error)."""

    status = 409
    type = "idempotency_error"


class PaymentNotFound(GatewayError):
    """Neither the gateway nor the PSP knows a payment for this reference."""

    status = 404


class CardSourceError(GatewayError):
    """The vault would not hand out the card for a token."""


class CardTokenNotFound(CardSourceError):
    status = 404


class CardTokenRefused(CardSourceError):
    """The vault refused (the token belongs to another merchant, or its keys are gone)."""

    status = 403
    type = "permission_error"


class CardSourceUnavailable(CardSourceError):
    """The vault could not be reached or failed; nothing was sent to the PSP."""

    status = 503
    type = "api_error"


class RelayError(Exception):
    """The API did not store a relayed event; the outbox keeps it and retries."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# ---------------------------------------------------------------- request validation


def check_reference(kind: str, value: object, param: str | None = None) -> str:
    """One of our ids (`charge_id`, `refund_id`, `session_id`, `merchant_id`), or
    `InvalidRequest` naming the parameter (never echoing the value)."""
    name = param or kind
    if value is None:
        raise InvalidRequest(
            f"Missing required param: {name}.", code="parameter_missing", param=name
        )
    if (
        not isinstance(value, str)
        or not REFERENCE_PATTERNS[kind].match(value)
        # None of our ids holds a card-like number (fincore.ids); one that does would be
        # refused by the audit log as a record's target (a 500 before; tests/security).
        or contains_card_number(value)
    ):
        raise InvalidRequest(f"Invalid value for {name}.", code="parameter_invalid", param=name)
    return value


def check_amount(value: object, param: str = "amount", *, required: bool = True) -> int | None:
    """A positive integer amount in minor units (at most eight digits)."""
    if value is None:
        if required:
            raise InvalidRequest(
                f"Missing required param: {param}.", code="parameter_missing", param=param
            )
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_AMOUNT:
        raise InvalidRequest(
            f"{param} must be a positive integer in minor units.",
            code="parameter_invalid",
            param=param,
        )
    return value


def check_currency(value: object) -> str:
    if value is None:
        raise InvalidRequest(
            "Missing required param: currency.", code="parameter_missing", param="currency"
        )
    if not isinstance(value, str) or not CURRENCY.match(value):
        raise InvalidRequest(
            "currency must be a lowercase ISO-4217 code.",
            code="parameter_invalid",
            param="currency",
        )
    return value


def check_psp_reference(value: object, prefix: str, param: str = "psp_reference") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(prefix) or not PSP_REFERENCE.match(value):
        raise InvalidRequest(f"Invalid value for {param}.", code="parameter_invalid", param=param)
    return value


def check_payment_method(value: object) -> tuple[MethodType, str]:
    """`{"type": "vault_token"|"psp_token", "token"}` as (type, token)."""
    if value is None:
        raise InvalidRequest(
            "Missing required param: payment_method.",
            code="parameter_missing",
            param="payment_method",
        )
    if not isinstance(value, dict):
        raise InvalidRequest(
            "Invalid value for payment_method.", code="parameter_invalid", param="payment_method"
        )
    unknown = sorted(str(k) for k in value if k not in {"type", "token"})
    if unknown:
        raise InvalidRequest(
            "Received unknown parameter.", code="parameter_unknown", param="payment_method"
        )
    try:
        kind = MethodType(str(value.get("type")))
    except ValueError:
        raise InvalidRequest(
            "payment_method[type] must be vault_token or psp_token.",
            code="parameter_invalid",
            param="payment_method[type]",
        ) from None
    token = value.get("token")
    if token is None:
        raise InvalidRequest(
            "Missing required param: payment_method[token].",
            code="parameter_missing",
            param="payment_method[token]",
        )
    if not isinstance(token, str) or not TOKEN_PATTERNS[kind].match(token):
        raise InvalidRequest(
            f"payment_method[token] is not a {kind.value}.",
            code="parameter_invalid",
            param="payment_method[token]",
        )
    return kind, token


# ---------------------------------------------------------------- events relayed to the API

# PSP event types the API hears about, and their names in FinCore's words. Other types
# (payment_intent.created, charge.*) are acknowledged and dropped: they repeat these.
RELAYED_TYPES: dict[str, str] = {
    "payment_intent.succeeded": "payment.succeeded",
    "payment_intent.amount_capturable_updated": "payment.authorized",
    "payment_intent.payment_failed": "payment.failed",
    "payment_intent.canceled": "payment.canceled",
    "refund.created": "refund",
    "refund.updated": "refund",
    "refund.failed": "refund",
    "charge.refund.updated": "refund",
    "checkout.session.completed": "checkout_session.completed",
    "checkout.session.expired": "checkout_session.expired",
}


@dataclass(frozen=True, slots=True)
class RelayLinks:
    """What the gateway knows beyond the PSP event: which of our ids it belongs to and, for a
    paid checkout session, the PSP token and display data of the card used."""

    charge_id: str | None = None
    session_id: str | None = None
    refund_id: str | None = None
    payment_method: PspPaymentMethod | None = None
    payment_status: PaymentStatus | None = None


def relay_event_id(psp_event_id: str) -> str:
    """Our event id for a PSP event: stable, so a redelivery is the same event for the API."""
    return "pspevt_" + psp_event_id.removeprefix("evt_")


def relay_event(event: PspEvent, links: RelayLinks) -> dict[str, object] | None:
    """The normalized, token-only event the API receives, or None when this type is not
    relayed. Built from an allow-list of fields; nothing of the PSP's raw object passes."""
    kind = RELAYED_TYPES.get(event.type)
    if kind is None:
        return None
    body: dict[str, object] = {
        "id": relay_event_id(event.id),
        "psp_event_id": event.id,
        "created": int(event.created.timestamp()),
    }
    if kind.startswith("payment.") and event.payment is not None:
        payment = event.payment
        body.update(type=kind, psp_reference=payment.psp_reference)
        _put(body, charge_id=links.charge_id, session_id=links.session_id)
        _put(
            body,
            amount=payment.amount,
            currency=payment.currency,
            amount_received=payment.amount_received,
            amount_capturable=payment.amount_capturable,
        )
        if payment.status is PaymentStatus.failed:
            _put(
                body,
                decline_code=payment.decline_code,
                failure_code=payment.failure_code,
                message=decline_message(payment.decline_code, payment.failure_message),
            )
    elif kind == "refund" and event.refund is not None:
        refund = event.refund
        body.update(type=f"refund.{refund.status.value}", psp_reference=refund.psp_reference)
        _put(
            body,
            refund_id=links.refund_id or refund.reference,
            charge_id=links.charge_id,
            psp_payment_reference=refund.payment_reference,
            amount=refund.amount,
            currency=refund.currency,
            failure_code=refund.failure_code,
        )
    elif kind.startswith("checkout_session.") and event.checkout_session is not None:
        session = event.checkout_session
        body.update(type=kind, psp_reference=session.psp_reference)
        _put(
            body,
            session_id=links.session_id or session.reference,
            psp_payment_reference=session.payment_reference,
            amount=session.amount,
            currency=session.currency,
            payment_status=links.payment_status.value if links.payment_status else None,
        )
        if links.payment_method is not None:
            pm = links.payment_method
            card = {
                "brand": pm.brand,
                "last4": pm.last4,
                "exp_month": pm.exp_month,
                "exp_year": pm.exp_year,
            }
            body["payment_method"] = {
                "type": MethodType.psp_token.value,
                "token": pm.psp_reference,
                "card": {k: v for k, v in card.items() if v is not None},
            }
    else:
        return None
    return strip_card_data(body)[0]


def _put(body: dict[str, object], **values: object) -> None:
    for key, value in values.items():
        if value is not None:
            body[key] = value


def strip_card_data(value: dict[str, object]) -> tuple[dict[str, object], list[str]]:
    """`value` without any field that is, or holds, card data (a card-like number anywhere,
    or a card key such as `number`/`cvc`), and the paths removed (PCI DSS 3.2.1: nothing
    card-related leaves the CDE)."""
    removed: list[str] = []

    def clean(item: object, path: str) -> object:
        if isinstance(item, dict):
            kept: dict[str, object] = {}
            for key, child in item.items():
                child_path = f"{path}.{key}"
                if is_card_key(str(key)) or contains_card_number(str(key)):
                    removed.append(child_path)
                    continue
                cleaned = clean(child, child_path)
                if cleaned is not _DROP:
                    kept[str(key)] = cleaned
            return kept
        if isinstance(item, list):
            return [c for c in (clean(x, f"{path}[]") for x in item) if c is not _DROP]
        if find_card_data(item, path):
            removed.append(path)
            return _DROP
        return item

    result = clean(value, "$")
    assert isinstance(result, dict)
    return result, removed


_DROP = object()
