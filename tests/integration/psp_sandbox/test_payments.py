"""PaymentIntents, captures, cancels, refunds and the API's Stripe-shaped refusals."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.integration.psp_sandbox.peer import SandboxServer

pytestmark = pytest.mark.psp


def _pm(client: Any, number: str = "4242424242424242") -> str:
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return str(pm.id)


def _authorize(client: Any, amount: int = 2000, **extra: Any) -> Any:
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "eur",
            "payment_method": _pm(client),
            "confirm": True,
            "capture_method": "manual",
            **extra,
        }
    )


def test_manual_capture_full(sandbox: SandboxServer) -> None:
    """An authorization waits in requires_capture and captures in full."""
    client = sandbox.stripe_client()
    pi = _authorize(client)
    assert (pi.status, pi.amount_capturable, pi.amount_received) == ("requires_capture", 2000, 0)
    captured = client.v1.payment_intents.capture(pi.id)
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded",
        2000,
        0,
    )
    charge = client.v1.charges.retrieve(captured.latest_charge)
    assert charge.captured and charge.amount_captured == 2000 and charge.balance_transaction


def test_partial_capture_releases_the_rest(sandbox: SandboxServer) -> None:
    """amount_to_capture takes part; the rest is released and shows as refunded on the charge."""
    client = sandbox.stripe_client()
    pi = client.v1.payment_intents.capture(
        _authorize(client).id, params={"amount_to_capture": 1500}
    )
    assert (pi.status, pi.amount_received) == ("succeeded", 1500)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_captured, charge.amount_refunded, charge.refunded) == (1500, 500, False)
    txn = client.v1.balance_transactions.retrieve(charge.balance_transaction)
    assert (txn.amount, txn.fee, txn.net) == (1500, 44 + 30, 1500 - 74)  # 2.9 % (43.5 -> 44) + 30


def test_capture_more_than_authorized_is_refused(sandbox: SandboxServer) -> None:
    """Capturing above amount_capturable is a 400 and changes nothing."""
    client = sandbox.stripe_client()
    pi = _authorize(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 2001})
    assert caught.value.code == "amount_too_large"
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_capture"


def test_capture_twice_is_refused(sandbox: SandboxServer) -> None:
    """A captured PaymentIntent cannot be captured again."""
    client = sandbox.stripe_client()
    pi = client.v1.payment_intents.capture(_authorize(client).id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(pi.id)
    assert caught.value.code == "payment_intent_unexpected_state"


def test_cancel_an_authorization(sandbox: SandboxServer) -> None:
    """Cancelling releases the authorization; a canceled PaymentIntent cannot be captured."""
    client = sandbox.stripe_client()
    pi = client.v1.payment_intents.cancel(
        _authorize(client).id, params={"cancellation_reason": "requested_by_customer"}
    )
    assert (pi.status, pi.cancellation_reason, pi.amount_capturable) == (
        "canceled",
        "requested_by_customer",
        0,
    )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.capture(pi.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.cancel(pi.id)


def test_create_then_confirm(sandbox: SandboxServer) -> None:
    """The two-step flow: create without a method, confirm with one."""
    client = sandbox.stripe_client()
    pi = client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"})
    assert pi.status == "requires_payment_method" and pi.client_secret.startswith(pi.id)
    confirmed = client.v1.payment_intents.confirm(pi.id, params={"payment_method": _pm(client)})
    assert confirmed.status == "succeeded"


def test_a_payment_method_is_single_use(sandbox: SandboxServer) -> None:
    """As on Stripe, a PaymentMethod without a customer cannot be used for a second payment."""
    client = sandbox.stripe_client()
    pm = _pm(client)
    client.v1.payment_intents.create(
        params={"amount": 100, "currency": "eur", "payment_method": pm, "confirm": True}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(
            params={"amount": 100, "currency": "eur", "payment_method": pm, "confirm": True}
        )
    assert caught.value.code == "payment_method_unexpected_state"


def test_full_and_partial_refunds(sandbox: SandboxServer) -> None:
    """Partial refunds add up; a full refund takes what is left and marks the charge refunded."""
    client = sandbox.stripe_client()
    pi = client.v1.payment_intents.capture(_authorize(client, 3000).id)
    first = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})
    assert (first.status, first.amount, first.charge) == ("succeeded", 1000, pi.latest_charge)
    rest = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert rest.amount == 2000
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (3000, True)
    listed = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert {r.id for r in listed.data} == {first.id, rest.id}


def test_over_refund_is_refused_with_stripes_shape(sandbox: SandboxServer) -> None:
    """Refunding more than is left is a 400 invalid_request_error on `amount`; nothing moves."""
    client = sandbox.stripe_client()
    pi = client.v1.payment_intents.capture(_authorize(client, 1000).id)
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 600})
    response = sandbox.api("POST", "/v1/refunds", data={"payment_intent": pi.id, "amount": "401"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "amount_too_large",
        "amount",
    )
    client.v1.refunds.create(params={"payment_intent": pi.id})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1})
    assert caught.value.code == "charge_already_refunded"
    assert client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 1000


def test_refund_of_an_uncaptured_payment_is_refused(sandbox: SandboxServer) -> None:
    """Only captured money can be refunded (an authorization is canceled instead)."""
    client = sandbox.stripe_client()
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": _authorize(client).id})
    assert caught.value.code == "charge_not_refundable"


def test_list_pagination_and_search(sandbox: SandboxServer) -> None:
    """Lists are newest first with cursors; search finds by our metadata reference."""
    client = sandbox.stripe_client()
    ids = [
        client.v1.payment_intents.create(
            params={"amount": 100 + i, "currency": "eur", "metadata": {"reference": f"ch_pg{i}"}}
        ).id
        for i in range(3)
    ]
    page = client.v1.payment_intents.list(params={"limit": 2})
    assert [p.id for p in page.data] == [ids[2], ids[1]] and page.has_more
    after = client.v1.payment_intents.list(params={"limit": 1, "starting_after": ids[1]})
    assert [p.id for p in after.data] == [ids[0]]
    found = client.v1.payment_intents.search(params={"query": "metadata['reference']:'ch_pg1'"})
    assert [p.id for p in found.data] == [ids[1]]
    both = client.v1.payment_intents.search(
        params={"query": "metadata['reference']:'ch_pg1' AND status:'requires_payment_method'"}
    )
    assert [p.id for p in both.data] == [ids[1]]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.search(params={"query": "description~'x'"})


@pytest.mark.parametrize(
    ("data", "status", "code", "param"),
    [
        ({"amount": "100", "currency": "eur", "colour": "red"}, 400, "parameter_unknown", "colour"),
        ({"currency": "eur"}, 400, "parameter_missing", "amount"),
        ({"amount": "abc", "currency": "eur"}, 400, "parameter_invalid_integer", "amount"),
        ({"amount": "100", "currency": "xyz"}, 400, "parameter_invalid_currency", "currency"),
        (
            {"amount": "100", "currency": "eur", "metadata[note]": "4242424242424242"},
            400,
            None,
            "metadata[note]",
        ),
        (
            {"amount": "100", "currency": "eur", "payment_method": "pm_nope"},
            404,
            "resource_missing",
            "payment_method",
        ),
    ],
)
def test_bad_requests_get_stripe_errors(
    sandbox: SandboxServer, data: dict[str, str], status: int, code: str | None, param: str
) -> None:
    """Bad input gets Stripe's error object naming the parameter, never echoing card data."""
    response = sandbox.api("POST", "/v1/payment_intents", data=data)
    assert response.status_code == status
    error = response.json()["error"]
    assert error.get("code") == code and error["param"] == param
    assert "4242424242424242" not in response.text


