"""The gateway's payment endpoints against real processes (vault, gateway, PSP sandbox):
authorize/capture/cancel/refund with a vault token and with a PSP token, idempotency by our
reference, the CVC consumed by detokenization, and the refusals."""

from __future__ import annotations

import pytest

from fincore.runner import Plan
from tests.integration.gateway.conftest import audit_records
from tests.integration.gateway.peers import (
    MERCHANT,
    OTHER_MERCHANT,
    GatewayServer,
    VaultServer,
    authorize_body,
    intents_for,
    new_id,
    payment_method_of,
    psp_token,
)
from tests.integration.psp_sandbox.peer import SandboxServer

pytestmark = [pytest.mark.e2e, pytest.mark.psp]


@pytest.fixture(params=["vault_token", "psp_token"])
def token_of(
    request: pytest.FixtureRequest, vault: VaultServer, sandbox: SandboxServer
) -> tuple[str, str]:
    """A fresh token for Visa 4242 of each kind: (type, token)."""
    if request.param == "vault_token":
        return "vault_token", vault.tokenize("4242424242424242")["token"]
    return "psp_token", psp_token(sandbox)


def test_authorize_and_capture_at_once(
    gateway: GatewayServer, sandbox: SandboxServer, token_of: tuple[str, str]
) -> None:
    """An automatic-capture authorization succeeds and the PSP holds one payment for it."""
    method, token = token_of
    body = authorize_body(token, method=method, amount=4200)
    response = gateway.post("/v1/authorizations", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "succeeded"
    assert answer["amount_received"] == 4200
    assert answer["psp_reference"].startswith("pi_")
    intents = intents_for(sandbox, body["charge_id"])
    assert [i["id"] for i in intents] == [answer["psp_reference"]]
    assert intents[0]["status"] == "succeeded"


def test_manual_capture_partial_then_refunds(
    gateway: GatewayServer, sandbox: SandboxServer, token_of: tuple[str, str]
) -> None:
    """Authorize 5000, capture 3000, refund 1000 then the rest; an over-refund is refused."""
    method, token = token_of
    body = authorize_body(token, method=method, amount=5000, capture=False)
    charge = body["charge_id"]
    auth = gateway.post("/v1/authorizations", body).json()
    assert auth["status"] == "requires_capture"
    assert auth["amount_capturable"] == 5000
    captured = gateway.post("/v1/captures", {"charge_id": charge, "amount": 3000})
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "succeeded"
    assert captured.json()["amount_received"] == 3000
    first = gateway.post(
        "/v1/refunds", {"refund_id": new_id("re"), "charge_id": charge, "amount": 1000}
    )
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "succeeded"
    assert first.json()["psp_reference"].startswith("re_")
    over = gateway.post(
        "/v1/refunds", {"refund_id": new_id("re"), "charge_id": charge, "amount": 2001}
    )
    assert over.status_code == 400
    assert over.json()["error"]["code"] == "amount_too_large"
    rest = gateway.post("/v1/refunds", {"refund_id": new_id("re"), "charge_id": charge})
    assert rest.json()["status"] == "succeeded"
    assert rest.json()["amount"] == 2000
    intent = sandbox.api("GET", f"/v1/payment_intents/{auth['psp_reference']}").json()
    assert intent["amount_received"] == 3000


def test_cancel_an_authorization(
    gateway: GatewayServer, sandbox: SandboxServer, token_of: tuple[str, str]
) -> None:
    """A manual-capture authorization can be cancelled; the PSP releases it."""
    method, token = token_of
    body = authorize_body(token, method=method, capture=False)
    auth = gateway.post("/v1/authorizations", body).json()
    assert auth["status"] == "requires_capture"
    canceled = gateway.post("/v1/cancellations", {"charge_id": body["charge_id"]})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    again = gateway.post("/v1/cancellations", {"charge_id": body["charge_id"]})
    assert again.json()["status"] == "canceled"
    intent = sandbox.api("GET", f"/v1/payment_intents/{auth['psp_reference']}").json()
    assert intent["status"] == "canceled"


def test_retried_operations_never_move_money_twice(
    gateway: GatewayServer, sandbox: SandboxServer, vault: VaultServer
) -> None:
    """The same authorize, capture and refund sent twice give one PSP payment, one capture
    and one refund; other parameters under a used reference are an idempotency error."""
    token = vault.tokenize("5555555555554444")["token"]
    body = authorize_body(token, capture=False, amount=3000)
    first = gateway.post("/v1/authorizations", body).json()
    second = gateway.post("/v1/authorizations", body).json()
    assert first == second
    assert len(intents_for(sandbox, body["charge_id"])) == 1
    changed = gateway.post("/v1/authorizations", {**body, "amount": 3001})
    assert changed.status_code == 409
    assert changed.json()["error"]["type"] == "idempotency_error"
    capture = {"charge_id": body["charge_id"], "amount": 2000}
    assert gateway.post("/v1/captures", capture).json()["amount_received"] == 2000
    assert gateway.post("/v1/captures", capture).json()["amount_received"] == 2000
    refund = {"refund_id": new_id("re"), "charge_id": body["charge_id"], "amount": 500}
    one = gateway.post("/v1/refunds", refund).json()
    two = gateway.post("/v1/refunds", refund).json()
    assert one["psp_reference"] == two["psp_reference"]
    refunds = sandbox.api("GET", "/v1/refunds", params={"payment_intent": first["psp_reference"]})
    assert len(refunds.json()["data"]) == 1
    conflict = gateway.post("/v1/refunds", {**refund, "amount": 600})
    assert conflict.status_code == 409


def test_detokenization_consumes_the_cvc(
    gateway: GatewayServer, sandbox: SandboxServer, vault: VaultServer
) -> None:
    """The first authorization sends the CVC the vault held; a second one with the same
    token has none left (PCI DSS 3.3.1)."""
    token = vault.tokenize("4000056655665556", cvc="321")["token"]
    first = gateway.post("/v1/authorizations", authorize_body(token)).json()
    second = gateway.post("/v1/authorizations", authorize_body(token)).json()
    assert first["status"] == second["status"] == "succeeded"
    first_pm = payment_method_of(sandbox, first["psp_reference"])
    second_pm = payment_method_of(sandbox, second["psp_reference"])
    assert first_pm["card"]["checks"]["cvc_check"] == "unchecked"  # sent with the card
    assert second_pm["card"]["checks"]["cvc_check"] is None  # none left to send
    assert first_pm["card"]["last4"] == second_pm["card"]["last4"] == "5556"


def test_psp_tokens_never_touch_the_vault(
    gateway: GatewayServer, sandbox: SandboxServer, plan: Plan
) -> None:
    """An SDK-flow payment (PSP token) succeeds without a single detokenization."""

    def detokenizations() -> int:
        return sum(1 for r in audit_records(plan) if r["event_type"] == "card.detokenize")

    before = detokenizations()
    answer = gateway.post(
        "/v1/authorizations", authorize_body(psp_token(sandbox), method="psp_token")
    ).json()
    assert answer["status"] == "succeeded"
    assert detokenizations() == before


def test_another_merchants_token_is_refused(
    gateway: GatewayServer, vault: VaultServer, sandbox: SandboxServer, plan: Plan
) -> None:
    """A token used for another merchant is refused (403), audited, and nothing reaches the
    PSP; an unknown token is a 404."""
    token = vault.tokenize("4242424242424242", merchant=OTHER_MERCHANT)["token"]
    body = authorize_body(token, merchant=MERCHANT)
    refused = gateway.post("/v1/authorizations", body)
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "payment_method[token]"
    assert intents_for(sandbox, body["charge_id"]) == []
    denials = [
        r
        for r in audit_records(plan)
        if r["component"] == "gateway"
        and r["event_type"] == "access.denied"
        and r["target"] == body["charge_id"]
    ]
    assert len(denials) == 1
    missing = gateway.post("/v1/authorizations", authorize_body("tok_" + "a" * 26))
    assert missing.status_code == 404


def test_allow_lists_per_endpoint(gateway: GatewayServer, vault: VaultServer, plan: Plan) -> None:
    """Payment operations are for `worker`, checkout sessions for `api`, status for both; a
    refused or missing identity is audited and changes nothing."""
    token = vault.tokenize("4242424242424242")["token"]
    body = authorize_body(token)
    assert gateway.post("/v1/authorizations", body, identity="api").status_code == 403
    assert gateway.post("/v1/authorizations", body, identity="dashboard").status_code == 403
    with gateway.client(None) as anonymous:
        assert anonymous.post("/v1/authorizations", json=body).status_code == 401
    session = {
        "session_id": new_id("ps"),
        "merchant_id": MERCHANT,
        "amount": 100,
        "currency": "usd",
        "success_url": "https://merchant.example/ok",
    }
    assert gateway.post("/v1/checkout_sessions", session, identity="worker").status_code == 403
    assert gateway.get(f"/v1/payments/{body['charge_id']}", identity="api").status_code == 404
    assert gateway.get(f"/v1/payments/{body['charge_id']}", identity="webhooks").status_code == 403
    # Nothing was authorized: the worker's first try now goes through.
    assert gateway.post("/v1/authorizations", body).json()["status"] == "succeeded"
    refusals = [
        r
        for r in audit_records(plan)
        if r["component"] == "gateway" and r["event_type"] == "access.service_identity_refused"
    ]
    callers = {r["actor"]["id"] for r in refusals}  # type: ignore[index]
    assert {"api", "dashboard", "unknown", "worker", "webhooks"} <= callers


def test_status_by_reference(gateway: GatewayServer, sandbox: SandboxServer) -> None:
    """`GET /v1/payments/{charge_id}` reports the PSP's current state of our charge."""
    body = authorize_body(psp_token(sandbox), method="psp_token", capture=False)
    gateway.post("/v1/authorizations", body)
    status = gateway.get(f"/v1/payments/{body['charge_id']}")
    assert status.status_code == 200
    assert status.json()["status"] == "requires_capture"
    unknown = gateway.get(f"/v1/payments/{new_id('ch')}")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "payment_not_found"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"amount": -5}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"charge_id": "charge-1"}, "charge_id"),
        ({"merchant_id": None}, "merchant_id"),
        ({"payment_method": {"type": "card", "token": "tok_x"}}, "payment_method[type]"),
        (
            {"payment_method": {"type": "vault_token", "token": "pm_abcdefghij"}},
            "payment_method[token]",
        ),
        ({"capture": "yes"}, "capture"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_requests_name_the_parameter(
    gateway: GatewayServer, change: dict[str, object], param: str
) -> None:
    """A malformed authorization is a 400 naming the parameter, never echoing its value."""
    body = {**authorize_body("tok_" + "b" * 26), **change}
    response = gateway.post("/v1/authorizations", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert "charge-1" not in response.text


def test_card_data_is_refused_before_anything_else(gateway: GatewayServer, plan: Plan) -> None:
    """A card number anywhere in a request is refused (400), audited, and not logged."""
    body = authorize_body("tok_" + "c" * 26)
    body["description"] = "card 4000 0000 0000 0077 please"
    response = gateway.post("/v1/authorizations", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "card_data_not_accepted"
    assert "0077" not in response.text
    assert any(
        r["event_type"] == "access.denied" and r["reason"] == "card_data_not_accepted"
        for r in audit_records(plan)
    )
