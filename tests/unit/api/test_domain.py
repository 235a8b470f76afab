"""The published language: events, jobs, ids, money and request fingerprints."""

from __future__ import annotations

import pytest

from fincore.cards import contains_card_number
from noncde.api.domain import (
    EVENT_CLASSES,
    AuthorizeCharge,
    CardDisplay,
    ChargeRequested,
    ChargeRiskAssessed,
    EventType,
    ExecuteRefund,
    Flow,
    InvalidRequest,
    PaymentMethodRef,
    PaymentMethodType,
    RiskDecision,
    check_amount,
    check_currency,
    is_id,
    new_id,
    parse_event,
    parse_job,
)
from noncde.api.domain.commands import CreateCharge, request_fingerprint
from noncde.api.domain.ids import random_body

CARD = CardDisplay("visa", "4242", 12, 2030, "ab12", "424242", "US")


def test_every_event_type_has_a_class_and_round_trips() -> None:
    """Each event type of the contract maps to one class whose data reads back equal."""
    assert set(EVENT_CLASSES) == {t.value for t in EventType}
    event = ChargeRequested(
        charge_id="ch_x",
        amount=100,
        currency="usd",
        capture=False,
        payment_method=PaymentMethodRef(PaymentMethodType.VAULT_TOKEN, "tok_abc", CARD),
        flow=Flow.S2S,
        created="2026-01-01T00:00:00Z",
        metadata={"k": "v"},
    )
    data = event.to_data()
    assert "session_id" not in data and "description" not in data
    assert data["payment_method"]["card"]["country"] == "US"
    assert parse_event("charge.requested", data) == event


def test_unknown_event_types_and_fields_are_tolerated() -> None:
    """A reader skips unknown event types and ignores unknown fields (forward compatible)."""
    assert parse_event("charge.teleported", {"charge_id": "ch_x"}) is None
    parsed = parse_event(
        "charge.risk_assessed",
        {"charge_id": "ch_x", "decision": "review", "reasons": ["x"], "rules_version": 3, "new": 1},
    )
    assert parsed == ChargeRiskAssessed("ch_x", RiskDecision.REVIEW, ["x"], 3)


def test_job_payloads_carry_tokens_only_and_round_trip() -> None:
    """The authorize job carries the payment method's type and token, never display data."""
    job = AuthorizeCharge("ch_x", "mer_x", 100, "usd", True, {"type": "vault_token", "token": "t"})
    payload = job.to_payload()
    assert payload["payment_method"] == {"type": "vault_token", "token": "t"}
    assert parse_job("charge.authorize", payload) == job
    refund = ExecuteRefund("re_x", "ch_x", "mer_x", 5)
    assert parse_job("refund.execute", refund.to_payload()) == refund
    assert refund.dedup_id == "re_x:refund" and job.dedup_id == "ch_x:authorize"
    assert parse_job("unknown.job", {}) is None


def test_ids_are_prefixed_random_and_never_card_like() -> None:
    """Generated ids have their prefix, differ, and hold no Luhn-valid digit run."""
    ids = {new_id("ch") for _ in range(2000)}
    assert len(ids) == 2000
    assert all(is_id(i, "ch") and not contains_card_number(i) for i in ids)
    assert not is_id("ch_", "ch") and not is_id("re_abcdefgh", "ch") and not is_id(5, "ch")
    assert not contains_card_number(random_body(400))


def test_money_is_integer_minor_units_in_known_currencies() -> None:
    """Amounts are positive integers up to eight digits; currencies are lowercase ISO-4217."""
    assert check_amount(1) == 1 and check_currency("EUR") == "eur"
    for bad in (0, -5, 1.5, True, "100", 100_000_000):
        with pytest.raises(InvalidRequest):
            check_amount(bad)
    with pytest.raises(InvalidRequest) as caught:
        check_currency("xxx")
    assert caught.value.param == "currency"


def test_the_fingerprint_ignores_the_vault_token_but_not_the_card() -> None:
    """A retry through the ingress (fresh vault token, same card) matches; another card does not."""

    def command(token: str, last4: str) -> CreateCharge:
        card = CardDisplay("visa", last4, 12, 2030, "fp-" + last4, "424242")
        method = PaymentMethodRef(PaymentMethodType.VAULT_TOKEN, token, card)
        return CreateCharge(100, "usd", method)

    first = request_fingerprint("charges.create", command("tok_a", "4242").fingerprint_params(True))
    retry = request_fingerprint("charges.create", command("tok_b", "4242").fingerprint_params(True))
    other = request_fingerprint("charges.create", command("tok_c", "1111").fingerprint_params(True))
    direct = request_fingerprint(
        "charges.create", command("tok_a", "4242").fingerprint_params(False)
    )
    assert first == retry and first != other and first != direct
