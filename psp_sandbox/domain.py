"""psp_sandbox: values, entities, events and errors of the PSP stand-in; pure, no I/O.

Outside both zones. Holds the test-card table (outcomes and Stripe decline codes), card-brand
detection, the Stripe-shaped error type, the fee model, webhook signing (Stripe's scheme) and the
fault-injection plan. Nothing here keeps a card number: a card is reduced to brand, last4,
fingerprint and its test behaviour the moment it arrives.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

# ---------------------------------------------------------------- ids

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """An opaque random id with Stripe's prefix convention (`pi_…`, `ch_…`, `evt_…`)."""
    return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def test_mode_id(prefix: str) -> str:
    """Checkout Sessions and similar carry `_test_` in their id in test mode, as on Stripe."""
    return new_id(prefix + "_test", 58 if prefix == "cs" else 24)


# ---------------------------------------------------------------- errors


class StripeError(Exception):
    """An API error answered as Stripe's error object; never carries a submitted value."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        # Stripe saves an idempotent result only once the endpoint began executing; errors
        # raised while checking the request (validation) are not saved.
        self.executed = False

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def missing(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def not_found(kind: str, object_id: str, param: str = "id") -> StripeError:
    # The id is ours (an opaque random string), never card data, so naming it is safe.
    safe = object_id if re.fullmatch(r"[A-Za-z0-9_]{1,100}", object_id) else "(invalid id)"
    return StripeError(404, f"No such {kind}: '{safe}'", param=param, code="resource_missing")


def unexpected_state(kind: str, action: str, status: str, allowed: tuple[str, ...]) -> StripeError:
    return StripeError(
        400,
        f"This {kind} could not be {action} because it has a status of {status}. "
        f"Only a {kind} with one of the following statuses may be {action}: "
        f"{', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
    )


# ---------------------------------------------------------------- money


# ISO 4217 codes the sandbox accepts (the common subset of Stripe's list).
CURRENCIES = frozenset(
    ("aed", "aud", "bgn", "brl", "cad", "chf", "cny", "czk", "dkk", "eur", "gbp", "hkd", "huf",
     "idr", "ils", "inr", "isk", "jpy", "krw", "mxn", "myr", "nok", "nzd", "php", "pln", "ron",
     "sek", "sgd", "thb", "try", "twd", "usd", "zar")
)  # fmt: skip
MAX_AMOUNT = 99_999_999


def parse_amount(raw: object, param: str = "amount", *, required: bool = True) -> int | None:
    if raw is None or raw == "":
        if required:
            raise missing(param)
        return None
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise invalid(f"Invalid integer: {param}", param=param, code="parameter_invalid_integer")
    text = str(raw)
    if not re.fullmatch(r"-?[0-9]{1,12}", text):
        raise invalid(f"Invalid integer: {param}", param=param, code="parameter_invalid_integer")
    value = int(text)
    if value < 1:
        raise invalid(
            "This value must be greater than or equal to 1.", param=param, code="amount_too_small"
        )
    if value > MAX_AMOUNT:
        raise invalid(
            f"Amount must be no more than {MAX_AMOUNT}", param=param, code="amount_too_large"
        )
    return value


def parse_currency(raw: object, param: str = "currency") -> str:
    if raw is None or raw == "":
        raise missing(param)
    text = str(raw).lower()
    if text not in CURRENCIES:
        raise invalid(
            "Invalid currency. The sandbox supports: " + ", ".join(sorted(CURRENCIES)) + ".",
            param=param,
            code="parameter_invalid_currency",
        )
    return text


@dataclass(frozen=True, slots=True)
class FeeModel:
    """Processing fee per captured charge: `percent_bps` basis points of the amount, rounded
    half up, plus `fixed` minor units. Refunds carry no fee and do not return the original fee
    (as on Stripe), so a refund's net is minus its amount."""

    percent_bps: int = 290
    fixed: int = 30

    def fee(self, amount: int) -> int:
        return (amount * self.percent_bps + 5000) // 10000 + self.fixed


# ---------------------------------------------------------------- cards


class Brand(StrEnum):
    visa = "visa"
    mastercard = "mastercard"
    amex = "amex"
    discover = "discover"
    diners = "diners"
    jcb = "jcb"
    unionpay = "unionpay"
    unknown = "unknown"


