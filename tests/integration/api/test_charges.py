"""Charges through the API on real SQLite adapters: create (one unit of work: events, job,
idempotency record), read fresh by id, list from the read model, capture, cancel; errors."""

from __future__ import annotations

import time
from typing import Any

from noncde.api.adapters.sql import SqlMerchantDirectory
from noncde.api.service import DirectoryService
from tests.integration.api.conftest import CHARGE, Api, ApiFactory


def charge_body(**changes: Any) -> dict[str, Any]:
    return {**CHARGE, **changes}


def test_a_charge_is_recorded_with_its_authorize_job(api: Api) -> None:
    """201 with status processing; the stream holds requested + risk_assessed; one job."""
    key = api.merchant()
    response = api.post(
        "/v1/charges", key, charge_body(description="order 7", metadata={"order": "7"})
    )
    assert response.status_code == 201, response.text
    charge = response.json()
    assert charge["object"] == "charge" and charge["status"] == "processing"
    assert (charge["flow"], charge["payment_method"]) == ("sdk", "pm_card_visa")
    assert charge["metadata"] == {"order": "7"} and charge["outcome"]["risk_decision"] == "allow"
    assert [e.type for e in api.stream(charge["id"])] == [
        "charge.requested",
        "charge.risk_assessed",
    ]
    (job,) = api.jobs("charge.authorize")
    assert job["payload"] == {
        "charge_id": charge["id"],
        "merchant_id": api.merchant_id(key),
        "amount": 2000,
        "currency": "usd",
        "capture": True,
        "payment_method": {"type": "psp_token", "token": "pm_card_visa"},
    }
    assert response.headers.get("idempotent-replayed") is None
    assert response.headers["x-request-id"] == api.stream(charge["id"])[0].correlation_id


def test_get_by_id_is_fresh_and_scoped_to_the_merchant(api: Api) -> None:
    """A read by id folds the stream at once; another merchant gets 404."""
    key, other = api.merchant("A"), api.merchant("B")
    charge = api.post("/v1/charges", key, charge_body(capture=False)).json()
    api.authorize(charge["id"])
    fresh = api.get(f"/v1/charges/{charge['id']}", key).json()
    assert fresh["status"] == "requires_capture" and fresh["amount_capturable"] == 2000
    missing = api.get(f"/v1/charges/{charge['id']}", other)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    assert api.get("/v1/charges/ch_doesnotexist000000001", key).status_code == 404
    assert api.get("/v1/charges/not-an-id", key).status_code == 404


def test_partial_capture_then_the_capture_outcome(api: Api) -> None:
    """Capture less than authorized: the job carries the amount; the outcome settles it."""
    key = api.merchant()
    charge = api.post("/v1/charges", key, charge_body(capture=False, amount=5000)).json()
    early = api.post(f"/v1/charges/{charge['id']}/capture", key, {"amount": 100})
    assert early.status_code == 422 and early.json()["error"]["code"] == "charge_not_capturable"
    api.authorize(charge["id"], 5000)
    too_much = api.post(f"/v1/charges/{charge['id']}/capture", key, {"amount": 5001})
    assert too_much.status_code == 422 and too_much.json()["error"]["param"] == "amount"
    captured = api.post(f"/v1/charges/{charge['id']}/capture", key, {"amount": 3000})
    assert captured.status_code == 200, captured.text
    assert captured.json()["capture_requested"] == 3000
    again = api.post(f"/v1/charges/{charge['id']}/capture", key, {"amount": 1000})
    assert again.status_code == 422 and again.json()["error"]["code"] == "charge_operation_pending"
    (job,) = api.jobs("charge.capture")
    assert job["payload"]["amount"] == 3000
    api.succeed(charge["id"], 3000)
    done = api.get(f"/v1/charges/{charge['id']}", key).json()
    assert (done["status"], done["amount_captured"], done["captured"]) == ("succeeded", 3000, True)


def test_cancel_releases_an_authorization(api: Api) -> None:
    """Cancel is accepted for requires_capture only and enqueues a cancel job."""
    key = api.merchant()
    charge = api.post("/v1/charges", key, charge_body(capture=False)).json()
    assert api.post(f"/v1/charges/{charge['id']}/cancel", key).status_code == 422
    api.authorize(charge["id"])
    canceled = api.post(f"/v1/charges/{charge['id']}/cancel", key)
    assert canceled.status_code == 200 and canceled.json()["cancel_requested"] is True
    assert len(api.jobs("charge.cancel")) == 1
    assert api.psp_event(type="payment.canceled", charge_id=charge["id"]).json()["applied"]
    assert api.get(f"/v1/charges/{charge['id']}", key).json()["status"] == "canceled"


