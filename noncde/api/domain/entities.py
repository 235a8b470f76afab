"""noncde.api (non-CDE), published language: Charge, Refund and PaymentSession, folded from their
event streams, and their API (Stripe-style) representation.

`Charge.fold(events)` and `PaymentSession.fold(events)` rebuild the current state from a stream
(the API's always-fresh reads); `apply` folds one more event onto a state (read models keep a
snapshot, `to_state()`/`from_state()`, and apply each new event once, by stream version).
Folding never fails on an event it does not know: it is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from noncde.api.domain.events import (
    ChargeAuthorized,
    ChargeCanceled,
    ChargeCaptured,
    ChargeCaptureRequested,
    ChargeDeadLettered,
    ChargeFailed,
    ChargeRequested,
    ChargeRiskAssessed,
    EventLike,
    EventType,
    Flow,
    PaymentMethodRef,
    PaymentSessionCompleted,
    PaymentSessionCreated,
    RefundFailed,
    RefundRequested,
    RefundSucceeded,
    RiskDecision,
    parse_event,
)
from noncde.api.domain.time import parse_rfc3339, rfc3339, unix


class ChargeStatus(StrEnum):
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SessionStatus(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


CHARGE_EVENT_TYPES = frozenset(t for t in EventType if t.value.startswith(("charge.", "refund.")))
SESSION_EVENT_TYPES = frozenset(t for t in EventType if t.value.startswith("payment_session."))


# ---------------------------------------------------------------- refunds


@dataclass
class Refund:
    """A refund of (part of) a captured charge; it lives in its charge's stream."""

    id: str
    charge_id: str
    merchant_id: str | None
    amount: int
    currency: str
    status: RefundStatus
    created: datetime
    reason: str | None = None
    psp_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "charge_id": self.charge_id,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": str(self.status),
            "created": rfc3339(self.created),
            "reason": self.reason,
            "psp_reference": self.psp_reference,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Refund:
        return cls(
            id=state["id"],
            charge_id=state["charge_id"],
            merchant_id=state.get("merchant_id"),
            amount=int(state["amount"]),
            currency=state["currency"],
            status=RefundStatus(state["status"]),
            created=parse_rfc3339(state["created"]),
            reason=state.get("reason"),
            psp_reference=state.get("psp_reference"),
            failure_code=state.get("failure_code"),
            failure_message=state.get("failure_message"),
        )

    def to_api(self, livemode: bool = False) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "charge": self.charge_id,
            "currency": self.currency,
            "status": str(self.status),
            "reason": self.reason,
            "created": unix(self.created),
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "livemode": livemode,
        }


# ---------------------------------------------------------------- charges


