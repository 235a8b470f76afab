"""noncde.api (non-CDE), published language: the events of charges, refunds and payment sessions.

These are the facts the non-CDE zone records in the event store (noncde.platform) and that the
workers, read models, ledger, webhooks and dashboard consume (/work/notes/noncde-events.md is
the contract). Events are past tense, immutable and token-only: a payment method is a vault or
PSP token plus display data (brand, last four, expiry, keyed fingerprint, BIN and its country),
never a card number or a CVC (DESIGN.md rule 2; PCI DSS 3.2.1, 3.3.1).

Each class maps to one `type` string; `to_data()` gives the JSON object stored as the event's
`data`, `parse_event(type, data)` reads it back (unknown fields are ignored and unknown types
return None, so old readers survive new events).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol


class EventType(StrEnum):
    """Every event type of the published language."""

    CHARGE_REQUESTED = "charge.requested"
    CHARGE_RISK_ASSESSED = "charge.risk_assessed"
    CHARGE_AUTHORIZED = "charge.authorized"
    CHARGE_CAPTURED = "charge.captured"
    CHARGE_FAILED = "charge.failed"
    CHARGE_CAPTURE_REQUESTED = "charge.capture_requested"
    CHARGE_CANCEL_REQUESTED = "charge.cancel_requested"
    CHARGE_CANCELED = "charge.canceled"
    CHARGE_DEAD_LETTERED = "charge.dead_lettered"
    REFUND_REQUESTED = "refund.requested"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    PAYMENT_SESSION_CREATED = "payment_session.created"
    PAYMENT_SESSION_COMPLETED = "payment_session.completed"
    PAYMENT_SESSION_EXPIRED = "payment_session.expired"


class Flow(StrEnum):
    """How the charge reached us: raw card via the CDE ingress, SDK token, hosted redirect."""

    S2S = "s2s"
    SDK = "sdk"
    REDIRECT = "redirect"


class RiskDecision(StrEnum):
    """The risk engine's verdict; `block` fails the charge with `risk_blocked`."""

    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class PaymentMethodType(StrEnum):
    VAULT_TOKEN = "vault_token"  # noqa: S105 - a payment method type, not a secret
    PSP_TOKEN = "psp_token"  # noqa: S105 - a payment method type, not a secret