def card_brand(digits: str) -> Brand:
    """The card network from the issuer prefix."""
    two, four = int(digits[:2] or 0), int(digits[:4] or 0)
    if digits.startswith("4"):
        return Brand.visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return Brand.mastercard
    if two in (34, 37):
        return Brand.amex
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3] or 0) <= 649:
        return Brand.discover
    if two in (36, 38, 39) or 300 <= int(digits[:3] or 0) <= 305:
        return Brand.diners
    if 3528 <= four <= 3589:
        return Brand.jcb
    if digits.startswith("62") or digits.startswith("81"):
        return Brand.unionpay
    return Brand.unknown


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class Decline:
    """How a confirmation with this card fails, exactly as Stripe reports it."""

    code: str
    decline_code: str
    message: str
    param: str | None = None
    network_status: str = "declined_by_network"
    outcome_type: str = "issuer_declined"


_DECLINED = "Your card was declined."
DECLINES: dict[str, Decline] = {
    "generic_decline": Decline("card_declined", "generic_decline", _DECLINED),
    "insufficient_funds": Decline(
        "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "lost_card": Decline("card_declined", "lost_card", _DECLINED),
    "stolen_card": Decline("card_declined", "stolen_card", _DECLINED),
    "expired_card": Decline(
        "expired_card", "expired_card", "Your card has expired.", param="exp_month"
    ),
    "incorrect_cvc": Decline(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", param="cvc"
    ),
    "processing_error": Decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
        network_status="not_sent_to_network",
        outcome_type="invalid",
    ),
    "test_mode_live_card": Decline(
        "card_declined",
        "test_mode_live_card",
        "Your card was declined. Your request was in test mode, but used a non test (live) "
        "card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
        network_status="not_sent_to_network",
        outcome_type="invalid",
    ),
}


@dataclass(frozen=True, slots=True)
class TestCard:
    """A documented test card: what it is and what confirming a payment with it does."""

    __test__ = False  # not a pytest class

    number: str
    brand: Brand
    outcome: str  # "succeeded" or a key of DECLINES
    funding: str = "credit"
    country: str = "US"
    description: str = ""


TEST_CARDS: tuple[TestCard, ...] = (
    TestCard("4242424242424242", Brand.visa, "succeeded", description="Visa"),
    TestCard("4000056655665556", Brand.visa, "succeeded", "debit", description="Visa (debit)"),
    TestCard("5555555555554444", Brand.mastercard, "succeeded", description="Mastercard"),
    TestCard(
        "2223003122003222", Brand.mastercard, "succeeded", description="Mastercard (2-series)"
    ),
    TestCard(
        "5200828282828210", Brand.mastercard, "succeeded", "debit", description="Mastercard (debit)"
    ),
    TestCard(
        "5105105105105100",
        Brand.mastercard,
        "succeeded",
        "prepaid",
        description="Mastercard (prepaid)",
    ),
    TestCard("378282246310005", Brand.amex, "succeeded", description="American Express"),
    TestCard("371449635398431", Brand.amex, "succeeded", description="American Express"),
    TestCard("6011111111111117", Brand.discover, "succeeded", description="Discover"),
    TestCard("3056930009020004", Brand.diners, "succeeded", description="Diners Club"),
    TestCard("36227206271667", Brand.diners, "succeeded", description="Diners Club (14 digits)"),
    TestCard("3566002020360505", Brand.jcb, "succeeded", description="JCB"),
    TestCard("6200000000000005", Brand.unionpay, "succeeded", description="UnionPay"),
    TestCard("4000000000000002", Brand.visa, "generic_decline", description="Generic decline"),
    TestCard(
        "4000000000009995", Brand.visa, "insufficient_funds", description="Insufficient funds"
    ),
    TestCard("4000000000009987", Brand.visa, "lost_card", description="Lost card"),
    TestCard("4000000000009979", Brand.visa, "stolen_card", description="Stolen card"),
    TestCard("4000000000000069", Brand.visa, "expired_card", description="Expired card"),
    TestCard("4000000000000127", Brand.visa, "incorrect_cvc", description="Incorrect CVC"),
    TestCard("4000000000000119", Brand.visa, "processing_error", description="Processing error"),
    TestCard(
        "4000000000000341",
        Brand.visa,
        "generic_decline",
        description="Decline on charge (localstripe's decline card)",
    ),
)
_TEST_CARDS_BY_NUMBER = {card.number: card for card in TEST_CARDS}