@dataclass
class Charge:
    """A charge and its refunds, as folded from `charge-<id>`.

    Status follows the last status-bearing event (requested → processing, authorized →
    requires_capture, captured → succeeded, failed → failed, canceled → canceled); a pending
    capture or cancel is shown beside the status until its outcome arrives.
    """

    id: str
    merchant_id: str | None
    amount: int
    currency: str
    capture: bool
    payment_method: PaymentMethodRef
    flow: Flow
    created: datetime
    status: ChargeStatus = ChargeStatus.PROCESSING
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    session_id: str | None = None
    amount_authorized: int = 0
    amount_captured: int = 0
    capture_requested: int | None = None
    cancel_requested: bool = False
    psp_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    decline_code: str | None = None
    risk_decision: RiskDecision | None = None
    risk_reasons: list[str] = field(default_factory=list)
    risk_rules: list[str] = field(default_factory=list)
    rules_version: int | None = None
    dead_letter: dict[str, str] | None = None
    refunds: list[Refund] = field(default_factory=list)
    version: int = 0
    updated: datetime | None = None

    # ------------------------------------------------------------ derived amounts

    @property
    def amount_refunded(self) -> int:
        return sum(r.amount for r in self.refunds if r.status is RefundStatus.SUCCEEDED)

    @property
    def amount_refund_pending(self) -> int:
        return sum(r.amount for r in self.refunds if r.status is RefundStatus.PENDING)

    @property
    def amount_refundable(self) -> int:
        """What a new refund may still take: captured - refunded - refunds in flight."""
        if self.status is not ChargeStatus.SUCCEEDED:
            return 0
        return max(0, self.amount_captured - self.amount_refunded - self.amount_refund_pending)

    @property
    def amount_capturable(self) -> int:
        if self.status is not ChargeStatus.REQUIRES_CAPTURE:
            return 0
        return self.amount_authorized or self.amount

    def refund(self, refund_id: str) -> Refund | None:
        for refund in self.refunds:
            if refund.id == refund_id:
                return refund
        return None

    # ------------------------------------------------------------ folding

    @classmethod
    def start(cls, event: EventLike, merchant_id: str | None) -> Charge | None:
        """The charge begun by a `charge.requested` event (None for any other event)."""
        if event.type != EventType.CHARGE_REQUESTED:
            return None
        requested = ChargeRequested.from_data(event.data)
        assert isinstance(requested, ChargeRequested)
        charge = cls(
            id=requested.charge_id,
            merchant_id=merchant_id,
            amount=requested.amount,
            currency=requested.currency,
            capture=requested.capture,
            payment_method=requested.payment_method,
            flow=requested.flow,
            created=parse_rfc3339(requested.created),
            description=requested.description,
            metadata=dict(requested.metadata),
            session_id=requested.session_id,
            version=event.version,
            updated=event.recorded_at,
        )
        return charge

    @classmethod
    def fold(cls, events: Iterable[EventLike], merchant_id: str | None = None) -> Charge | None:
        """The charge of a stream, or None when it holds no `charge.requested` first."""
        charge: Charge | None = None
        for event in events:
            if charge is None:
                owner = merchant_id or getattr(event, "merchant_id", None)
                charge = cls.start(event, owner)
                if charge is None:
                    return None
                continue
            charge.apply(event)
        return charge

    def apply(self, event: EventLike) -> None:
        """Fold one more event of this charge's stream onto the state."""
        if event.version <= self.version:
            return  # already applied (at-least-once delivery)
        self.version = event.version
        self.updated = event.recorded_at
        parsed = parse_event(event.type, event.data)
        if isinstance(parsed, ChargeRiskAssessed):
            self.risk_decision = parsed.decision
            self.risk_reasons = list(parsed.reasons)
            self.risk_rules = list(parsed.rules)
            self.rules_version = parsed.rules_version
        elif isinstance(parsed, ChargeAuthorized):
            self.status = ChargeStatus.REQUIRES_CAPTURE
            self.amount_authorized = parsed.amount_authorized
            self.psp_reference = parsed.psp_reference
        elif isinstance(parsed, ChargeCaptured):
            self.status = ChargeStatus.SUCCEEDED
            self.amount_captured = parsed.amount_captured_total
            self.amount_authorized = max(self.amount_authorized, parsed.amount_captured_total)
            self.psp_reference = parsed.psp_reference
            self.capture_requested = None
        elif isinstance(parsed, ChargeFailed):
            self.status = ChargeStatus.FAILED
            self.failure_code = parsed.failure_code
            self.failure_message = parsed.failure_message
            self.decline_code = parsed.decline_code
            self.psp_reference = parsed.psp_reference or self.psp_reference
            self.capture_requested = None
        elif isinstance(parsed, ChargeCaptureRequested):
            self.capture_requested = parsed.amount
        elif event.type == EventType.CHARGE_CANCEL_REQUESTED:
            self.cancel_requested = True
        elif isinstance(parsed, ChargeCanceled):
            self.status = ChargeStatus.CANCELED
            self.cancel_requested = False
            self.psp_reference = parsed.psp_reference or self.psp_reference
        elif isinstance(parsed, ChargeDeadLettered):
            self.dead_letter = {
                "operation": parsed.operation,
                "reason": parsed.reason,
                "job_id": parsed.job_id,
            }
        elif isinstance(parsed, RefundRequested):
            if self.refund(parsed.refund_id) is None:
                self.refunds.append(
                    Refund(
                        id=parsed.refund_id,
                        charge_id=self.id,
                        merchant_id=self.merchant_id,
                        amount=parsed.amount,
                        currency=self.currency,
                        status=RefundStatus.PENDING,
                        created=event.recorded_at,
                        reason=parsed.reason,
                    )
                )
        elif isinstance(parsed, RefundSucceeded | RefundFailed):
            refund = self.refund(parsed.refund_id)
            if refund is None:
                refund = Refund(
                    id=parsed.refund_id,
                    charge_id=self.id,
                    merchant_id=self.merchant_id,
                    amount=getattr(parsed, "amount", 0),
                    currency=self.currency,
                    status=RefundStatus.PENDING,
                    created=event.recorded_at,
                )
                self.refunds.append(refund)
            if isinstance(parsed, RefundSucceeded):
                refund.status = RefundStatus.SUCCEEDED
                refund.amount = parsed.amount
                refund.psp_reference = parsed.psp_reference
            else:
                refund.status = RefundStatus.FAILED
                refund.failure_code = parsed.failure_code
                refund.failure_message = parsed.failure_message

    # ------------------------------------------------------------ snapshots

    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
            "currency": self.currency,
            "capture": self.capture,
            "payment_method": self.payment_method.to_data(),
            "flow": str(self.flow),
            "created": rfc3339(self.created),
            "status": str(self.status),
            "description": self.description,
            "metadata": dict(self.metadata),
            "session_id": self.session_id,
            "amount_authorized": self.amount_authorized,
            "amount_captured": self.amount_captured,
            "capture_requested": self.capture_requested,
            "cancel_requested": self.cancel_requested,
            "psp_reference": self.psp_reference,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "decline_code": self.decline_code,
            "risk_decision": str(self.risk_decision) if self.risk_decision else None,
            "risk_reasons": list(self.risk_reasons),
            "risk_rules": list(self.risk_rules),
            "rules_version": self.rules_version,
            "dead_letter": self.dead_letter,
            "refunds": [r.to_state() for r in self.refunds],
            "version": self.version,
            "updated": rfc3339(self.updated) if self.updated else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Charge:
        return cls(
            id=state["id"],
            merchant_id=state.get("merchant_id"),
            amount=int(state["amount"]),
            currency=state["currency"],
            capture=bool(state["capture"]),
            payment_method=PaymentMethodRef.from_data(state["payment_method"]),
            flow=Flow(state["flow"]),
            created=parse_rfc3339(state["created"]),
            status=ChargeStatus(state["status"]),
            description=state.get("description"),
            metadata=dict(state.get("metadata") or {}),
            session_id=state.get("session_id"),
            amount_authorized=int(state.get("amount_authorized") or 0),
            amount_captured=int(state.get("amount_captured") or 0),
            capture_requested=state.get("capture_requested"),
            cancel_requested=bool(state.get("cancel_requested")),
            psp_reference=state.get("psp_reference"),
            failure_code=state.get("failure_code"),
            failure_message=state.get("failure_message"),
            decline_code=state.get("decline_code"),
            risk_decision=RiskDecision(state["risk_decision"])
            if state.get("risk_decision")
            else None,
            risk_reasons=list(state.get("risk_reasons") or []),
            risk_rules=list(state.get("risk_rules") or []),
            rules_version=state.get("rules_version"),
            dead_letter=state.get("dead_letter"),
            refunds=[Refund.from_state(r) for r in state.get("refunds") or []],
            version=int(state.get("version") or 0),
            updated=parse_rfc3339(state["updated"]) if state.get("updated") else None,
        )

    # ------------------------------------------------------------ API object

    def outcome(self) -> dict[str, Any] | None:
        """Stripe-like `outcome`: the risk verdict and, once known, the PSP's."""
        if self.risk_decision is None and self.failure_code is None:
            return None
        if self.risk_decision is RiskDecision.BLOCK:
            kind = "blocked"
        elif self.status is ChargeStatus.FAILED:
            kind = "issuer_declined" if self.failure_code == "card_declined" else "invalid"
        elif self.risk_decision is RiskDecision.REVIEW:
            kind = "manual_review"
        elif self.status is ChargeStatus.PROCESSING:
            kind = "pending"  # risk allowed it; the PSP has not answered yet
        else:
            kind = "authorized"
        return {
            "type": kind,
            "risk_decision": str(self.risk_decision) if self.risk_decision else None,
            "reasons": list(self.risk_reasons),
            "rules_version": self.rules_version,
        }

    def to_api(self, livemode: bool = False) -> dict[str, Any]:
        card = self.payment_method.card
        shown_card = None
        if card is not None:
            shown_card = {
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                "fingerprint": card.fingerprint,
                "country": card.country,
            }
        refunds = sorted(self.refunds, key=lambda r: r.created, reverse=True)
        return {
            "id": self.id,
            "object": "charge",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "captured": self.amount_captured > 0,
            "refunded": self.amount_captured > 0 and self.amount_refunded >= self.amount_captured,
            "currency": self.currency,
            "status": str(self.status),
            "capture": self.capture,
            "capture_requested": self.capture_requested,
            "cancel_requested": self.cancel_requested,
            "created": unix(self.created),
            "description": self.description,
            "metadata": dict(self.metadata),
            "flow": str(self.flow),
            "payment_session": self.session_id,
            "payment_method": self.payment_method.token,
            "payment_method_details": {"type": str(self.payment_method.type), "card": shown_card},
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "outcome": self.outcome(),
            "dead_lettered": self.dead_letter is not None,
            "refunds": {
                "object": "list",
                "data": [r.to_api(livemode) for r in refunds],
                "has_more": False,
                "total_count": len(refunds),
            },
            "livemode": livemode,
        }