def test_declines_relayed_by_the_gateway_fail_the_charge(api: Api) -> None:
    """A payment.failed event fails a processing charge with card_declined."""
    key = api.merchant()
    charge = api.post("/v1/charges", key, charge_body()).json()
    failed = api.psp_event(
        type="payment.failed",
        charge_id=charge["id"],
        decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
    )
    assert failed.status_code == 200 and failed.json()["applied"] is True
    shown = api.get(f"/v1/charges/{charge['id']}", key).json()
    assert (shown["status"], shown["failure_code"]) == ("failed", "card_declined")
    assert shown["outcome"]["type"] == "issuer_declined"
    late = api.psp_event(type="payment.succeeded", charge_id=charge["id"])
    assert late.json() | {"id": None} == {
        "id": None,
        "object": "psp_event",
        "received": True,
        "applied": False,
        "reason": "charge_failed",
    }


def test_lists_page_with_cursors_and_filter_by_status_and_created(api: Api) -> None:
    """Newest first; starting_after / ending_before page; has_more tells if more exist."""
    key = api.merchant()
    ids = [api.post("/v1/charges", key, charge_body(amount=100 + i)).json()["id"] for i in range(5)]
    api.authorize(ids[0])
    api.catch_up()
    first = api.get("/v1/charges", key, limit=2).json()
    assert [c["id"] for c in first["data"]] == [ids[4], ids[3]] and first["has_more"] is True
    assert first["url"] == "/v1/charges" and first["object"] == "list"
    second = api.get("/v1/charges", key, limit=2, starting_after=ids[3]).json()
    assert [c["id"] for c in second["data"]] == [ids[2], ids[1]] and second["has_more"] is True
    last = api.get("/v1/charges", key, limit=2, starting_after=ids[1]).json()
    assert [c["id"] for c in last["data"]] == [ids[0]] and last["has_more"] is False
    back = api.get("/v1/charges", key, limit=2, ending_before=ids[1]).json()
    assert [c["id"] for c in back["data"]] == [ids[3], ids[2]] and back["has_more"] is True
    waiting = api.get("/v1/charges", key, status="requires_capture").json()["data"]
    assert [c["id"] for c in waiting] == [ids[0]]
    future = int(time.time()) + 3600
    assert api.get("/v1/charges", key, **{"created[gte]": future}).json()["data"] == []
    assert len(api.get("/v1/charges", key, **{"created[lt]": future}).json()["data"]) == 5
    other = api.merchant("other")
    assert api.get("/v1/charges", other).json()["data"] == []
    bad = api.get("/v1/charges", other, starting_after=ids[0])
    assert bad.status_code == 404 and bad.json()["error"]["param"] == "starting_after"
    window = api.get("/v1/charges", key, starting_after=ids[4], ending_before=ids[1]).json()
    assert [c["id"] for c in window["data"]] == [ids[3], ids[2]]


def test_the_read_model_catches_up_by_itself(api: Api) -> None:
    """The background projector shows a new charge in lists without any help."""
    key = api.merchant()
    charge = api.post("/v1/charges", key, charge_body()).json()
    deadline = time.monotonic() + 5
    seen: list[str] = []
    while time.monotonic() < deadline and charge["id"] not in seen:
        seen = [c["id"] for c in api.get("/v1/charges", key).json()["data"]]
        time.sleep(0.02)
    assert charge["id"] in seen


