"""Event histories for the read models' tests: charges through every status, partial refunds,
hosted payment sessions and settlement fees, written straight to the event
store as the API and the job worker would have written them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from noncde.api.domain import (
    CardDisplay,
    ChargeAuthorized,
    ChargeCanceled,
    ChargeCaptured,
    ChargeCaptureRequested,
    ChargeDeadLettered,
    ChargeFailed,
    ChargeRequested,
    ChargeRiskAssessed,
    DomainEvent,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    PaymentSessionCompleted,
    PaymentSessionCreated,
    PaymentSessionExpired,
    RefundFailed,
    RefundRequested,
    RefundSucceeded,
    RiskDecision,
    charge_stream,
    rfc3339,
    session_stream,
)
from noncde.api.domain.ids import new_id
from noncde.platform.domain import NewEvent
from noncde.platform.ports import EventStore
from noncde.readmodels.domain.ledger import (
    FeeAssessed,
    LedgerEventType,
    settlement_stream,
)

MERCHANTS = ("mer_AlphaAlphaAlpha", "mer_BravoBravoBravo", "mer_CharlieCharlie")


@dataclass
class Expected:
    """What the scenario wrote, for assertions."""

    charges: dict[str, str] = field(default_factory=dict)  # id -> final status
    merchant_of: dict[str, str] = field(default_factory=dict)
    captured: dict[str, dict[str, int]] = field(default_factory=dict)  # merchant -> cur -> sum
    refunded: dict[str, dict[str, int]] = field(default_factory=dict)
    fees: dict[str, dict[str, int]] = field(default_factory=dict)
    refunds: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)
    psp_references: dict[str, str] = field(default_factory=dict)  # charge -> pi


def _add(table: dict[str, dict[str, int]], merchant: str, currency: str, amount: int) -> None:
    slot = table.setdefault(merchant, {})
    slot[currency] = slot.get(currency, 0) + amount


def _append(
    store: EventStore, stream: str, merchant: str | None, events: list[DomainEvent]
) -> None:
    version = store.stream_version(stream)
    store.append(
        stream,
        [
            NewEvent(
                e.type,
                e.to_data(),
                merchant_id=merchant,
                correlation_id="req_scenario",
                id=new_id("evt"),
            )
            for e in events
        ],
        expected_version=version,
    )


def write(store: EventStore, charges: int = 60, *, seed: int = 7) -> Expected:
    """Write `charges` charges (plus sessions and settlement fees), streams interleaved."""
    rng = random.Random(seed)
    expected = Expected()
    pending: list[tuple[str, str, str, int, str]] = []
    for n in range(charges):
        merchant = MERCHANTS[n % len(MERCHANTS)]
        currency = ("usd", "eur", "gbp")[n % 3]
        amount = 500 + rng.randint(0, 20_000)
        charge_id = new_id("ch")
        capture = n % 4 != 0
        method = PaymentMethodRef(
            PaymentMethodType.VAULT_TOKEN if n % 2 else PaymentMethodType.PSP_TOKEN,
            new_id("tok") if n % 2 else new_id("pm"),
            CardDisplay("visa", "4242", 12, 2031, fingerprint=new_id("fp")[3:], country="US"),
        )
        _append(
            store,
            charge_stream(charge_id),
            merchant,
            [
                ChargeRequested(
                    charge_id,
                    amount,
                    currency,
                    capture,
                    method,
                    Flow.S2S,
                    rfc3339(datetime(2026, 11, 1 + n % 27, 10, n % 60, tzinfo=UTC)),
                    description=f"order {n}",
                    metadata={"order": str(n)},
                ),
                ChargeRiskAssessed(charge_id, RiskDecision.ALLOW, [], 3, ["r1"]),
            ],
        )
        expected.merchant_of[charge_id] = merchant
        pending.append((charge_id, merchant, currency, amount, "capture" if capture else "auth"))
        # Interleave: finish an older charge now and then.
        if len(pending) > 3 and rng.random() < 0.7:
            _finish(store, pending.pop(0), rng, expected)
    while pending:
        _finish(store, pending.pop(0), rng, expected)
    _sessions(store, expected)
    _fees_and_reversal(store, expected)
    return expected


def _finish(
    store: EventStore,
    item: tuple[str, str, str, int, str],
    rng: random.Random,
    expected: Expected,
) -> None:
    charge_id, merchant, currency, amount, mode = item
    stream = charge_stream(charge_id)
    pi = new_id("pi")
    roll = rng.random()
    if roll < 0.12:
        _append(
            store,
            stream,
            merchant,
            [ChargeFailed(charge_id, "card_declined", "Declined.", "generic_decline", pi)],
        )
        expected.charges[charge_id] = "failed"
        return
    if roll < 0.16:
        _append(
            store,
            stream,
            merchant,
            [ChargeDeadLettered(charge_id, "job_x", "authorize", "503 psp_unavailable")],
        )
        expected.charges[charge_id] = "processing"
        return
    expected.psp_references[charge_id] = pi
    if mode == "auth":
        _append(store, stream, merchant, [ChargeAuthorized(charge_id, amount, pi)])
        if rng.random() < 0.3:
            _append(store, stream, merchant, [ChargeCanceled(charge_id, pi)])
            expected.charges[charge_id] = "canceled"
            return
        part = amount - rng.randint(0, amount // 2)
        _append(store, stream, merchant, [ChargeCaptureRequested(charge_id, part)])
        _append(store, stream, merchant, [ChargeCaptured(charge_id, part, part, pi)])
        amount = part
    else:
        _append(store, stream, merchant, [ChargeCaptured(charge_id, amount, amount, pi)])
    expected.charges[charge_id] = "succeeded"
    _add(expected.captured, merchant, currency, amount)
    left = amount
    for _ in range(rng.randint(0, 2)):
        refund_amount = rng.randint(1, max(1, left // 2))
        if refund_amount > left:
            break
        refund_id = new_id("re")
        _append(store, stream, merchant, [RefundRequested(refund_id, charge_id, refund_amount)])
        if rng.random() < 0.2:
            _append(
                store,
                stream,
                merchant,
                [RefundFailed(refund_id, charge_id, "amount_too_large", "Refused.")],
            )
            expected.refunds[refund_id] = "failed"
            continue
        _append(
            store,
            stream,
            merchant,
            [RefundSucceeded(refund_id, charge_id, refund_amount, new_id("pre"))],
        )
        expected.refunds[refund_id] = "succeeded"
        _add(expected.refunded, merchant, currency, refund_amount)
        left -= refund_amount


def _sessions(store: EventStore, expected: Expected) -> None:
    for n, status in enumerate(("open", "complete", "expired", "complete")):
        merchant = MERCHANTS[n % len(MERCHANTS)]
        session_id = new_id("ps")
        _append(
            store,
            session_stream(session_id),
            merchant,
            [
                PaymentSessionCreated(
                    session_id,
                    2500,
                    "usd",
                    "https://shop.example/ok",
                    "https://shop.example/no",
                    "2030-01-01T00:00:00Z",
                    "https://psp.example/pay",
                    new_id("cs"),
                )
            ],
        )
        if status == "complete":
            charge_id = new_id("ch")
            pi = new_id("pi")
            _append(
                store,
                session_stream(session_id),
                merchant,
                [PaymentSessionCompleted(session_id, charge_id, pi)],
            )
            method = PaymentMethodRef(PaymentMethodType.PSP_TOKEN, new_id("pm"))
            _append(
                store,
                charge_stream(charge_id),
                merchant,
                [
                    ChargeRequested(
                        charge_id,
                        2500,
                        "usd",
                        True,
                        method,
                        Flow.REDIRECT,
                        "2026-11-20T09:00:00Z",
                        session_id=session_id,
                    ),
                    ChargeCaptured(charge_id, 2500, 2500, pi),
                ],
            )
            expected.charges[charge_id] = "succeeded"
            expected.merchant_of[charge_id] = merchant
            expected.psp_references[charge_id] = pi
            _add(expected.captured, merchant, "usd", 2500)
        elif status == "expired":
            _append(
                store, session_stream(session_id), merchant, [PaymentSessionExpired(session_id)]
            )
        expected.sessions[session_id] = status


def _fees_and_reversal(store: EventStore, expected: Expected) -> None:
    day = date(2026, 11, 28)
    fees = []
    for charge_id, pi in sorted(expected.psp_references.items())[:10]:
        if expected.charges.get(charge_id) != "succeeded":
            continue
        merchant = expected.merchant_of[charge_id]
        fees.append(FeeAssessed(day.isoformat(), new_id("txn"), pi, merchant, 59, "usd", charge_id))
        _add(expected.fees, merchant, "usd", 59)
    store.append(
        settlement_stream(day),
        [NewEvent(LedgerEventType.FEE_ASSESSED, f.to_data(), id=new_id("evt")) for f in fees],
        expected_version=0,
    )