class EventLike(Protocol):
    """What folding needs of a stored event (noncde.platform's RecordedEvent fits)."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...

    @property
    def version(self) -> int: ...

    @property
    def recorded_at(self) -> datetime: ...


# ---------------------------------------------------------------- value objects


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class CardDisplay:
    """Display data of a card: what may leave the CDE (PCI DSS 3.4.1: at most BIN + last 4).

    `fingerprint` is keyed inside the CDE per merchant (nobody here can compute or test it);
    `country` is the BIN's issuing country when known.
    """

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str | None = None
    bin: str | None = None
    country: str | None = None

    def to_data(self) -> dict[str, Any]:
        return _drop_none(
            {
                "brand": self.brand,
                "last4": self.last4,
                "exp_month": self.exp_month,
                "exp_year": self.exp_year,
                "fingerprint": self.fingerprint,
                "bin": self.bin,
                "country": self.country,
            }
        )

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CardDisplay:
        return cls(
            brand=str(data.get("brand", "unknown")),
            last4=str(data.get("last4", "")),
            exp_month=int(data.get("exp_month", 0)),
            exp_year=int(data.get("exp_year", 0)),
            fingerprint=data.get("fingerprint"),
            bin=data.get("bin"),
            country=data.get("country"),
        )


@dataclass(frozen=True, slots=True)
class PaymentMethodRef:
    """A tokenized payment method: a vault token (`tok_…`) or a PSP token (`pm_…`)."""

    type: PaymentMethodType
    token: str
    card: CardDisplay | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": str(self.type), "token": self.token}
        if self.card is not None:
            data["card"] = self.card.to_data()
        return data

    def job_data(self) -> dict[str, Any]:
        """The part the gateway needs: type and token (no display data)."""
        return {"type": str(self.type), "token": self.token}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PaymentMethodRef:
        card = data.get("card")
        return cls(
            type=PaymentMethodType(data["type"]),
            token=str(data["token"]),
            card=CardDisplay.from_data(card) if isinstance(card, Mapping) else None,
        )


# ---------------------------------------------------------------- events


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, PaymentMethodRef | CardDisplay):
        return value.to_data()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class DomainEvent:
    """Base of the event classes: `type`, `to_data()` and `from_data()`.

    Optional fields whose value is None are left out of the stored data.
    """

    type: ClassVar[EventType]
    _convert: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if value is None:
                continue
            data[item.name] = _plain(value)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> DomainEvent:
        kwargs: dict[str, Any] = {}
        for item in fields(cls):  # type: ignore[arg-type]
            if item.name in data and data[item.name] is not None:
                convert = cls._convert.get(item.name)
                raw = data[item.name]
                kwargs[item.name] = convert(raw) if convert else raw
        return cls(**kwargs)


@dataclass(frozen=True)
class ChargeRequested(DomainEvent):
    """A merchant asked for a charge (status `processing`); a `charge.authorize` job follows
    unless the risk engine blocked it. `created` is RFC 3339 UTC."""

    type: ClassVar[EventType] = EventType.CHARGE_REQUESTED
    _convert: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "payment_method": PaymentMethodRef.from_data,
        "flow": Flow,
    }

    charge_id: str
    amount: int
    currency: str
    capture: bool
    payment_method: PaymentMethodRef
    flow: Flow
    created: str
    session_id: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ChargeRiskAssessed(DomainEvent):
    """The synchronous risk verdict with its reason codes and the matched rule ids."""

    type: ClassVar[EventType] = EventType.CHARGE_RISK_ASSESSED
    _convert: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "decision": RiskDecision,
        "reasons": list,
        "rules": list,
    }

    charge_id: str
    decision: RiskDecision
    reasons: list[str]
    rules_version: int
    rules: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChargeAuthorized(DomainEvent):
    type: ClassVar[EventType] = EventType.CHARGE_AUTHORIZED

    charge_id: str
    amount_authorized: int
    psp_reference: str


@dataclass(frozen=True)
class ChargeCaptured(DomainEvent):
    """Money captured: `amount_captured` by this capture, `amount_captured_total` so far."""

    type: ClassVar[EventType] = EventType.CHARGE_CAPTURED

    charge_id: str
    amount_captured: int
    amount_captured_total: int
    psp_reference: str
    fee: int | None = None


@dataclass(frozen=True)
class ChargeFailed(DomainEvent):
    """The charge failed: `failure_code` is `card_declined`, `risk_blocked`,
    `processing_error`, `expired_card`..."""

    type: ClassVar[EventType] = EventType.CHARGE_FAILED

    charge_id: str
    failure_code: str
    failure_message: str
    decline_code: str | None = None
    psp_reference: str | None = None


@dataclass(frozen=True)
class ChargeCaptureRequested(DomainEvent):
    type: ClassVar[EventType] = EventType.CHARGE_CAPTURE_REQUESTED

    charge_id: str
    amount: int


@dataclass(frozen=True)
class ChargeCancelRequested(DomainEvent):
    type: ClassVar[EventType] = EventType.CHARGE_CANCEL_REQUESTED

    charge_id: str


@dataclass(frozen=True)
class ChargeCanceled(DomainEvent):
    type: ClassVar[EventType] = EventType.CHARGE_CANCELED

    charge_id: str
    psp_reference: str | None = None


@dataclass(frozen=True)
class ChargeDeadLettered(DomainEvent):
    """A job of this charge exhausted its retries (the charge keeps its last status)."""

    type: ClassVar[EventType] = EventType.CHARGE_DEAD_LETTERED

    charge_id: str
    job_id: str
    operation: str
    reason: str


@dataclass(frozen=True)
class RefundRequested(DomainEvent):
    type: ClassVar[EventType] = EventType.REFUND_REQUESTED

    refund_id: str
    charge_id: str
    amount: int
    reason: str | None = None


@dataclass(frozen=True)
class RefundSucceeded(DomainEvent):
    type: ClassVar[EventType] = EventType.REFUND_SUCCEEDED

    refund_id: str
    charge_id: str
    amount: int
    psp_reference: str


@dataclass(frozen=True)
class RefundFailed(DomainEvent):
    type: ClassVar[EventType] = EventType.REFUND_FAILED

    refund_id: str
    charge_id: str
    failure_code: str
    failure_message: str


@dataclass(frozen=True)
class PaymentSessionCreated(DomainEvent):
    """A hosted-redirect session exists at the PSP; `expires_at` is RFC 3339 UTC."""

    type: ClassVar[EventType] = EventType.PAYMENT_SESSION_CREATED

    session_id: str
    amount: int
    currency: str
    success_url: str
    cancel_url: str
    expires_at: str
    url: str
    psp_session_id: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentSessionCompleted(DomainEvent):
    """The buyer paid; the charge `charge_id` was recorded (flow `redirect`)."""

    type: ClassVar[EventType] = EventType.PAYMENT_SESSION_COMPLETED

    session_id: str
    charge_id: str
    psp_reference: str


@dataclass(frozen=True)
class PaymentSessionExpired(DomainEvent):
    type: ClassVar[EventType] = EventType.PAYMENT_SESSION_EXPIRED

    session_id: str


EVENT_CLASSES: dict[str, type[DomainEvent]] = {
    cls.type: cls
    for cls in (
        ChargeRequested,
        ChargeRiskAssessed,
        ChargeAuthorized,
        ChargeCaptured,
        ChargeFailed,
        ChargeCaptureRequested,
        ChargeCancelRequested,
        ChargeCanceled,
        ChargeDeadLettered,
        RefundRequested,
        RefundSucceeded,
        RefundFailed,
        PaymentSessionCreated,
        PaymentSessionCompleted,
        PaymentSessionExpired,
    )
}


def parse_event(event_type: str, data: Mapping[str, Any]) -> DomainEvent | None:
    """The typed event, or None for a type this release does not know."""
    cls = EVENT_CLASSES.get(event_type)
    return None if cls is None else cls.from_data(data)
