"""Hosted payment sessions: created through the gateway (its checkout-session contract),
completed by a PSP event relayed by the gateway, one-time use, expiry."""

from __future__ import annotations

from typing import Any

from tests.integration.api.conftest import Api, GatewayDouble

BODY = {
    "amount": 4200,
    "currency": "eur",
    "success_url": "https://shop.example/paid",
    "cancel_url": "https://shop.example/cart",
    "expires_in": 1800,
    "metadata": {"cart": "c-77"},
}


def completion(session_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "checkout_session.completed",
        "session_id": session_id,
        "psp_reference": "pi_session_paid_1",
        "amount": 4200,
        "currency": "eur",
        "payment_method": {
            "type": "psp_token",
            "token": "pm_from_checkout",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        },
        **extra,
    }


def test_a_session_is_created_at_the_gateway_and_recorded(api: Api, gateway: GatewayDouble) -> None:
    """The API calls the gateway with its own identity and answers with the PSP's URL."""
    key = api.merchant()
    response = api.post("/v1/payment_sessions", key, BODY)
    assert response.status_code == 201, response.text
    session = response.json()
    assert session["status"] == "open" and session["url"].startswith(gateway.url + "/pay/")
    # The 30-minute minimum is asked of the PSP with a minute to spare (its clock runs later).
    assert session["expires_at"] - session["created"] in range(1855, 1865)
    ((kind, caller, sent),) = gateway.calls
    assert (kind, caller, sent["session_id"], sent["amount"]) == (
        "create",
        "api",
        session["id"],
        4200,
    )
    assert sent["merchant_id"] == api.merchant_id(key)
    assert api.get(f"/v1/payment_sessions/{session['id']}", key).json() == session


def test_a_longer_session_expires_when_asked(api: Api) -> None:
    """Above the minimum, the session expires exactly `expires_in` seconds after creation."""
    key = api.merchant()
    response = api.post("/v1/payment_sessions", key, {**BODY, "expires_in": 7200})
    assert response.status_code == 201, response.text
    session = response.json()
    assert session["expires_at"] - session["created"] in range(7198, 7202)


def test_completion_records_the_charge_once(api: Api) -> None:
    """The relayed completion completes the session and records a captured redirect charge;
    a second completion (another PSP event) is ignored: a session is paid once."""
    key = api.merchant()
    session = api.post("/v1/payment_sessions", key, BODY).json()
    first = api.psp_event(**completion(session["id"]))
    assert first.status_code == 200 and first.json()["applied"] is True
    charge_id = first.json()["charge"]
    replay = api.psp_event(**completion(session["id"]), id=first.json()["id"])
    assert replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
    second = api.psp_event(**completion(session["id"], psp_reference="pi_other"))
    assert (
        second.json()["applied"] is False and second.json()["reason"] == "session_already_complete"
    )
    shown = api.get(f"/v1/payment_sessions/{session['id']}", key).json()
    assert (shown["status"], shown["charge"], shown["url"]) == ("complete", charge_id, None)
    charge = api.get(f"/v1/charges/{charge_id}", key).json()
    assert (charge["status"], charge["flow"], charge["amount_captured"]) == (
        "succeeded",
        "redirect",
        4200,
    )
    assert charge["payment_session"] == session["id"] and charge["metadata"] == {"cart": "c-77"}
    assert charge["payment_method_details"]["card"]["last4"] == "4242"
    assert api.jobs() == []  # the PSP already captured: no job
    expire = api.post(f"/v1/payment_sessions/{session['id']}/expire", key)
    assert expire.status_code == 422
    assert expire.json()["error"]["code"] == "payment_session_unexpected_state"


def test_expiry_closes_the_session_at_the_psp(api: Api, gateway: GatewayDouble) -> None:
    """Expire calls the gateway, records the expiry; a late completion is then ignored."""
    key = api.merchant()
    session = api.post("/v1/payment_sessions", key, BODY).json()
    expired = api.post(f"/v1/payment_sessions/{session['id']}/expire", key)
    assert expired.status_code == 200 and expired.json()["status"] == "expired"
    assert [c[0] for c in gateway.calls] == ["create", "expire"]
    again = api.post(f"/v1/payment_sessions/{session['id']}/expire", key)
    assert again.status_code == 422
    psp_expired = api.psp_event(type="checkout_session.expired", session_id=session["id"])
    assert psp_expired.json()["applied"] is False
    api.catch_up()
    listed = api.get("/v1/payment_sessions", key, status="expired").json()["data"]
    assert [s["id"] for s in listed] == [session["id"]]


def test_a_failing_gateway_records_nothing(api: Api, gateway: GatewayDouble) -> None:
    """503 when the gateway fails; the key is released so a retry runs again."""
    key = api.merchant()
    gateway.fail_with = 502
    failed = api.post("/v1/payment_sessions", key, BODY, **{"Idempotency-Key": "s-fail"})
    assert failed.status_code == 503 and failed.json()["error"]["type"] == "api_error"
    api.catch_up()
    assert api.get("/v1/payment_sessions", key).json()["data"] == []
    gateway.fail_with = None
    retried = api.post("/v1/payment_sessions", key, BODY, **{"Idempotency-Key": "s-fail"})
    assert retried.status_code == 201


def test_psp_events_need_the_gateway_identity(api: Api) -> None:
    """No token 401; the ingress's or the worker's identity 403, audited."""
    body = {"id": "pspevt_x", "type": "checkout_session.completed", "session_id": "ps_x"}
    assert api.client.post("/internal/v1/psp-events", json=body).status_code == 401
    for caller in ("ingress", "worker"):
        refused = api.client.post(
            "/internal/v1/psp-events", json=body, headers=api.pki.headers(caller)
        )
        assert refused.status_code == 403
    refusals = [
        r for r in api.audit_records() if r["event_type"] == "access.service_identity_refused"
    ]
    assert len(refusals) >= 3
    unknown = api.psp_event(type="checkout_session.completed", session_id="ps_unknown00000000001")
    assert unknown.status_code == 404


def test_a_paid_session_is_settled_under_its_payment_intent(api: Api) -> None:
    """The gateway names the session (`cs_…`) in `psp_reference` and its PaymentIntent in
    `psp_payment_reference`: the charge is captured under the PaymentIntent, which is the
    settlement file's key, so reconciliation matches it."""
    key = api.merchant()
    session = api.post("/v1/payment_sessions", key, BODY).json()
    paid = api.psp_event(
        **completion(
            session["id"],
            psp_reference="cs_test_SessionRef0001",
            psp_payment_reference="pi_SessionRef0001",
            payment_status="succeeded",
        )
    )
    assert paid.status_code == 200 and paid.json()["applied"] is True, paid.text
    captured = [e for e in api.stream(paid.json()["charge"]) if e.type == "charge.captured"]
    assert [e.data["psp_reference"] for e in captured] == ["pi_SessionRef0001"]
