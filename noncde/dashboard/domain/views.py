"""noncde.dashboard (non-CDE): what the pages show, built from the published language; pure.

Card data is shown masked only: brand, last four digits and expiry (PCI DSS 3.4.1). Nothing
here reads a token, a BIN or a fingerprint into a view, and event summaries are written from
named fields, never by dumping an event's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from noncde.api.domain import Charge, ChargeStatus, Refund

# Stripe's zero-decimal and three-decimal currencies; every other one has two decimals.
_ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905 - one line of codes
)
_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def decimals(currency: str) -> int:
    code = currency.lower()
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def format_money(amount: int, currency: str) -> str:
    """`1234, "usd"` -> `12.34 USD` (integer arithmetic only; money is never a float)."""
    places = decimals(currency)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**places) if places else (abs(amount), 0)
    text = f"{whole:,}" + (f".{part:0{places}d}" if places else "")
    return f"{sign}{text} {currency.upper()}"


def parse_money(text: str, currency: str) -> int | None:
    """`"12.34"` in USD -> 1234; None when it is not a plain positive decimal amount."""
    value = text.strip().replace(",", "")
    places = decimals(currency)
    if not value or value.count(".") > 1:
        return None
    whole, _, part = value.partition(".")
    if not whole.isdigit() or (part and not part.isdigit()) or len(part) > places:
        return None
    if len(whole) > 9:
        return None
    scale: int = 10**places
    return int(whole) * scale + (int(part.ljust(places, "0")) if places else 0)


@dataclass(frozen=True, slots=True)
class MaskedCard:
    """Brand, last four and expiry: all a staff member ever sees of a card."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int

    def __str__(self) -> str:
        expiry = f"{self.exp_month:02d}/{self.exp_year}" if self.exp_month else "--/--"
        return f"{self.brand.title()} \u2022\u2022\u2022\u2022 {self.last4} (exp {expiry})"

    @classmethod
    def from_data(cls, card: Mapping[str, Any] | None) -> MaskedCard | None:
        if not card:
            return None
        last4 = str(card.get("last4", ""))
        return cls(
            brand=str(card.get("brand", "card"))[:20],
            last4=last4[-4:] if last4.isdigit() else "????",
            exp_month=int(card.get("exp_month") or 0),
            exp_year=int(card.get("exp_year") or 0),
        )


@dataclass(frozen=True, slots=True)
class PaymentQuery:
    """The payments search form: every given criterion must match."""

    charge_id: str | None = None
    merchant_id: str | None = None
    status: str | None = None
    created_from: date | None = None
    created_to: date | None = None  # inclusive: the whole day
    amount: int | None = None  # minor units
    last4: str | None = None
    limit: int = 50

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.charge_id,
                self.merchant_id,
                self.status,
                self.created_from,
                self.created_to,
                self.amount is not None,
                self.last4,
            )
        )

    def to_audit(self) -> dict[str, Any]:
        """The criteria as the audit log records them (last4 is display data, never a PAN)."""
        return {
            "charge_id": self.charge_id,
            "merchant_id": self.merchant_id,
            "status": self.status,
            "from": self.created_from.isoformat() if self.created_from else None,
            "to": self.created_to.isoformat() if self.created_to else None,
            "amount": self.amount,
            "last4": self.last4,
        }


@dataclass(frozen=True, slots=True)
class ChargeRow:
    id: str
    merchant_id: str | None
    status: str
    amount: int
    currency: str
    created: datetime
    card: MaskedCard | None
    amount_refunded: int = 0
    dead_lettered: bool = False

    @property
    def money(self) -> str:
        return format_money(self.amount, self.currency)


@dataclass(frozen=True, slots=True)
class RefundRow:
    id: str
    amount: int
    currency: str
    status: str
    created: datetime
    reason: str | None = None
    failure_code: str | None = None

    @property
    def money(self) -> str:
        return format_money(self.amount, self.currency)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    type: str
    summary: str
    version: int


