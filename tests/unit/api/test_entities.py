"""Folding charges and payment sessions from their event streams."""

from __future__ import annotations

from datetime import timedelta

from noncde.api.domain import (
    CardDisplay,
    Charge,
    ChargeAuthorized,
    ChargeCanceled,
    ChargeCancelRequested,
    ChargeCaptured,
    ChargeCaptureRequested,
    ChargeDeadLettered,
    ChargeFailed,
    ChargeRequested,
    ChargeRiskAssessed,
    ChargeStatus,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    PaymentSession,
    PaymentSessionCompleted,
    PaymentSessionCreated,
    PaymentSessionExpired,
    RefundFailed,
    RefundRequested,
    RefundStatus,
    RefundSucceeded,
    RiskDecision,
    SessionStatus,
    event_object,
)
from tests.unit.api.helpers import T0, stored

CID = "ch_testcharge000000000001"


def requested(capture: bool = False, amount: int = 1000) -> ChargeRequested:
    card = CardDisplay("visa", "4242", 12, 2030, "fp", "424242", "US")
    return ChargeRequested(
        charge_id=CID,
        amount=amount,
        currency="usd",
        capture=capture,
        payment_method=PaymentMethodRef(PaymentMethodType.VAULT_TOKEN, "tok_abcdefgh", card),
        flow=Flow.S2S,
        created="2026-01-01T12:00:00Z",
        metadata={"order": "7"},
    )


def test_a_charge_walks_through_its_statuses() -> None:
    """requested → processing, authorized → requires_capture, captured → succeeded."""
    events = [requested(), ChargeRiskAssessed(CID, RiskDecision.ALLOW, [], 4)]
    charge = Charge.fold(stored(events))
    assert charge is not None and charge.status is ChargeStatus.PROCESSING
    assert charge.merchant_id == "mer_testmerchant0001" and charge.rules_version == 4
    charge.apply(stored([ChargeAuthorized(CID, 1000, "pi_1")], start=3)[0])
    assert charge.to_api()["status"] == "requires_capture" and charge.amount_capturable == 1000
    charge.apply(stored([ChargeCaptureRequested(CID, 600)], start=4)[0])
    assert charge.capture_requested == 600 and charge.to_api()["capture_requested"] == 600
    charge.apply(stored([ChargeCaptured(CID, 600, 600, "pi_1")], start=5)[0])
    assert charge.to_api()["status"] == "succeeded"
    shown = charge.to_api()
    assert (shown["amount_captured"], shown["capture_requested"], charge.amount_refundable) == (
        600,
        None,
        600,
    )


def test_refunds_count_only_when_they_succeed_and_pending_ones_are_reserved() -> None:
    """Pending refunds reduce what is refundable; failed ones give it back."""
    events = [
        requested(capture=True),
        ChargeCaptured(CID, 1000, 1000, "pi_1"),
        RefundRequested("re_one", CID, 300),
        RefundRequested("re_two", CID, 200, "duplicate"),
        RefundSucceeded("re_one", CID, 300, "rf_1"),
        RefundFailed("re_two", CID, "expired", "no"),
    ]
    charge = Charge.fold(stored(events))
    assert charge is not None
    assert charge.amount_refunded == 300 and charge.amount_refundable == 700
    one, two = charge.refund("re_one"), charge.refund("re_two")
    assert one is not None and one.status is RefundStatus.SUCCEEDED
    assert two is not None and two.status is RefundStatus.FAILED and two.reason == "duplicate"
    partial = Charge.fold(stored(events[:4]))
    assert partial is not None and partial.amount_refundable == 500
    api = charge.to_api()
    assert api["amount_refunded"] == 300 and api["refunded"] is False
    assert [r["id"] for r in api["refunds"]["data"]] == ["re_two", "re_one"]


def test_failure_cancel_and_dead_letters_are_shown() -> None:
    """A decline fails the charge; a cancel cancels it; a dead letter is flagged."""
    declined = Charge.fold(
        stored([requested(), ChargeFailed(CID, "card_declined", "Declined.", "insufficient_funds")])
    )
    assert declined is not None and declined.status is ChargeStatus.FAILED
    assert declined.to_api()["outcome"]["type"] == "issuer_declined"
    canceled = Charge.fold(
        stored(
            [
                requested(),
                ChargeAuthorized(CID, 1000, "pi"),
                ChargeCancelRequested(CID),
                ChargeCanceled(CID),
            ]
        )
    )
    assert canceled is not None and canceled.status is ChargeStatus.CANCELED
    assert not canceled.cancel_requested
    dead = Charge.fold(stored([requested(), ChargeDeadLettered(CID, "job_1", "authorize", "x")]))
    assert dead is not None and dead.to_api()["dead_lettered"] is True


def test_applying_an_event_twice_changes_nothing() -> None:
    """Folding is idempotent by stream version (at-least-once delivery to read models)."""
    events = stored([requested(capture=True), RefundRequested("re_x", CID, 10)])
    charge = Charge.fold(events)
    assert charge is not None
    before = charge.to_state()
    charge.apply(events[1])
    assert charge.to_state() == before


def test_snapshots_round_trip() -> None:
    """A read model's JSON snapshot folds back to the same charge."""
    events = [
        requested(capture=True),
        ChargeCaptured(CID, 1000, 1000, "pi"),
        RefundRequested("re_x", CID, 10),
    ]
    charge = Charge.fold(stored(events))
    assert charge is not None
    assert Charge.from_state(charge.to_state()).to_state() == charge.to_state()


def test_a_stream_without_a_request_is_not_a_charge() -> None:
    """Folding refuses streams that do not start with charge.requested."""
    assert Charge.fold(stored([ChargeAuthorized(CID, 1, "x")])) is None
    assert Charge.fold([]) is None


def session_events() -> list[PaymentSessionCreated]:
    return [
        PaymentSessionCreated(
            session_id="ps_testsession00000001",
            amount=500,
            currency="eur",
            success_url="https://s.example/ok",
            cancel_url="https://s.example/no",
            expires_at="2026-01-01T13:00:00Z",
            url="https://psp.example/pay/1",
            psp_session_id="cs_1",
        )
    ]


def test_a_session_is_open_until_paid_or_expired() -> None:
    """An open session past its expiry reads as expired; its URL is hidden once not open."""
    session = PaymentSession.fold(stored(session_events()))
    assert session is not None
    assert session.status_at(T0) is SessionStatus.OPEN
    assert session.to_api(T0)["url"] == "https://psp.example/pay/1"
    late = T0 + timedelta(hours=2)
    assert session.status_at(late) is SessionStatus.EXPIRED and session.to_api(late)["url"] is None


def test_a_completed_session_stays_complete() -> None:
    """Completion wins over a later expiry (one-time use: never reopened)."""
    events = [
        *session_events(),
        PaymentSessionCompleted("ps_testsession00000001", CID, "pi_9"),
        PaymentSessionExpired("ps_testsession00000001"),
    ]
    session = PaymentSession.fold(stored(events))
    assert session is not None and session.status is SessionStatus.COMPLETE
    assert session.to_api(T0 + timedelta(days=1))["charge"] == CID
    assert PaymentSession.from_state(session.to_state()).to_state() == session.to_state()


def test_event_objects_look_like_stripe_events() -> None:
    """The events API wraps the event's data under data.object."""
    (event,) = stored([requested()])
    body = event_object(event)
    assert body["object"] == "event" and body["type"] == "charge.requested"
    assert body["data"]["object"]["charge_id"] == CID and body["created"] == int(
        event.recorded_at.timestamp()
    )
