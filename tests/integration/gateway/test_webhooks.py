"""Inbound PSP webhooks and the relay to the API, with real processes: the sandbox signs and
delivers to the gateway, the gateway verifies, drops duplicates, normalizes to token-only
events and relays them (service identity `gateway`) from its durable outbox to the recording
API, which may be down."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from fincore.cards import find_card_data
from fincore.runner import Plan
from fincore.web import client_ssl_context
from tests.integration.gateway.conftest import audit_records
from tests.integration.gateway.peers import (
    MERCHANT,
    GatewayServer,
    RecordingApi,
    authorize_body,
    new_id,
    psp_token,
)
from tests.integration.psp_sandbox.peer import SandboxServer, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.psp]

RELAY_KEYS = {
    "id",
    "psp_event_id",
    "created",
    "type",
    "psp_reference",
    "charge_id",
    "session_id",
    "refund_id",
    "psp_payment_reference",
    "amount",
    "currency",
    "amount_received",
    "amount_capturable",
    "decline_code",
    "failure_code",
    "message",
    "payment_status",
    "payment_method",
}


def _token_only(event: dict[str, Any]) -> None:
    assert set(event) <= RELAY_KEYS, set(event) - RELAY_KEYS
    assert find_card_data(event) == []
    assert event["id"].startswith("pspevt_")


def _signature(secret: str, payload: bytes, at: int) -> str:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def _post_webhook(gateway: GatewayServer, payload: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return httpx.post(
        gateway.url + "/v1/psp/webhooks",
        content=payload,
        headers=headers,
        verify=client_ssl_context(gateway.plan.ca_file),
        timeout=10,
    )


def _checkout(gateway: GatewayServer, amount: int = 3100) -> dict[str, Any]:
    body = {
        "session_id": new_id("ps"),
        "merchant_id": MERCHANT,
        "amount": amount,
        "currency": "eur",
        "success_url": "https://merchant.example/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://merchant.example/cancel",
        "expires_at": int(time.time()) + 3600,
    }
    response = gateway.post("/v1/checkout_sessions", body, identity="api")
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def test_payment_events_are_relayed_token_only(
    gateway: GatewayServer, sandbox: SandboxServer, recording_api: RecordingApi
) -> None:
    """Authorization, capture and a decline reach the API as `payment.*` events naming our
    charge, with nothing card-like, from the `gateway` identity."""
    body = authorize_body(psp_token(sandbox), method="psp_token", capture=False, amount=800)
    charge = body["charge_id"]
    gateway.post("/v1/authorizations", body)
    gateway.post("/v1/captures", {"charge_id": charge})
    declined = authorize_body(psp_token(sandbox, "4000000000009995"), method="psp_token")
    gateway.post("/v1/authorizations", declined)
    events = recording_api.wait_for(
        lambda ev: (
            {"payment.authorized", "payment.succeeded"}
            <= {e["type"] for e in ev if e.get("charge_id") == charge}
            and any(e.get("charge_id") == declined["charge_id"] for e in ev)
        )
    )
    mine = [e for e in events if e.get("charge_id") in (charge, declined["charge_id"])]
    for event in mine:
        _token_only(event)
    succeeded = next(e for e in mine if e["type"] == "payment.succeeded")
    assert succeeded["amount_received"] == 800
    failed = next(e for e in mine if e.get("charge_id") == declined["charge_id"])
    assert failed["type"] == "payment.failed"
    assert failed["decline_code"] == "insufficient_funds"
    assert failed["message"] == "Your card has insufficient funds."
    assert {d.identity for d in recording_api.deliveries} == {"gateway"}


def test_hosted_checkout_completed_then_refunded(
    gateway: GatewayServer, sandbox: SandboxServer, recording_api: RecordingApi
) -> None:
    """A session paid on the PSP's page reaches the API with the PSP token and display data of
    the card (no number); the API's charge id can then be refunded through the gateway."""
    session = _checkout(gateway)
    assert session["url"].startswith(sandbox.url)
    again = gateway.post(
        "/v1/checkout_sessions",
        {
            "session_id": session["session_id"],
            "merchant_id": MERCHANT,
            "amount": 3100,
            "currency": "eur",
            "success_url": "https://merchant.example/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://merchant.example/cancel",
            "expires_at": session["expires_at"],
        },
        identity="api",
    ).json()
    assert again["psp_session_id"] == session["psp_session_id"]  # idempotent by session_id
    paid = httpx.post(
        session["url"],
        data={
            "email": "buyer@example.com",
            "number": "3782 822463 10005",
            "exp": "11 / 33",
            "cvc": "7391",
            "name": "Ada Buyer",
        },
        timeout=10,
    )
    assert paid.status_code == 303
    assert paid.headers["location"].startswith("https://merchant.example/done")
    events = recording_api.wait_for(
        lambda ev: any(
            e["type"] == "checkout_session.completed" and e["session_id"] == session["session_id"]
            for e in ev
        )
    )
    completed = next(
        e
        for e in events
        if e["type"] == "checkout_session.completed" and e["session_id"] == session["session_id"]
    )
    _token_only(completed)
    assert completed["psp_reference"] == session["psp_session_id"]
    assert completed["payment_status"] == "succeeded"
    assert completed["amount"] == 3100
    method = completed["payment_method"]
    assert method["type"] == "psp_token" and method["token"].startswith("pm_")
    assert method["card"] == {"brand": "amex", "last4": "0005", "exp_month": 11, "exp_year": 2033}
    # The API names the payment by its own charge id and the PSP reference it was told.
    charge = new_id("ch")
    refund_id = new_id("re")
    refund = gateway.post(
        "/v1/refunds",
        {
            "refund_id": refund_id,
            "charge_id": charge,
            "amount": 1000,
            "psp_reference": completed["psp_payment_reference"],
        },
    )
    assert refund.status_code == 200, refund.text
    assert refund.json()["status"] == "succeeded"
    refunded = recording_api.wait_for(lambda ev: any(e.get("refund_id") == refund_id for e in ev))
    event = next(e for e in refunded if e.get("refund_id") == refund_id)
    assert event["type"] == "refund.succeeded"
    assert event["charge_id"] == charge
    assert event["amount"] == 1000
    _token_only(event)
    status = gateway.get(f"/v1/payments/{charge}", identity="api").json()
    assert status["status"] == "succeeded"
    assert status["psp_reference"] == completed["psp_payment_reference"]