@dataclass(frozen=True, slots=True)
class CardFacts:
    """Everything the sandbox keeps about a card: never the number, never the CVC."""

    brand: Brand
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    funding: str
    country: str
    outcome: str  # "succeeded" or a key of DECLINES
    cvc_provided: bool


def _fingerprint(key: bytes, digits: str) -> str:
    # Keyed (HMAC-SHA256), never a plain hash of the PAN (PCI DSS 3.5.1).
    digest = hmac.new(key, digits.encode(), hashlib.sha256).digest()
    return "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:16])


def read_card(
    number: object,
    exp_month: object,
    exp_year: object,
    cvc: object,
    *,
    today: date,
    fingerprint_key: bytes,
    param_prefix: str = "card",
) -> CardFacts:
    """Validate raw card fields and reduce them to `CardFacts` (Stripe's card_error codes).

    The raw values go no further than this function; error messages never contain them.
    """

    def p(name: str) -> str:
        return f"{param_prefix}[{name}]" if param_prefix else name

    if number is None or number == "":
        raise missing(p("number"))
    digits = re.sub(r"[ \-]", "", str(number))
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_valid(digits):
        raise StripeError(
            402,
            "Your card number is incorrect.",
            type="card_error",
            code="incorrect_number",
            param=p("number"),
        )
    if exp_month is None or exp_month == "":
        raise missing(p("exp_month"))
    if exp_year is None or exp_year == "":
        raise missing(p("exp_year"))
    month_text, year_text = str(exp_month).strip(), str(exp_year).strip()
    if not month_text.isdigit() or not 1 <= int(month_text) <= 12:
        raise StripeError(
            402,
            "Your card's expiration month is invalid.",
            type="card_error",
            code="invalid_expiry_month",
            param=p("exp_month"),
        )
    if not year_text.isdigit() or len(year_text) not in (2, 4):
        raise StripeError(
            402,
            "Your card's expiration year is invalid.",
            type="card_error",
            code="invalid_expiry_year",
            param=p("exp_year"),
        )
    month, year = int(month_text), int(year_text)
    if year < 100:
        year += 2000
    if (year, month) < (today.year, today.month) or year > today.year + 50:
        raise StripeError(
            402,
            "Your card's expiration year is invalid.",
            type="card_error",
            code="invalid_expiry_year",
            param=p("exp_year"),
        )
    brand = card_brand(digits)
    cvc_text = "" if cvc is None else str(cvc).strip()
    if cvc_text:
        expected = (4,) if brand is Brand.amex else (3,)
        if not cvc_text.isdigit() or len(cvc_text) not in expected:
            raise StripeError(
                402,
                "Your card's security code is invalid.",
                type="card_error",
                code="invalid_cvc",
                param=p("cvc"),
            )
    test_card = _TEST_CARDS_BY_NUMBER.get(digits)
    return CardFacts(
        brand=brand,
        last4=digits[-4:],
        exp_month=month,
        exp_year=year,
        fingerprint=_fingerprint(fingerprint_key, digits),
        funding=test_card.funding if test_card else "credit",
        country=test_card.country if test_card else "US",
        # A number that is not a documented test card is treated as Stripe treats a live card
        # in test mode: declined.
        outcome=test_card.outcome if test_card else "test_mode_live_card",
        cvc_provided=bool(cvc_text),
    )


# ---------------------------------------------------------------- statuses and events


class PaymentIntentStatus(StrEnum):
    requires_payment_method = "requires_payment_method"
    requires_confirmation = "requires_confirmation"
    requires_action = "requires_action"
    processing = "processing"
    requires_capture = "requires_capture"
    canceled = "canceled"
    succeeded = "succeeded"


class SessionStatus(StrEnum):
    open = "open"
    complete = "complete"
    expired = "expired"


EVENT_TYPES = frozenset(
    {
        "payment_intent.created",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.amount_capturable_updated",
        "charge.succeeded",
        "charge.failed",
        "charge.captured",
        "charge.refunded",
        "refund.created",
        "checkout.session.completed",
        "checkout.session.expired",
    }
)


def sign_payload(secret: str, timestamp: int, payload: bytes) -> str:
    """Stripe's signature header: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    signed = str(timestamp).encode() + b"." + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def retry_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Backoff before attempt `attempt + 1` after `attempt` failures: base·2^(n-1), capped."""
    return float(min(max_s, base_s * (2.0 ** max(0, attempt - 1))))


# ---------------------------------------------------------------- settlement


