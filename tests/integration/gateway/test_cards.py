"""Every documented sandbox test card through vault + gateway + sandbox: the outcome, the
Stripe decline code and a clear message; the same through the SDK flow's PSP tokens."""

from __future__ import annotations

import pytest

from psp_sandbox.domain import DECLINES, TEST_CARDS, Brand, TestCard
from tests.integration.gateway.peers import (
    GatewayServer,
    VaultServer,
    authorize_body,
    psp_token,
)
from tests.integration.psp_sandbox.peer import SandboxServer

pytestmark = [pytest.mark.e2e, pytest.mark.psp]


def _check(answer: dict[str, object], card: TestCard) -> None:
    if card.outcome == "succeeded":
        assert answer["status"] == "succeeded", answer
        assert "decline_code" not in answer
        return
    decline = DECLINES[card.outcome]
    assert answer["status"] == "failed", answer
    assert answer["decline_code"] == decline.decline_code
    assert answer["failure_code"] == decline.code
    assert answer["message"] == decline.message
    assert str(answer["psp_reference"]).startswith("pi_")


@pytest.mark.parametrize("card", TEST_CARDS, ids=lambda c: f"{c.number[-4:]}-{c.outcome}")
def test_every_test_card_with_a_vault_token(
    gateway: GatewayServer, vault: VaultServer, card: TestCard
) -> None:
    """A vault-tokenized test card gets the sandbox's documented outcome and decline code."""
    cvc = "7391" if card.brand is Brand.amex else "123"
    token = vault.tokenize(card.number, cvc=cvc)["token"]
    response = gateway.post("/v1/authorizations", authorize_body(token, amount=1999))
    assert response.status_code == 200, response.text
    _check(response.json(), card)


@pytest.mark.parametrize(
    "card",
    [c for c in TEST_CARDS if c.outcome != "succeeded"],
    ids=lambda c: f"{c.number[-4:]}-{c.outcome}",
)
def test_every_decline_with_a_psp_token(
    gateway: GatewayServer, sandbox: SandboxServer, card: TestCard
) -> None:
    """The SDK flow's PSP tokens decline the same way (no vault involved)."""
    token = psp_token(sandbox, card.number)
    response = gateway.post(
        "/v1/authorizations", authorize_body(token, method="psp_token", capture=False)
    )
    _check(response.json(), card)


def test_a_live_card_is_declined_in_test_mode(gateway: GatewayServer, vault: VaultServer) -> None:
    """A valid number that is not a test card is declined `test_mode_live_card`."""
    token = vault.tokenize("4111111111111111")["token"]
    answer = gateway.post("/v1/authorizations", authorize_body(token)).json()
    assert answer["status"] == "failed"
    assert answer["decline_code"] == "test_mode_live_card"
    assert "test mode" in answer["message"]


def test_a_failed_charge_stays_failed(gateway: GatewayServer, vault: VaultServer) -> None:
    """A retried failed authorization answers the same failure; status agrees."""
    token = vault.tokenize("4000000000009995")["token"]
    body = authorize_body(token)
    first = gateway.post("/v1/authorizations", body).json()
    again = gateway.post("/v1/authorizations", body).json()
    assert first == again
    status = gateway.get(f"/v1/payments/{body['charge_id']}").json()
    assert status["status"] == "failed"
    assert status["decline_code"] == "insufficient_funds"