def test_only_our_sessions_payments_can_be_linked(
    gateway: GatewayServer, sandbox: SandboxServer
) -> None:
    """A PSP payment that is not one of our checkout sessions cannot be adopted by a charge id
    (a refund naming it is a 404, and the payment is untouched)."""
    made = sandbox.api(
        "POST",
        "/v1/payment_intents",
        data={
            "amount": "500",
            "currency": "usd",
            "payment_method": psp_token(sandbox),
            "confirm": "true",
        },
    ).json()
    refused = gateway.post(
        "/v1/refunds",
        {"refund_id": new_id("re"), "charge_id": new_id("ch"), "psp_reference": made["id"]},
    )
    assert refused.status_code == 404
    after = sandbox.api("GET", f"/v1/payment_intents/{made['id']}").json()
    assert after["amount_received"] == 500


def test_checkout_session_expired(gateway: GatewayServer, recording_api: RecordingApi) -> None:
    """Expiring a session through the gateway is relayed as `checkout_session.expired`."""
    session = _checkout(gateway)
    expired = gateway.post(
        f"/v1/checkout_sessions/{session['session_id']}/expire", {}, identity="api"
    )
    assert expired.status_code == 200, expired.text
    assert expired.json()["status"] == "expired"
    again = gateway.post(
        f"/v1/checkout_sessions/{session['session_id']}/expire", {}, identity="api"
    )
    assert again.json()["status"] == "expired"
    events = recording_api.wait_for(
        lambda ev: any(
            e["type"] == "checkout_session.expired" and e.get("session_id") == session["session_id"]
            for e in ev
        )
    )
    for event in events:
        _token_only(event)
    page = httpx.get(session["url"], timeout=10)
    assert page.status_code == 410