def test_authentication(sandbox: SandboxServer) -> None:
    """Secret keys work as Bearer or Basic; no key, a wrong key or a publishable key do not."""
    import httpx

    url = sandbox.url + "/v1/payment_intents"
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {sandbox.secret_key}"})
    assert bearer.status_code == 200
    assert httpx.get(url, auth=(sandbox.secret_key, "")).status_code == 200
    assert httpx.get(url).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer sk_test_wrongwrongwrong"})
    assert wrong.status_code == 401 and "sk_test_wrong" not in wrong.text
    public = httpx.get(url, headers={"Authorization": f"Bearer {sandbox.publishable_key}"})
    assert public.status_code == 401
    # The publishable key may only create payment methods (the browser flow).
    pm = httpx.post(
        sandbox.url + "/v1/payment_methods",
        data={
            "key": sandbox.publishable_key,
            "type": "card",
            "card[number]": "4242424242424242",
            "card[exp_month]": "1",
            "card[exp_year]": "2035",
            "card[cvc]": "123",
        },
    )
    assert pm.status_code == 200 and pm.json()["id"].startswith("pm_")


def test_responses_never_hold_the_card_number(sandbox: SandboxServer) -> None:
    """A PaymentMethod keeps brand, last4 and a keyed fingerprint only."""
    response = sandbox.api(
        "POST",
        "/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": "5555555555554444",
            "card[exp_month]": "3",
            "card[exp_year]": "2031",
            "card[cvc]": "321",
        },
    )
    body = response.json()
    assert body["card"]["last4"] == "4444" and body["card"]["brand"] == "mastercard"
    assert "5555555555554444" not in response.text
    assert "cvc" not in body["card"] and body["card"]["checks"]["cvc_check"] == "unchecked"
    assert len(body["card"]["fingerprint"]) == 16


def test_expand(sandbox: SandboxServer) -> None:
    """expand[] replaces an id by its object; a malformed path is refused before anything runs."""
    client = sandbox.stripe_client()
    pi = client.v1.payment_intents.create(
        params={"amount": 300, "currency": "eur", "payment_method": _pm(client), "confirm": True}
    )
    expanded = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert expanded.latest_charge.object == "charge"
    assert expanded.latest_charge.payment_intent == pi.id
    response = sandbox.api(
        "POST",
        "/v1/payment_intents",
        data={
            "amount": "1",
            "currency": "eur",
            "metadata[reference]": "ch_expand",
            "expand[]": "Latest-Charge!",
        },
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "expand"
    found = sandbox.api(
        "GET", "/v1/payment_intents/search", params={"query": "metadata['reference']:'ch_expand'"}
    )
    assert found.json()["data"] == []
