"""The gateway's Stripe-adapter path against localstripe (a third-party fake Stripe) where
localstripe supports it: vault-token and PSP-token payments, manual capture, cancel, refund,
the decline card, and status by reference (the gateway's own record of the PSP id)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fincore.netutil import free_port
from fincore.runner import Plan
from tests.harness.peers import LocalStripe
from tests.integration.gateway.peers import (
    GatewayServer,
    RecordingApi,
    VaultServer,
    authorize_body,
    gateway_env,
    new_id,
    start_gateway,
)

pytestmark = [pytest.mark.e2e, pytest.mark.psp]


@pytest.fixture(scope="module")
def stripe_gateway(
    plan: Plan,
    vault: VaultServer,
    recording_api: RecordingApi,
    localstripe_server: LocalStripe,
) -> Iterator[GatewayServer]:
    """A gateway (own port and database) whose PSP is localstripe."""
    env = gateway_env(
        plan,
        localstripe_server.url,
        localstripe_server.api_key,
        "whsec_localstripe_unused",
        recording_api.url,
        DB_URL=f"sqlite:///{plan.var_dir / 'cde' / 'gateway-localstripe.db'}",
        PSP_READ_TIMEOUT_S="10",
    )
    env["FINCORE_PORT"] = str(free_port())
    yield from start_gateway(plan, env, name="gateway-localstripe")


def _pm(localstripe: LocalStripe, number: str) -> str:
    response = httpx.post(
        localstripe.url + "/v1/payment_methods",
        auth=(localstripe.api_key, ""),
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["id"]
    return token


@pytest.mark.parametrize("method", ["vault_token", "psp_token"])
def test_capture_refund_and_cancel(
    stripe_gateway: GatewayServer,
    vault: VaultServer,
    localstripe_server: LocalStripe,
    method: str,
) -> None:
    """Manual capture then a partial refund, and a cancelled authorization, on localstripe."""

    def token() -> str:
        if method == "vault_token":
            return str(vault.tokenize("4242424242424242")["token"])
        return _pm(localstripe_server, "4242424242424242")

    body = authorize_body(token(), method=method, capture=False, amount=2000)
    auth = stripe_gateway.post("/v1/authorizations", body).json()
    assert auth["status"] == "requires_capture", auth
    captured = stripe_gateway.post("/v1/captures", {"charge_id": body["charge_id"]}).json()
    assert captured["status"] == "succeeded"
    refund = stripe_gateway.post(
        "/v1/refunds", {"refund_id": new_id("re"), "charge_id": body["charge_id"], "amount": 500}
    ).json()
    assert refund["status"] == "succeeded"
    status = stripe_gateway.get(f"/v1/payments/{body['charge_id']}").json()
    assert status["status"] == "succeeded"
    other = authorize_body(token(), method=method, capture=False)
    assert stripe_gateway.post("/v1/authorizations", other).json()["status"] == "requires_capture"
    canceled = stripe_gateway.post("/v1/cancellations", {"charge_id": other["charge_id"]}).json()
    assert canceled["status"] == "canceled"


def test_automatic_capture_and_the_decline_card(
    stripe_gateway: GatewayServer, vault: VaultServer
) -> None:
    """An automatic capture succeeds; localstripe's decline card is `generic_decline`."""
    paid = stripe_gateway.post(
        "/v1/authorizations", authorize_body(vault.tokenize("5555555555554444")["token"])
    ).json()
    assert paid["status"] == "succeeded"
    declined = stripe_gateway.post(
        "/v1/authorizations", authorize_body(vault.tokenize("4000000000000341")["token"])
    ).json()
    assert declined["status"] == "failed"
    assert declined["decline_code"] == "generic_decline"
    assert declined["message"]
