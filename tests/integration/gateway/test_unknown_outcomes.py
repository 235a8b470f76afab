"""Lost PSP answers (sandbox fault injection): a timeout, a 5xx or a lost connection is
`unknown`, never guessed; `GET /v1/payments/{charge_id}` or a retry with the same reference
resolves it, and no retry ever creates a second payment or refund."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fincore.netutil import free_port
from fincore.runner import Plan
from tests.integration.gateway.conftest import audit_records
from tests.integration.gateway.peers import (
    GatewayServer,
    RecordingApi,
    VaultServer,
    authorize_body,
    gateway_env,
    intents_for,
    new_id,
    payment_method_of,
    psp_token,
    start_gateway,
)
from tests.integration.psp_sandbox.peer import SandboxServer

pytestmark = [pytest.mark.e2e, pytest.mark.psp]
HOLD_S = 4  # the gateway's PSP read timeout in these tests is 2 s


def test_timeout_after_the_payment_was_made(
    gateway: GatewayServer, sandbox: SandboxServer, vault: VaultServer
) -> None:
    """The PSP made the payment but its answer never came: `unknown`, then the status call
    finds the payment and a retry answers it without charging again."""
    token = vault.tokenize("4242424242424242")["token"]
    body = authorize_body(token)
    sandbox.fault(
        kind="timeout", next=1, hold_s=HOLD_S, execute=True, path_prefix="/v1/payment_intents"
    )
    first = gateway.post("/v1/authorizations", body).json()
    assert first["status"] == "unknown"
    assert "GET /v1/payments" in first["message"]
    status = gateway.get(f"/v1/payments/{body['charge_id']}").json()
    assert status["status"] == "succeeded"
    retry = gateway.post("/v1/authorizations", body).json()
    assert retry["status"] == "succeeded"
    assert retry["psp_reference"] == status["psp_reference"]
    assert [i["id"] for i in intents_for(sandbox, body["charge_id"])] == [retry["psp_reference"]]


def test_timeout_before_anything_was_done(
    gateway: GatewayServer, sandbox: SandboxServer, vault: VaultServer, plan: Plan
) -> None:
    """The PSP did nothing: `unknown`, the status call says no payment exists, and the retry
    pays with the PSP token made the first time (its CVC check intact, one detokenization)."""
    token = vault.tokenize("5555555555554444", cvc="987")["token"]
    body = authorize_body(token)
    sandbox.fault(
        kind="timeout", next=1, hold_s=HOLD_S, execute=False, path_prefix="/v1/payment_intents"
    )
    assert gateway.post("/v1/authorizations", body).json()["status"] == "unknown"
    missing = gateway.get(f"/v1/payments/{body['charge_id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "payment_not_found"
    retry = gateway.post("/v1/authorizations", body).json()
    assert retry["status"] == "succeeded"
    assert len(intents_for(sandbox, body["charge_id"])) == 1
    method = payment_method_of(sandbox, retry["psp_reference"])
    assert method["card"]["checks"]["cvc_check"] == "unchecked"  # the CVC went with it
    reads = [
        r
        for r in audit_records(plan)
        if r["event_type"] == "card.detokenize" and r["target"] == token
    ]
    assert len(reads) == 1


def test_a_5xx_is_unknown(gateway: GatewayServer, sandbox: SandboxServer) -> None:
    """A 500 from the PSP is `unknown`; the retry resolves it with one payment."""
    body = authorize_body(psp_token(sandbox), method="psp_token")
    sandbox.fault(kind="error", status=500, next=1, path_prefix="/v1/payment_intents")
    assert gateway.post("/v1/authorizations", body).json()["status"] == "unknown"
    assert gateway.post("/v1/authorizations", body).json()["status"] == "succeeded"
    assert len(intents_for(sandbox, body["charge_id"])) == 1


def test_capture_timeout_resolved_by_status(gateway: GatewayServer, sandbox: SandboxServer) -> None:
    """A capture whose answer was lost is `unknown`; the status call shows it captured."""
    body = authorize_body(psp_token(sandbox), method="psp_token", capture=False, amount=900)
    auth = gateway.post("/v1/authorizations", body).json()
    assert auth["status"] == "requires_capture"
    sandbox.fault(
        kind="timeout", next=1, hold_s=HOLD_S, execute=True, path_prefix="/v1/payment_intents"
    )
    lost = gateway.post("/v1/captures", {"charge_id": body["charge_id"]}).json()
    assert lost["status"] == "unknown"
    status = gateway.get(f"/v1/payments/{body['charge_id']}").json()
    assert status["status"] == "succeeded"
    assert status["amount_received"] == 900


def test_refund_timeout_resolved_by_retry(gateway: GatewayServer, sandbox: SandboxServer) -> None:
    """A refund whose answer was lost is `unknown`; retrying the same refund id answers the
    refund the PSP made (one refund, not two)."""
    body = authorize_body(psp_token(sandbox), method="psp_token", amount=1500)
    paid = gateway.post("/v1/authorizations", body).json()
    refund = {"refund_id": new_id("re"), "charge_id": body["charge_id"], "amount": 700}
    sandbox.fault(kind="timeout", next=1, hold_s=HOLD_S, execute=True, path_prefix="/v1/refunds")
    assert gateway.post("/v1/refunds", refund).json()["status"] == "unknown"
    time.sleep(0.5)
    retry = gateway.post("/v1/refunds", refund).json()
    assert retry["status"] == "succeeded"
    made = sandbox.api("GET", "/v1/refunds", params={"payment_intent": paid["psp_reference"]})
    assert [r["id"] for r in made.json()["data"]] == [retry["psp_reference"]]


@pytest.fixture
def gateway_without_psp(
    plan: Plan, sandbox: SandboxServer, recording_api: RecordingApi, vault: VaultServer
) -> Iterator[GatewayServer]:
    """A second gateway (own state) whose PSP address answers nothing (connection refused)."""
    env = gateway_env(
        plan,
        f"http://127.0.0.1:{free_port()}",
        sandbox.secret_key,
        sandbox.webhook_secret,
        recording_api.url,
        DB_URL=f"sqlite:///{plan.var_dir / 'cde' / 'gateway-nopsp.db'}",
    )
    env["FINCORE_PORT"] = str(free_port())
    yield from start_gateway(plan, env, name="gateway-nopsp")


def test_connection_loss(
    gateway_without_psp: GatewayServer, sandbox: SandboxServer, vault: VaultServer
) -> None:
    """With the PSP unreachable, an authorization is `unknown` and the status call is a 503;
    a vault-token payment stops at the PSP tokenization (503, nothing charged)."""
    body = authorize_body(psp_token(sandbox), method="psp_token")
    assert gateway_without_psp.post("/v1/authorizations", body).json()["status"] == "unknown"
    status = gateway_without_psp.get(f"/v1/payments/{body['charge_id']}")
    assert status.status_code == 503
    assert status.json()["error"]["code"] == "psp_unavailable"
    token = vault.tokenize("4242424242424242")["token"]
    vaulted = gateway_without_psp.post("/v1/authorizations", authorize_body(token))
    assert vaulted.status_code == 503
    assert vaulted.json()["error"]["code"] == "psp_unavailable"
