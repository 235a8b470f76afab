"""Idempotency-Key behaves like Stripe's: replay on same parameters, error on different ones."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.integration.psp_sandbox.peer import SandboxServer

pytestmark = pytest.mark.psp


def _pm(sandbox: SandboxServer, number: str = "4242424242424242") -> str:
    response = sandbox.api(
        "POST",
        "/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _create(sandbox: SandboxServer, key: str, **params: str) -> httpx.Response:
    return sandbox.api("POST", "/v1/payment_intents", data=params, headers={"Idempotency-Key": key})


def test_same_key_same_parameters_replays_the_response(sandbox: SandboxServer) -> None:
    """A repeated request with the same key gets the first response back, byte for byte."""
    key = secrets.token_hex(8)
    params = {
        "amount": "1500",
        "currency": "eur",
        "payment_method": _pm(sandbox),
        "confirm": "true",
        "metadata[reference]": "ch_idem1",
    }
    first = _create(sandbox, key, **params)
    second = _create(sandbox, key, **params)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    found = sandbox.api(
        "GET", "/v1/payment_intents/search", params={"query": "metadata['reference']:'ch_idem1'"}
    ).json()
    assert len(found["data"]) == 1, "the replay must not create a second payment"


def test_same_key_different_parameters_is_an_idempotency_error(sandbox: SandboxServer) -> None:
    """Reusing a key with other parameters is refused with 400 idempotency_error."""
    key = secrets.token_hex(8)
    assert _create(sandbox, key, amount="100", currency="eur").status_code == 200
    again = _create(sandbox, key, amount="101", currency="eur")
    assert again.status_code == 400
    assert again.json()["error"]["type"] == "idempotency_error"


def test_same_key_on_another_endpoint_is_an_idempotency_error(sandbox: SandboxServer) -> None:
    """A key is bound to its endpoint too."""
    key = secrets.token_hex(8)
    assert _create(sandbox, key, amount="100", currency="eur").status_code == 200
    other = sandbox.api(
        "POST",
        "/v1/checkout/sessions",
        headers={"Idempotency-Key": key},
        data={
            "mode": "payment",
            "success_url": "http://127.0.0.1:9/ok",
            "line_items[0][price_data][currency]": "eur",
            "line_items[0][price_data][unit_amount]": "100",
            "line_items[0][price_data][product_data][name]": "x",
            "line_items[0][quantity]": "1",
        },
    )
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"


def test_a_decline_is_saved_and_replayed(sandbox: SandboxServer) -> None:
    """A declined confirmation began executing, so its 402 is replayed, not retried."""
    key = secrets.token_hex(8)
    params = {
        "amount": "700",
        "currency": "eur",
        "confirm": "true",
        "payment_method": _pm(sandbox, "4000000000009995"),
    }
    first = _create(sandbox, key, **params)
    second = _create(sandbox, key, **params)
    assert first.status_code == second.status_code == 402
    assert first.content == second.content
    assert second.headers["Idempotent-Replayed"] == "true"


def test_a_validation_error_is_not_saved(sandbox: SandboxServer) -> None:
    """A request refused before executing leaves the key free for a corrected request."""
    key = secrets.token_hex(8)
    bad = _create(sandbox, key, amount="-5", currency="eur")
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    good = _create(sandbox, key, amount="5", currency="eur")
    assert good.status_code == 200


def test_the_sdk_sends_keys_and_sees_replays(sandbox: SandboxServer) -> None:
    """stripe-python's explicit idempotency_key reaches the sandbox and replays the same object."""
    client = sandbox.stripe_client()
    key = secrets.token_hex(8)
    params = {"amount": 2500, "currency": "eur"}
    first = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    second = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    assert first.id == second.id