def test_duplicate_deliveries_are_dropped(
    gateway: GatewayServer, sandbox: SandboxServer, recording_api: RecordingApi
) -> None:
    """Every event delivered twice by the PSP (and once more by hand) reaches the API once."""
    sandbox.fault(kind="webhook_duplicate", next=10)
    body = authorize_body(psp_token(sandbox), method="psp_token")
    gateway.post("/v1/authorizations", body)
    events = recording_api.wait_for(
        lambda ev: any(e.get("charge_id") == body["charge_id"] for e in ev)
    )
    relayed = next(e for e in events if e.get("charge_id") == body["charge_id"])
    evt = relayed["psp_event_id"]
    wait_until(lambda: len([d for d in sandbox.deliveries(evt) if d["state"] == "delivered"]) >= 2)
    payload = json.dumps(sandbox.api("GET", f"/v1/events/{evt}").json()).encode()
    by_hand = _post_webhook(
        gateway, payload, _signature(sandbox.webhook_secret, payload, int(time.time()))
    )
    assert by_hand.status_code == 200
    assert by_hand.json() == {"received": True, "duplicate": True, "relayed": False}
    time.sleep(1.0)  # let any wrong extra relay arrive
    assert len(recording_api.of(id=relayed["id"])) == 1


def test_forged_and_stale_webhooks_are_refused_and_audited(
    gateway: GatewayServer, sandbox: SandboxServer, recording_api: RecordingApi, plan: Plan
) -> None:
    """Wrong secret, tampered body, stale or future timestamp and a missing header are each a
    400, an audit record, and nothing relayed."""
    now = int(time.time())
    event = {
        "id": "evt_" + new_id("x")[2:],
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": now,
        "data": {
            "object": {
                "object": "payment_intent",
                "id": "pi_forged0001",
                "status": "succeeded",
                "amount": 100,
                "currency": "usd",
                "metadata": {"reference": new_id("ch")},
            }
        },
    }
    payload = json.dumps(event).encode()
    secret = sandbox.webhook_secret
    attempts = [
        _signature("whsec_not_the_secret", payload, now),
        _signature(secret, payload + b" ", now),  # signed something else
        _signature(secret, payload, now - 301),
        _signature(secret, payload, now + 400),
        None,
    ]

    def failures() -> int:
        return sum(
            1 for r in audit_records(plan) if r["event_type"] == "psp.webhook_verification_failure"
        )

    before = failures()
    for signature in attempts:
        response = _post_webhook(gateway, payload, signature)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "webhook_signature_invalid"
    assert failures() == before + len(attempts)
    time.sleep(0.5)
    assert recording_api.of(psp_event_id=event["id"]) == []
    # The same event, signed with the real secret and fresh, is accepted once (but it names
    # no charge of ours, so nothing is relayed).
    genuine = _post_webhook(gateway, payload, _signature(secret, payload, now))
    assert genuine.json() == {"received": True, "duplicate": False, "relayed": False}


def test_api_refusals_are_retried(
    gateway: GatewayServer, sandbox: SandboxServer, recording_api: RecordingApi
) -> None:
    """When the API answers 500 and then 503, the same event is sent again until stored."""
    recording_api.statuses.extend([500, 503])
    body = authorize_body(psp_token(sandbox), method="psp_token")
    gateway.post("/v1/authorizations", body)
    events = recording_api.wait_for(
        lambda ev: any(e.get("charge_id") == body["charge_id"] for e in ev)
    )
    relayed = next(e for e in events if e.get("charge_id") == body["charge_id"])
    answers = [
        d.status for d in recording_api.deliveries if json.loads(d.body)["id"] == relayed["id"]
    ]
    assert answers[-1] == 200
    assert recording_api.statuses == []


def test_relay_survives_an_api_outage_and_a_restart(
    gateway: GatewayServer, sandbox: SandboxServer, recording_api: RecordingApi
) -> None:
    """With the API down, accepted events wait in the outbox, across a gateway restart, and
    are all delivered, once each, when the API is back."""
    recording_api.stop()
    charges = []
    try:
        for _ in range(3):
            body = authorize_body(psp_token(sandbox), method="psp_token")
            assert gateway.post("/v1/authorizations", body).json()["status"] == "succeeded"
            charges.append(body["charge_id"])
        wait_until(lambda: gateway.cli("outbox")["pending"] >= 3, timeout_s=30)
        gateway.stop()
        gateway.start()
        assert gateway.cli("outbox")["pending"] >= 3
    finally:
        recording_api.start()
    events = recording_api.wait_for(
        lambda ev: set(charges) <= {e.get("charge_id") for e in ev}, timeout_s=30
    )
    for charge in charges:
        ids = {e["id"] for e in events if e.get("charge_id") == charge}
        for event_id in ids:
            assert len(recording_api.of(id=event_id)) == 1
    wait_until(lambda: gateway.cli("outbox")["pending"] == 0, timeout_s=30)
