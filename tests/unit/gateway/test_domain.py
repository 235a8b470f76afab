"""The gateway's pure domain: validation, derived Idempotency-Keys, records updated by PSP
outcomes, backoff, decline messages and the token-only events relayed to the API."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cde.gateway.domain import (
    CheckoutSession,
    CheckoutStatus,
    InvalidRequest,
    MethodType,
    Operation,
    PaymentOutcome,
    PaymentRecord,
    PaymentStatus,
    PspEvent,
    PspPaymentMethod,
    RefundOutcome,
    RefundStatus,
    RelayLinks,
    check_amount,
    check_currency,
    check_payment_method,
    check_psp_reference,
    check_reference,
    decline_message,
    idempotency_key,
    relay_backoff_s,
    relay_event,
    relay_event_id,
    strip_card_data,
)
from fincore.cards import find_card_data

WHEN = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def record(**changes: object) -> PaymentRecord:
    base = PaymentRecord(
        charge_id="ch_abcdef12",
        merchant_id="mer_a",
        amount=1000,
        currency="usd",
        capture=True,
        method_type=MethodType.vault_token,
        method_token="tok_abcdefghij",
        description=None,
        created_at=1.0,
        updated_at=1.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("charge_id", "ch_a1b2c3d4", "ch_short"),
        ("refund_id", "re_a1b2c3d4e5", "ch_a1b2c3d4"),
        ("session_id", "ps_a1b2c3d4e5", "ps_a1b2'--"),
        ("merchant_id", "mer_demo", "shop-42"),
    ],
)
def test_references_are_checked_by_kind(kind: str, good: str, bad: str) -> None:
    """Each of our ids has its prefix and alphabet; a bad one names the parameter only."""
    assert check_reference(kind, good) == good
    with pytest.raises(InvalidRequest) as refused:
        check_reference(kind, bad)
    assert refused.value.param == kind and bad not in refused.value.message
    with pytest.raises(InvalidRequest) as missing:
        check_reference(kind, None)
    assert missing.value.code == "parameter_missing"


@pytest.mark.parametrize("value", [0, -1, 100_000_000, 1.5, "100", True])
def test_amounts_are_positive_integers(value: object) -> None:
    """Amounts are integer minor units from 1 to eight digits (never floats or bools)."""
    with pytest.raises(InvalidRequest):
        check_amount(value)


def test_amount_may_be_optional() -> None:
    """An optional amount may be absent; a present one is still checked."""
    assert check_amount(None, required=False) is None
    assert check_amount(99_999_999) == 99_999_999


@pytest.mark.parametrize("value", ["USD", "us", "usdd", 840, None])
def test_currency_is_lowercase_iso(value: object) -> None:
    """Currencies are three lowercase letters."""
    with pytest.raises(InvalidRequest):
        check_currency(value)


def test_payment_methods() -> None:
    """A vault token must be tok_…, a PSP token pm_…; other shapes and keys are refused."""
    assert check_payment_method({"type": "vault_token", "token": "tok_abcdefgh12"}) == (
        MethodType.vault_token,
        "tok_abcdefgh12",
    )
    assert check_payment_method({"type": "psp_token", "token": "pm_abcdefgh12"})[0] is (
        MethodType.psp_token
    )
    bad = [
        {"type": "psp_token", "token": "tok_abcdefgh12"},
        {"type": "card", "token": "tok_abcdefgh12"},
        {"type": "vault_token"},
        {"type": "vault_token", "token": "tok_abcdefgh12", "number": "1"},
        "tok_abcdefgh12",
    ]
    for value in bad:
        with pytest.raises(InvalidRequest):
            check_payment_method(value)


def test_psp_references_need_their_prefix() -> None:
    """An optional PSP reference must be a PaymentIntent id where one is expected."""
    assert check_psp_reference(None, "pi_") is None
    assert check_psp_reference("pi_1234567abc", "pi_") == "pi_1234567abc"
    with pytest.raises(InvalidRequest):
        check_psp_reference("cs_1234567abc", "pi_")


# ---------------------------------------------------------------- keys and records


def test_idempotency_keys_are_derived_not_random() -> None:
    """The same reference and operation always give the same key; operations differ."""
    key = idempotency_key("ch_abcdef12", Operation.authorize)
    assert key == idempotency_key("ch_abcdef12", Operation.authorize)
    assert key != idempotency_key("ch_abcdef12", Operation.capture)
    assert key != idempotency_key("ch_abcdef13", Operation.authorize)
    assert idempotency_key("ch_abcdef12", Operation.payment_method, 2).endswith(":2")


def test_same_request_compares_every_parameter() -> None:
    """An idempotent retry must match merchant, amount, currency, capture and token."""
    first = record()
    assert first.same_request(record(created_at=9.0))
    for change in (
        {"amount": 1001},
        {"currency": "eur"},
        {"capture": False},
        {"merchant_id": "mer_b"},
        {"method_token": "tok_zzzzzzzzzz"},
        {"description": "other"},
    ):
        assert not first.same_request(record(**change))


def test_outcomes_update_records() -> None:
    """A PSP answer fills in the record; a lost answer keeps what was known."""
    captured = record().with_outcome(
        PaymentOutcome(
            PaymentStatus.succeeded, "pi_1", amount_received=1000, payment_method="pm_1"
        ),
        5.0,
    )
    assert captured.status is PaymentStatus.succeeded and captured.final
    assert captured.psp_reference == "pi_1" and captured.psp_payment_method == "pm_1"
    lost = captured.with_outcome(PaymentOutcome(PaymentStatus.unknown, None), 6.0)
    assert lost.status is PaymentStatus.unknown and lost.psp_reference == "pi_1"
    declined = record().with_outcome(
        PaymentOutcome(PaymentStatus.failed, "pi_2", decline_code="lost_card"), 7.0
    )
    assert declined.decline_code == "lost_card"
    view = declined.as_outcome()
    assert view.reference == "ch_abcdef12" and view.status is PaymentStatus.failed


def test_backoff_doubles_and_is_capped() -> None:
    """Relay retries wait base·2^(n-1) seconds, never more than the cap."""
    assert [relay_backoff_s(n, 1.0, 10.0) for n in range(6)] == [0.0, 1, 2, 4, 8, 10]
    assert relay_backoff_s(10_000, 1.0, 300.0) == 300.0


def test_decline_messages_are_clear() -> None:
    """The PSP's message wins; otherwise each decline code has its own message."""
    assert decline_message("insufficient_funds", None) == "Your card has insufficient funds."
    assert decline_message("expired_card", None) == "Your card has expired."
    assert decline_message("something_new", None) == "Your card was declined."
    assert decline_message("generic_decline", "Custom.") == "Custom."