@dataclass(frozen=True, slots=True)
class SettlementRow:
    """One line of the daily settlement file (amounts in minor units, signed)."""

    psp_reference: str
    type: str
    amount: int
    fee: int
    net: int
    currency: str
    date: date
    payment_intent: str
    balance_transaction: str
    reference: str

    HEADER = (
        "psp_reference",
        "type",
        "amount",
        "fee",
        "net",
        "currency",
        "date",
        "payment_intent",
        "balance_transaction",
        "reference",
    )

    def cells(self) -> tuple[str, ...]:
        return (
            self.psp_reference,
            self.type,
            str(self.amount),
            str(self.fee),
            str(self.net),
            self.currency,
            self.date.isoformat(),
            self.payment_intent,
            self.balance_transaction,
            self.reference,
        )


def utc_day_bounds(day: date) -> tuple[int, int]:
    """[start, end) of a UTC day as unix seconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(start.timestamp()), int(start.timestamp()) + 86400


# ---------------------------------------------------------------- faults


class FaultKind(StrEnum):
    latency = "latency"  # add `ms` to every matching API request
    timeout = "timeout"  # hold the response `hold_s` (after executing when `execute`)
    error = "error"  # answer `status` (5xx) without executing
    webhook_drop = "webhook_drop"  # never deliver the event
    webhook_duplicate = "webhook_duplicate"  # deliver the event twice
    webhook_out_of_order = "webhook_out_of_order"  # hold `next` events, release them reversed


@dataclass
class Fault:
    """One active fault. `next` counts down the requests/events it still applies to
    (None: unlimited); `rate` (0-1) applies it to that share of them instead."""

    kind: FaultKind
    next: int | None = None
    rate: float | None = None
    ms: int = 0
    hold_s: float = 30.0
    execute: bool = True
    status: int = 500
    path_prefix: str = "/v1/"
    spacing_ms: int = 100
    id: str = field(default_factory=lambda: new_id("flt", 12))

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "next": self.next,
            "rate": self.rate,
            "ms": self.ms,
            "hold_s": self.hold_s,
            "execute": self.execute,
            "status": self.status,
            "path_prefix": self.path_prefix,
            "spacing_ms": self.spacing_ms,
        }


def parse_fault(raw: Mapping[str, Any]) -> Fault:
    """A fault from the admin endpoint's JSON body; refuses unknown kinds and bad numbers."""
    try:
        kind = FaultKind(str(raw.get("kind")))
    except ValueError:
        raise invalid(
            "kind must be one of: " + ", ".join(k.value for k in FaultKind), param="kind"
        ) from None
    allowed = {
        "kind",
        "next",
        "rate",
        "ms",
        "hold_s",
        "execute",
        "status",
        "path_prefix",
        "spacing_ms",
    }
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise invalid(f"Received unknown parameter: {unknown[0]}", param=unknown[0])

    def number(name: str, cast: type, low: float, high: float) -> Any:
        value = raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(f"{name} must be a number", param=name)
        if not low <= value <= high:
            raise invalid(f"{name} must be between {low} and {high}", param=name)
        return cast(value)

    fault = Fault(kind=kind)
    fault.next = number("next", int, 1, 1_000_000)
    fault.rate = number("rate", float, 0.0, 1.0)
    if fault.next is not None and fault.rate is not None:
        raise invalid("give either next or rate, not both", param="rate")
    if kind is FaultKind.webhook_out_of_order and (fault.next is None or fault.next < 2):
        raise invalid("webhook_out_of_order needs next >= 2", param="next")
    fault.ms = number("ms", int, 0, 120_000) or 0
    hold = number("hold_s", float, 0.0, 600.0)
    fault.hold_s = 30.0 if hold is None else hold
    fault.status = number("status", int, 500, 599) or 500
    fault.spacing_ms = number("spacing_ms", int, 0, 60_000) or 100
    if "execute" in raw:
        if not isinstance(raw["execute"], bool):
            raise invalid("execute must be a boolean", param="execute")
        fault.execute = raw["execute"]
    prefix = raw.get("path_prefix", "/v1/")
    if not isinstance(prefix, str) or not prefix.startswith("/v1/"):
        raise invalid("path_prefix must start with /v1/", param="path_prefix")
    fault.path_prefix = prefix
    if kind is FaultKind.latency and not fault.ms:
        raise invalid("latency needs ms", param="ms")
    return fault
