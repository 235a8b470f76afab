"""The card ingress's view of the API: merchant lookup by API key, and charges with vault
tokens accepted only when the ingress relays them for a merchant with raw-card permission."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.integration.api.conftest import Api
from tests.integration.api.test_risk import VAULT_CHARGE


def test_merchant_auth_answers_the_ingress_only(api: Api) -> None:
    """The ingress gets the merchant and its capability; other callers 401/403."""
    key = api.merchant(raw_card_until="2099-03-31")
    body = {"api_key": key}
    answer = api.client.post(
        "/internal/v1/merchant-auth", json=body, headers=api.pki.headers("ingress")
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "merchant_id": api.merchant_id(key),
        "livemode": False,
        "capabilities": {"raw_card_data": {"active": True, "attestation_expires_at": "2099-03-31"}},
    }
    plain = api.merchant()
    inactive = api.client.post(
        "/internal/v1/merchant-auth", json={"api_key": plain}, headers=api.pki.headers("ingress")
    ).json()
    assert inactive["capabilities"]["raw_card_data"] == {
        "active": False,
        "attestation_expires_at": None,
    }
    unknown = api.client.post(
        "/internal/v1/merchant-auth",
        json={"api_key": "sk_test_" + "0" * 32},
        headers=api.pki.headers("ingress"),
    )
    assert unknown.status_code == 401
    assert api.client.post("/internal/v1/merchant-auth", json=body).status_code == 401
    gateway = api.client.post(
        "/internal/v1/merchant-auth", json=body, headers=api.pki.headers("gateway")
    )
    assert gateway.status_code == 403
    wrong_audience = api.client.post(
        "/internal/v1/merchant-auth", json=body, headers=api.pki.headers("ingress", "vault")
    )
    assert wrong_audience.status_code == 401


def test_vault_tokens_only_through_the_ingress_for_permitted_merchants(api: Api) -> None:
    """Direct: 403; via ingress without the capability: 403; with it: 201, flow s2s."""
    permitted = api.merchant(raw_card_until="2099-12-31")
    plain = api.merchant()
    direct = api.post("/v1/charges", permitted, VAULT_CHARGE)
    assert direct.status_code == 403
    assert direct.json()["error"]["code"] == "vault_token_not_permitted"
    refused = api.post("/v1/charges", plain, VAULT_CHARGE, **api.pki.headers("ingress"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "raw_card_data_not_permitted"
    relayed = api.post("/v1/charges", permitted, VAULT_CHARGE, **api.pki.headers("ingress"))
    assert relayed.status_code == 201, relayed.text
    charge = relayed.json()
    assert charge["flow"] == "s2s" and charge["payment_method"] == "tok_riskcard00000001"
    assert charge["payment_method_details"]["card"]["last4"] == "3184"
    worker = api.post("/v1/charges", permitted, VAULT_CHARGE, **api.pki.headers("worker"))
    assert worker.status_code == 403
    psp_via_ingress = api.post(
        "/v1/charges",
        permitted,
        {**VAULT_CHARGE, "payment_method": {"type": "psp_token", "token": "pm_x"}},
        **api.pki.headers("ingress"),
    )
    assert psp_via_ingress.status_code == 400


def test_an_expired_attestation_stops_raw_cards(api: Api) -> None:
    """Capability revoked or attestation past: 403 even through the ingress."""
    key = api.merchant(raw_card_until=(datetime.now(UTC) + timedelta(days=1)).date().isoformat())
    merchant_id = api.merchant_id(key)
    assert (
        api.post("/v1/charges", key, VAULT_CHARGE, **api.pki.headers("ingress")).status_code == 201
    )
    api.runtime.directory.revoke_raw_card(merchant_id, actor="test-operator", reason="lapsed")
    again = api.post("/v1/charges", key, VAULT_CHARGE, **api.pki.headers("ingress"))
    assert again.status_code == 403
    events = {r["event_type"] for r in api.audit_records() if r.get("target") == merchant_id}
    assert {
        "identity.capability_grant",
        "admin.raw_card_api_enable",
        "identity.capability_revoke",
        "admin.raw_card_api_disable",
    } <= events


def test_the_ingress_retry_with_a_fresh_token_replays(api: Api) -> None:
    """The ingress tokenizes again on a retry: same card, same key → the first answer."""
    key = api.merchant(raw_card_until="2099-12-31")
    headers = {**api.pki.headers("ingress"), "Idempotency-Key": "s2s-1"}
    first = api.post("/v1/charges", key, VAULT_CHARGE, **headers)
    retry_method = {**VAULT_CHARGE["payment_method"], "token": "tok_freshtoken0000002"}
    retry = api.post(
        "/v1/charges", key, {**VAULT_CHARGE, "payment_method": retry_method}, **headers
    )
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"


def test_webhook_endpoints_and_secrets_for_the_webhooks_worker(api: Api) -> None:
    """Endpoints with their secrets go to the `webhooks` identity only; secrets sealed at rest."""
    key = api.merchant()
    merchant_id = api.merchant_id(key)
    endpoint, secret = api.runtime.directory.add_webhook_endpoint(
        merchant_id, "https://shop.example/hooks", ["charge.*"], actor="test-operator"
    )
    listed = api.client.get(
        "/internal/v1/webhook_endpoints",
        params={"merchant_id": merchant_id},
        headers=api.pki.headers("webhooks"),
    )
    assert listed.status_code == 200
    (shown,) = listed.json()["data"]
    assert (shown["id"], shown["secret"], shown["enabled_events"]) == (
        endpoint.id,
        secret,
        ["charge.*"],
    )
    assert (
        secret.startswith("whsec_")
        and secret.encode() not in (api.var / "noncde" / "api.db").read_bytes()
    )
    denied = api.client.get("/internal/v1/webhook_endpoints", headers=api.pki.headers("dashboard"))
    assert denied.status_code == 403
