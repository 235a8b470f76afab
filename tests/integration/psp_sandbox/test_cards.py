"""Every documented test card gives its documented outcome, with Stripe's codes."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from psp_sandbox.domain import DECLINES, TEST_CARDS, TestCard
from tests.integration.psp_sandbox.peer import SandboxServer

pytestmark = pytest.mark.psp


def _pay(client: Any, number: str, cvc: str = "123") -> Any:
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": cvc},
        }
    )
    return pm, client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "eur", "payment_method": pm.id, "confirm": True}
    )


SUCCESS = [card for card in TEST_CARDS if card.outcome == "succeeded"]
DECLINED = [card for card in TEST_CARDS if card.outcome != "succeeded"]


@pytest.mark.parametrize("card", SUCCESS, ids=lambda c: f"{c.brand}-{c.number[-4:]}")
def test_success_cards_are_captured(sandbox: SandboxServer, card: TestCard) -> None:
    """A success card of any brand authorizes and captures, and reports brand and funding."""
    client = sandbox.stripe_client()
    cvc = "1234" if card.brand == "amex" else "123"
    pm, pi = _pay(client, card.number, cvc)
    assert pm.card.brand == card.brand.value
    assert pm.card.funding == card.funding
    assert pm.card.last4 == card.number[-4:]
    assert pi.status == "succeeded"
    assert pi.amount_received == 1000
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.paid and charge.captured
    assert charge.payment_method_details.card.checks.cvc_check == "pass"


@pytest.mark.parametrize("card", DECLINED, ids=lambda c: f"{c.outcome}-{c.number[-4:]}")
def test_decline_cards_fail_with_stripe_codes(sandbox: SandboxServer, card: TestCard) -> None:
    """A decline card fails the confirmation with a 402 card_error and Stripe's decline code."""
    client = sandbox.stripe_client()
    expected = DECLINES[card.outcome]
    with pytest.raises(stripe.CardError) as caught:
        _pay(client, card.number)
    error = caught.value
    assert error.error is not None and error.error.payment_intent is not None
    assert error.http_status == 402
    assert error.code == expected.code
    assert error.error.decline_code == expected.decline_code
    assert error.user_message == expected.message
    assert error.error.type == "card_error"
    pi = client.v1.payment_intents.retrieve(error.error.payment_intent.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.decline_code == expected.decline_code
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "failed"
    assert charge.failure_code == expected.code
    assert charge.outcome.reason == expected.decline_code


def test_documented_decline_codes() -> None:
    """The cards the brief names carry exactly Stripe's decline codes."""
    by_number = {card.number: DECLINES[card.outcome] for card in DECLINED}
    assert by_number["4000000000000002"].decline_code == "generic_decline"
    assert by_number["4000000000009995"].decline_code == "insufficient_funds"
    assert by_number["4000000000000069"].code == "expired_card"
    assert by_number["4000000000000127"].code == "incorrect_cvc"
    assert by_number["4000000000009987"].decline_code == "lost_card"
    assert by_number["4000000000009979"].decline_code == "stolen_card"
    assert by_number["4000000000000119"].code == "processing_error"


def test_a_real_looking_card_is_declined_in_test_mode(sandbox: SandboxServer) -> None:
    """A Luhn-valid number that is no test card is refused, as Stripe refuses live cards."""
    with pytest.raises(stripe.CardError) as caught:
        _pay(sandbox.stripe_client(), "4111111111111111")
    assert caught.value.error is not None
    assert caught.value.error.decline_code == "test_mode_live_card"


@pytest.mark.parametrize(
    ("card", "code", "param"),
    [
        ({"number": "4242424242424241"}, "incorrect_number", "card[number]"),
        ({"exp_month": 13}, "invalid_expiry_month", "card[exp_month]"),
        ({"exp_year": 2001}, "invalid_expiry_year", "card[exp_year]"),
        ({"cvc": "12"}, "invalid_cvc", "card[cvc]"),
        ({"number": "378282246310005", "cvc": "123"}, "invalid_cvc", "card[cvc]"),
    ],
)
def test_invalid_card_fields_are_card_errors(
    sandbox: SandboxServer, card: dict[str, Any], code: str, param: str
) -> None:
    """A bad number, expiry or CVC is a 402 card_error naming the field, never echoing it."""
    fields = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    fields.update(card)
    response = sandbox.api(
        "POST",
        "/v1/payment_methods",
        data={"type": "card", **{f"card[{k}]": str(v) for k, v in fields.items()}},
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("card_error", code, param)
    assert str(fields["number"]) not in response.text