# ---------------------------------------------------------------- payment sessions


@dataclass
class PaymentSession:
    """A hosted-redirect session, as folded from `payment_session-<id>`. One-time use: once
    complete or expired it never opens again; an open session past `expires_at` reads as
    expired even before its `payment_session.expired` event arrives."""

    id: str
    merchant_id: str | None
    amount: int
    currency: str
    success_url: str
    cancel_url: str
    expires_at: datetime
    url: str
    psp_session_id: str
    created: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    status: SessionStatus = SessionStatus.OPEN
    charge_id: str | None = None
    psp_reference: str | None = None
    version: int = 0

    @classmethod
    def fold(
        cls, events: Iterable[EventLike], merchant_id: str | None = None
    ) -> PaymentSession | None:
        session: PaymentSession | None = None
        for event in events:
            if session is None:
                if event.type != EventType.PAYMENT_SESSION_CREATED:
                    return None
                created = PaymentSessionCreated.from_data(event.data)
                assert isinstance(created, PaymentSessionCreated)
                session = cls(
                    id=created.session_id,
                    merchant_id=merchant_id or getattr(event, "merchant_id", None),
                    amount=created.amount,
                    currency=created.currency,
                    success_url=created.success_url,
                    cancel_url=created.cancel_url,
                    expires_at=parse_rfc3339(created.expires_at),
                    url=created.url,
                    psp_session_id=created.psp_session_id,
                    created=event.recorded_at,
                    metadata=dict(created.metadata),
                    version=event.version,
                )
                continue
            session.apply(event)
        return session

    def apply(self, event: EventLike) -> None:
        if event.version <= self.version:
            return
        self.version = event.version
        parsed = parse_event(event.type, event.data)
        if isinstance(parsed, PaymentSessionCompleted):
            self.status = SessionStatus.COMPLETE
            self.charge_id = parsed.charge_id
            self.psp_reference = parsed.psp_reference
        elif event.type == EventType.PAYMENT_SESSION_EXPIRED and self.status is SessionStatus.OPEN:
            self.status = SessionStatus.EXPIRED

    def status_at(self, now: datetime) -> SessionStatus:
        if self.status is SessionStatus.OPEN and now >= self.expires_at:
            return SessionStatus.EXPIRED
        return self.status

    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
            "currency": self.currency,
            "success_url": self.success_url,
            "cancel_url": self.cancel_url,
            "expires_at": rfc3339(self.expires_at),
            "url": self.url,
            "psp_session_id": self.psp_session_id,
            "created": rfc3339(self.created),
            "metadata": dict(self.metadata),
            "status": str(self.status),
            "charge_id": self.charge_id,
            "psp_reference": self.psp_reference,
            "version": self.version,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PaymentSession:
        return cls(
            id=state["id"],
            merchant_id=state.get("merchant_id"),
            amount=int(state["amount"]),
            currency=state["currency"],
            success_url=state["success_url"],
            cancel_url=state["cancel_url"],
            expires_at=parse_rfc3339(state["expires_at"]),
            url=state["url"],
            psp_session_id=state["psp_session_id"],
            created=parse_rfc3339(state["created"]),
            metadata=dict(state.get("metadata") or {}),
            status=SessionStatus(state["status"]),
            charge_id=state.get("charge_id"),
            psp_reference=state.get("psp_reference"),
            version=int(state.get("version") or 0),
        )

    def to_api(self, now: datetime, livemode: bool = False) -> dict[str, Any]:
        status = self.status_at(now)
        return {
            "id": self.id,
            "object": "payment_session",
            "amount": self.amount,
            "currency": self.currency,
            "status": str(status),
            # Like Stripe Checkout: the URL is shown only while the session can be paid.
            "url": self.url if status is SessionStatus.OPEN else None,
            "success_url": self.success_url,
            "cancel_url": self.cancel_url,
            "expires_at": unix(self.expires_at),
            "created": unix(self.created),
            "charge": self.charge_id,
            "metadata": dict(self.metadata),
            "livemode": livemode,
        }


def event_object(event: EventLike, livemode: bool = False) -> dict[str, Any]:
    """The Stripe-style API (and webhook) representation of a stored event."""
    return {
        "id": event.id,
        "object": "event",
        "type": event.type,
        "created": unix(event.recorded_at),
        "data": {"object": dict(event.data)},
        "request": {"id": getattr(event, "correlation_id", None)},
        "livemode": livemode,
    }