# ---------------------------------------------------------------- relayed events


def test_payment_events_name_our_charge() -> None:
    """`payment_intent.payment_failed` becomes `payment.failed` with the decline and the
    charge id, and nothing else of the PSP's object."""
    outcome = PaymentOutcome(
        PaymentStatus.failed,
        "pi_abc",
        reference="ch_abcdef12",
        amount=500,
        currency="usd",
        decline_code="insufficient_funds",
        failure_code="card_declined",
    )
    event = PspEvent("evt_123", "payment_intent.payment_failed", WHEN, payment=outcome)
    body = relay_event(event, RelayLinks(charge_id="ch_abcdef12"))
    assert body == {
        "id": "pspevt_123",
        "psp_event_id": "evt_123",
        "created": int(WHEN.timestamp()),
        "type": "payment.failed",
        "psp_reference": "pi_abc",
        "charge_id": "ch_abcdef12",
        "amount": 500,
        "currency": "usd",
        "decline_code": "insufficient_funds",
        "failure_code": "card_declined",
        "message": "Your card has insufficient funds.",
    }


def test_refund_and_session_events() -> None:
    """Refunds carry our refund and charge ids; a completed session carries the PSP token
    and display data of the card used (no number)."""
    refund = RefundOutcome(
        RefundStatus.succeeded,
        "re_1",
        "pi_1",
        amount=300,
        currency="eur",
        reference="re_abcdef1234",
    )
    body = relay_event(
        PspEvent("evt_r", "refund.created", WHEN, refund=refund),
        RelayLinks(charge_id="ch_abcdef12", refund_id="re_abcdef1234"),
    )
    assert body is not None
    assert body["type"] == "refund.succeeded" and body["charge_id"] == "ch_abcdef12"
    session = CheckoutSession(
        "cs_1", None, CheckoutStatus.complete, "paid", 700, "usd", None, "ps_abcdef1234", "pi_9"
    )
    method = PspPaymentMethod("pm_1", "visa", "4242", 12, 2034)
    done = relay_event(
        PspEvent("evt_s", "checkout.session.completed", WHEN, checkout_session=session),
        RelayLinks(
            session_id="ps_abcdef1234",
            payment_method=method,
            payment_status=PaymentStatus.succeeded,
        ),
    )
    assert done is not None
    assert done["payment_method"] == {
        "type": "psp_token",
        "token": "pm_1",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034},
    }
    assert done["psp_payment_reference"] == "pi_9" and done["payment_status"] == "succeeded"
    assert find_card_data(done) == []


def test_events_the_api_does_not_need_are_not_relayed() -> None:
    """`payment_intent.created` and `charge.*` repeat other events: nothing is relayed."""
    outcome = PaymentOutcome(PaymentStatus.unknown, "pi_1")
    for kind in ("payment_intent.created", "charge.succeeded", "customer.created"):
        assert relay_event(PspEvent("evt_x", kind, WHEN, payment=outcome), RelayLinks()) is None
    assert relay_event_id("evt_abc") == "pspevt_abc"


def test_anything_card_like_is_stripped() -> None:
    """A card number in any field, or a card-named key, is removed with its path reported."""
    body = {
        "id": "pspevt_1",
        "message": "declined for 4242 4242 4242 4242",
        "nested": {"cvc": "123", "ok": "fine", "list": ["5555555555554444", "keep"]},
        "amount": 4000000000000002,
    }
    clean, removed = strip_card_data(body)  # type: ignore[arg-type]
    assert clean == {"id": "pspevt_1", "nested": {"ok": "fine", "list": ["keep"]}}
    assert sorted(removed) == ["$.amount", "$.message", "$.nested.cvc", "$.nested.list[]"]
    assert find_card_data(clean) == []