def test_invalid_requests_name_the_parameter(api: Api) -> None:
    """Validation errors are 400 Stripe-style errors naming the parameter, never the value."""
    key = api.merchant()
    cases = [
        (charge_body(amount=0), "amount", "parameter_invalid"),
        (charge_body(amount="100"), "amount", "parameter_invalid"),
        (charge_body(currency="usdd"), "currency", "parameter_invalid"),
        (charge_body(currency="xyz"), "currency", "parameter_invalid"),
        (
            {"currency": "usd", "payment_method": CHARGE["payment_method"]},
            "amount",
            "parameter_missing",
        ),
        (charge_body(surprise=1), "surprise", "parameter_unknown"),
        (charge_body(metadata={"k" * 41: "v"}), "metadata", "parameter_invalid"),
    ]
    for body, param, code in cases:
        response = api.post("/v1/charges", key, body)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert (error["param"], error["code"], error["type"]) == (
            param,
            code,
            "invalid_request_error",
        ), body
    broken = api.client.post(
        "/v1/charges",
        content=b"{not json",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert broken.status_code == 400


def test_authentication_and_permissions(api: Api) -> None:
    """No key 401, bad key 401 (audited), publishable key 403, revoked key 401."""
    created = api.runtime.directory.create_merchant("Keys", actor="test-operator")
    assert api.get("/v1/charges", None).json()["error"]["code"] == "api_key_missing"
    bad = api.get("/v1/charges", "sk_test_" + "x" * 32)
    assert bad.status_code == 401
    audited = [r for r in api.audit_records() if r["event_type"] == "access.api_key_invalid"]
    assert audited and "sk_test_" not in str(audited)
    publishable = api.get("/v1/charges", created.publishable_key.value)
    assert publishable.status_code == 403
    secret = created.secret_key.value
    basic = api.client.get("/v1/charges", auth=(secret, ""))
    assert basic.status_code == 200
    api.runtime.directory.revoke_key(created.secret_key.key.id, actor="test-operator")
    assert api.get("/v1/charges", secret).status_code == 401


def test_a_key_revoked_elsewhere_stops_within_the_cache_time(make_api: ApiFactory) -> None:
    """Another process's revocation reaches this one within `auth_cache_s` (here 2 s; 0.3 s
    was shorter than a revocation plus a request on a loaded CI machine)."""
    api = make_api(rules=[], auth_cache_s=2.0)
    created = api.runtime.directory.create_merchant("Cached", actor="test-operator")
    key = created.secret_key.value
    assert api.get("/v1/charges", key).status_code == 200
    cached_at = time.monotonic()
    elsewhere = DirectoryService(
        SqlMerchantDirectory(api.runtime.db),
        api.runtime.directory.keyring,
        api.runtime.audit,
        api.runtime.platform.rules,
    )
    elsewhere.revoke_key(created.secret_key.key.id, actor="test-operator")
    assert api.get("/v1/charges", key).status_code == 200  # still cached
    assert time.monotonic() - cached_at < 2.0  # (so the 200 above was the cache's answer)
    time.sleep(max(0.0, 2.05 - (time.monotonic() - cached_at)))
    assert api.get("/v1/charges", key).status_code == 401


def test_the_gateways_relayed_event_shapes_are_accepted(api: Api) -> None:
    """Events shaped as cde.gateway relays them (docs/gateway.md: informational fields, the
    PaymentIntent total in `amount`) are stored: a partial capture records `amount_received`,
    a hosted session's payment and a pending refund are acknowledged without effect, and a
    canceled refund fails the refund."""
    key = api.merchant()
    charge = api.post("/v1/charges", key, charge_body(capture=False, amount=1999)).json()
    common = {"psp_reference": "pi_RelayShape0001", "currency": "usd", "created": 1795792351}
    authorized = api.psp_event(
        type="payment.authorized",
        charge_id=charge["id"],
        amount=1999,
        amount_capturable=1999,
        amount_received=0,
        psp_event_id="evt_RelayShape0001",
        **common,
    )
    assert authorized.status_code == 200 and authorized.json()["applied"], authorized.text
    assert api.post(f"/v1/charges/{charge['id']}/capture", key, {"amount": 1500}).status_code == 200
    captured = api.psp_event(
        type="payment.succeeded",
        charge_id=charge["id"],
        amount=1999,
        amount_capturable=0,
        amount_received=1500,
        **common,
    )
    assert captured.status_code == 200 and captured.json()["applied"], captured.text
    shown = api.get(f"/v1/charges/{charge['id']}", key).json()
    assert (shown["status"], shown["amount_captured"]) == ("succeeded", 1500)

    session = api.post(
        "/v1/payment_sessions",
        key,
        {
            "amount": 4200,
            "currency": "eur",
            "success_url": "https://shop.example/ok",
            "cancel_url": "https://shop.example/cart",
        },
    ).json()
    session_payment = api.psp_event(
        type="payment.succeeded",
        session_id=session["id"],
        amount=4200,
        amount_received=4200,
        psp_reference="pi_RelayShape0002",
        currency="eur",
    )
    assert session_payment.status_code == 200, session_payment.text
    assert session_payment.json()["applied"] is False

    refund = api.post("/v1/refunds", key, {"charge": charge["id"], "amount": 500}).json()
    refund_fields = {
        "charge_id": charge["id"],
        "refund_id": refund["id"],
        "psp_reference": "re_RelayShape0001",
        "psp_payment_reference": "pi_RelayShape0001",
        "amount": 500,
        "currency": "usd",
    }
    pending = api.psp_event(type="refund.pending", **refund_fields)
    assert pending.status_code == 200 and pending.json()["applied"] is False
    canceled = api.psp_event(
        type="refund.canceled", failure_code="refund_canceled", **refund_fields
    )
    assert canceled.status_code == 200 and canceled.json()["applied"] is True
    assert api.get(f"/v1/refunds/{refund['id']}", key).json()["status"] == "failed"
    unknown_field = api.psp_event(type="refund.pending", card_number_hint="x", **refund_fields)
    assert unknown_field.status_code == 400