@dataclass(frozen=True, slots=True)
class ChargeDetail:
    row: ChargeRow
    flow: str
    capture: bool
    description: str | None
    amount_captured: int
    amount_refundable: int
    psp_reference: str | None
    failure_code: str | None
    failure_message: str | None
    decline_code: str | None
    risk_decision: str | None
    risk_reasons: tuple[str, ...]
    dead_letter: Mapping[str, str] | None
    refunds: tuple[RefundRow, ...] = field(default_factory=tuple)


def refund_row(refund: Refund) -> RefundRow:
    return RefundRow(
        id=refund.id,
        amount=refund.amount,
        currency=refund.currency,
        status=str(refund.status),
        created=refund.created,
        reason=refund.reason,
        failure_code=refund.failure_code,
    )


def charge_row(charge: Charge) -> ChargeRow:
    card = charge.payment_method.card
    return ChargeRow(
        id=charge.id,
        merchant_id=charge.merchant_id,
        status=str(charge.status),
        amount=charge.amount,
        currency=charge.currency,
        created=charge.created,
        card=MaskedCard(card.brand, card.last4, card.exp_month, card.exp_year) if card else None,
        amount_refunded=charge.amount_refunded,
        dead_lettered=charge.dead_letter is not None,
    )


def charge_detail(charge: Charge) -> ChargeDetail:
    return ChargeDetail(
        row=charge_row(charge),
        flow=str(charge.flow),
        capture=charge.capture,
        description=charge.description,
        amount_captured=charge.amount_captured,
        amount_refundable=charge.amount_refundable,
        psp_reference=charge.psp_reference,
        failure_code=charge.failure_code,
        failure_message=charge.failure_message,
        decline_code=charge.decline_code,
        risk_decision=str(charge.risk_decision) if charge.risk_decision else None,
        risk_reasons=tuple(charge.risk_reasons),
        dead_letter=dict(charge.dead_letter) if charge.dead_letter else None,
        refunds=tuple(
            refund_row(r) for r in sorted(charge.refunds, key=lambda r: r.created, reverse=True)
        ),
    )


def is_refundable(detail: ChargeDetail) -> bool:
    return detail.row.status == ChargeStatus.SUCCEEDED and detail.amount_refundable > 0


def describe_event(event_type: str, data: Mapping[str, Any], currency: str) -> str:
    """One line for a timeline entry, from named fields only (never a token or card data)."""

    def money(key: str) -> str:
        value = data.get(key)
        return format_money(int(value), currency) if isinstance(value, int) else "?"

    if event_type == "charge.requested":
        card = MaskedCard.from_data((data.get("payment_method") or {}).get("card"))
        via = data.get("flow", "?")
        return f"Charge requested: {money('amount')} by {card or 'payment method'} ({via})"
    if event_type == "charge.risk_assessed":
        reasons = ", ".join(str(r) for r in data.get("reasons") or []) or "no reasons"
        return f"Risk decision: {data.get('decision', '?')} ({reasons})"
    if event_type == "charge.authorized":
        return f"Authorized {money('amount_authorized')}"
    if event_type == "charge.captured":
        return f"Captured {money('amount_captured')} (total {money('amount_captured_total')})"
    if event_type == "charge.failed":
        decline = f", decline code {data['decline_code']}" if data.get("decline_code") else ""
        return f"Failed: {data.get('failure_code', '?')}{decline}"
    if event_type == "charge.capture_requested":
        return f"Capture requested: {money('amount')}"
    if event_type == "charge.cancel_requested":
        return "Cancel requested"
    if event_type == "charge.canceled":
        return "Canceled"
    if event_type == "charge.dead_lettered":
        return (
            f"Dead-lettered: {data.get('operation', '?')} job {data.get('job_id', '?')}: "
            f"{str(data.get('reason', '?'))[:200]}"
        )
    if event_type == "refund.requested":
        return f"Refund {data.get('refund_id', '?')} requested: {money('amount')}"
    if event_type == "refund.succeeded":
        return f"Refund {data.get('refund_id', '?')} succeeded: {money('amount')}"
    if event_type == "refund.failed":
        return f"Refund {data.get('refund_id', '?')} failed: {data.get('failure_code', '?')}"
    return event_type
