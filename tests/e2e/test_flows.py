"""Every merchant flow end to end on the real platform (runner-started processes of both zones,
the PSP sandbox): S2S raw cards permitted and refused, SDK tokens, hosted sessions paid in
Chromium, partial captures, partial refunds, declines, risk blocks, and one Idempotency-Key
under 50 concurrent requests. Outcomes are read back from the API and from the PSP itself."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from fincore.demo import CHROMIUM, CHROMIUM_ARGS, MerchantSite, canary_pan
from fincore.ids import random_token
from fincore.pan_sweep import sweep
from fincore.seed import psp_publishable_key
from tests.e2e.conftest import TERMINAL, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.psp]

# Succeeding test cards of the PSP sandbox, one per test: the default risk rules allow at most
# 15 raw-card charges per card and hour, and each test stays well below that.
VISA, VISA_DEBIT, MASTERCARD, MASTERCARD_2 = (
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "2223003122003222",
)
MC_DEBIT, DISCOVER, JCB = "5200828282828210", "6011111111111117", "3566002020360505"


def test_s2s_raw_card_by_a_permitted_merchant_succeeds(stack: Stack) -> None:
    """The ingress tokenizes the card in the vault and hands the API a vault token; the job
    worker charges it through the gateway; the PSP holds one payment for the charge."""
    key = stack.seed.raw.secret_key
    records = stack.vault_records()
    created = stack.raw_card_charge(key, VISA, 1999)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["flow"], body["status"]) == ("s2s", "processing")
    assert body["payment_method"].startswith("tok_")
    assert body["payment_method_details"]["card"]["last4"] == "4242"
    assert VISA not in created.text
    charge = stack.charge(key, body["id"])
    assert (charge["status"], charge["amount_captured"]) == ("succeeded", 1999)
    assert stack.vault_records() == records + 1
    (intent,) = stack.intents_of(body["id"])
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 1999)


def test_s2s_raw_card_by_an_unpermitted_merchant_is_refused_and_nothing_is_stored(
    stack: Stack, tmp_path: Path
) -> None:
    """403 before the card is read: no vault record, no event, and the card (a canary only
    this test uses) is nowhere in the non-CDE stores and logs or the CDE's logs."""
    key = stack.seed.sdk.secret_key
    canary = canary_pan()
    records, head = stack.vault_records(), stack.event_head()
    refused = stack.raw_card_charge(key, canary, 1000, cvc="9513")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "raw_card_data_not_permitted"
    assert canary not in refused.text
    assert (stack.vault_records(), stack.event_head()) == (records, head)
    assert stack.sweep([canary, "9513"]) == []
    planted = tmp_path / "planted.log"
    planted.write_text(f"card {canary} cvc 9513\n")
    assert len(sweep([str(planted)], [canary, "9513"])) >= 2  # the sweep does find them


def test_sdk_token_charge(stack: Stack) -> None:
    """A PSP token made with the sandbox's publishable key (as its SDK does) is charged by the
    merchant's secret key at the API: one PSP payment, captured."""
    key = stack.seed.sdk.secret_key
    token = stack.psp_token(MASTERCARD)
    created = stack.api(
        "POST",
        "/v1/charges",
        key,
        {
            "amount": 2400,
            "currency": "usd",
            "payment_method": {"type": "psp_token", "token": token},
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["flow"] == "sdk"
    charge = stack.charge(key, created.json()["id"])
    assert (charge["status"], charge["amount_captured"]) == ("succeeded", 2400)
    (intent,) = stack.intents_of(charge["id"])
    assert intent["payment_method"] == token


@pytest.mark.browser
def test_hosted_session_paid_in_the_browser_then_refunded(stack: Stack) -> None:
    """The buyer pays the session on the PSP's hosted page in Chromium and lands on the
    merchant's success URL; the PSP's webhook, relayed by the gateway, completes the session
    with a captured charge under the PaymentIntent, which can then be partly refunded."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium (/usr/bin/chromium) is not installed")
    from playwright.sync_api import sync_playwright

    key = stack.seed.sdk.secret_key
    site = MerchantSite(
        api_url=stack.plan.url("api"),
        ca_file=stack.plan.ca_file,
        sandbox_url=stack.plan.url("psp-sandbox"),
        psp_publishable_key=psp_publishable_key(stack.plan) or "",
        secret_key=key,
    ).start()
    try:
        created = stack.api(
            "POST",
            "/v1/payment_sessions",
            key,
            {
                "amount": 4200,
                "currency": "eur",
                "success_url": site.url + "/paid",
                "cancel_url": site.url + "/cart",
                "expires_in": 1800,
            },
        )
        assert created.status_code == 201, created.text
        session = created.json()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page()
                page.goto(session["url"])
                page.fill("#email", "buyer@example.com")
                page.fill("#number", "3782 822463 10005")
                page.fill("#exp", "12 / 34")
                page.fill("#cvc", "1234")
                page.fill("#name", "E2E Buyer")
                page.click("#pay")
                page.wait_for_url(site.url + "/paid**")
                assert page.text_content("#done") == "Thank you"
            finally:
                browser.close()
    finally:
        site.stop()
    paid = stack.wait(
        session["id"],
        lambda: stack.api("GET", f"/v1/payment_sessions/{session['id']}", key).json(),
        lambda s: s.get("status") != "open",
    )
    assert paid["status"] == "complete" and paid["url"] is None
    charge = stack.charge(key, paid["charge"])
    assert (charge["status"], charge["flow"], charge["amount_captured"]) == (
        "succeeded",
        "redirect",
        4200,
    )
    assert charge["payment_method_details"]["card"]["last4"] == "0005"
    refund = stack.api("POST", "/v1/refunds", key, {"charge": charge["id"], "amount": 1200})
    assert refund.status_code == 201, refund.text
    assert stack.refund(key, refund.json()["id"])["status"] == "succeeded"
    intents = stack.psp_intents("amount:4200 AND currency:'eur'")
    assert [i["amount_received"] for i in intents] == [4200]
    assert not [r for r in site.requests if "378282246310005" in r["path"] + r["body"]]


def test_partial_capture(stack: Stack) -> None:
    """Authorize 3000, capture 1000: the charge and the PSP both show 1000 captured."""
    key = stack.seed.raw.secret_key
    created = stack.raw_card_charge(key, VISA_DEBIT, 3000, capture=False)
    assert created.status_code == 201, created.text
    charge_id = created.json()["id"]
    authorized = stack.charge(key, charge_id, TERMINAL | {"requires_capture"})
    assert (authorized["status"], authorized["amount_capturable"]) == ("requires_capture", 3000)
    too_much = stack.api("POST", f"/v1/charges/{charge_id}/capture", key, {"amount": 3001})
    assert too_much.status_code == 422
    captured = stack.api("POST", f"/v1/charges/{charge_id}/capture", key, {"amount": 1000})
    assert captured.status_code == 200, captured.text
    charge = stack.charge(key, charge_id)
    assert (charge["status"], charge["amount_captured"]) == ("succeeded", 1000)
    (intent,) = stack.intents_of(charge_id)
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 1000)


def test_partial_refunds(stack: Stack) -> None:
    """Refunds of 500 and 700 of 2000 succeed, 900 more is refused, the last 800 succeeds:
    the charge is fully refunded and never beyond."""
    key = stack.seed.raw.secret_key
    created = stack.raw_card_charge(key, MASTERCARD_2, 2000)
    assert created.status_code == 201, created.text
    charge_id = stack.charge(key, created.json()["id"])["id"]
    refunds = []
    for amount in (500, 700):
        answer = stack.api("POST", "/v1/refunds", key, {"charge": charge_id, "amount": amount})
        assert answer.status_code == 201, answer.text
        refunds.append(answer.json()["id"])
    over = stack.api("POST", "/v1/refunds", key, {"charge": charge_id, "amount": 900})
    assert (over.status_code, over.json()["error"]["code"]) == (422, "amount_too_large")
    rest = stack.api("POST", "/v1/refunds", key, {"charge": charge_id})
    assert rest.status_code == 201 and rest.json()["amount"] == 800
    refunds.append(rest.json()["id"])
    assert [stack.refund(key, r)["status"] for r in refunds] == ["succeeded"] * 3
    charge = stack.api("GET", f"/v1/charges/{charge_id}", key).json()
    assert (charge["amount_refunded"], charge["refunded"]) == (2000, True)
    (intent,) = stack.intents_of(charge_id)
    psp_refunds = stack.psp_refunds(intent["id"])
    assert sorted(r["amount"] for r in psp_refunds) == [500, 700, 800]
    done = stack.api("POST", "/v1/refunds", key, {"charge": charge_id, "amount": 1})
    assert done.json()["error"]["code"] == "charge_already_refunded"


@pytest.mark.parametrize(
    ("number", "decline_code"),
    [("4000000000000002", "generic_decline"), ("4000000000009995", "insufficient_funds")],
)
def test_declines(stack: Stack, number: str, decline_code: str) -> None:
    """A card the issuer declines fails the charge with card_declined; an SDK token of the
    same card fails the same way."""
    key = stack.seed.raw.secret_key
    created = stack.raw_card_charge(key, number, 1500)
    assert created.status_code == 201, created.text
    charge = stack.charge(key, created.json()["id"])
    assert (charge["status"], charge["failure_code"]) == ("failed", "card_declined")
    assert charge["outcome"]["type"] == "issuer_declined"
    token = stack.psp_token(number)
    sdk_key = stack.seed.sdk.secret_key
    sdk = stack.api(
        "POST",
        "/v1/charges",
        sdk_key,
        {
            "amount": 1500,
            "currency": "usd",
            "payment_method": {"type": "psp_token", "token": token},
        },
    )
    assert stack.charge(sdk_key, sdk.json()["id"])["status"] == "failed"
    (intent,) = stack.intents_of(sdk.json()["id"])
    assert intent["last_payment_error"]["decline_code"] == decline_code


def test_risk_blocks(stack: Stack) -> None:
    """The default rules: a raw-card charge above 5,000.00 is blocked (402 risk_blocked, the
    charge failed, nothing sent to the PSP) while the same amount by SDK token passes."""
    key = stack.seed.raw.secret_key
    blocked = stack.raw_card_charge(key, DISCOVER, 600_000)
    assert blocked.status_code == 402, blocked.text
    error = blocked.json()["error"]
    assert error["code"] == "risk_blocked" and error["charge"].startswith("ch_")
    charge = stack.api("GET", f"/v1/charges/{error['charge']}", key).json()
    assert (charge["status"], charge["failure_code"]) == ("failed", "risk_blocked")
    assert charge["outcome"]["risk_decision"] == "block"
    assert "amount_over_limit" in charge["outcome"]["reasons"]
    assert stack.intents_of(error["charge"]) == []
    sdk_key = stack.seed.sdk.secret_key
    allowed = stack.api(
        "POST",
        "/v1/charges",
        sdk_key,
        {
            "amount": 600_000,
            "currency": "usd",
            "payment_method": {"type": "psp_token", "token": stack.psp_token(JCB)},
        },
    )
    assert allowed.status_code == 201, allowed.text
    assert stack.charge(sdk_key, allowed.json()["id"])["status"] == "succeeded"


def _concurrently(count: int, send: Any) -> list[httpx.Response]:
    barrier = threading.Barrier(count)
    answers: list[httpx.Response | None] = [None] * count

    def one(index: int) -> None:
        barrier.wait()
        answers[index] = send()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _one_charge_one_payment(
    stack: Stack, key: str, answers: list[httpx.Response], amount: int
) -> str:
    statuses = sorted({a.status_code for a in answers})
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    # The same object (a replay is the stored canonical JSON: the same keys and values, with
    # the keys sorted).
    bodies = {json.dumps(a.json(), sort_keys=True) for a in answers if a.status_code == 201}
    assert len(bodies) == 1, "every 201 is the same answer"
    conflicts = [a.json()["error"]["code"] for a in answers if a.status_code == 409]
    assert set(conflicts) <= {"idempotency_key_in_use"}
    charge_id = str(next(a.json()["id"] for a in answers if a.status_code == 201))
    charge = stack.charge(key, charge_id)
    assert charge["status"] == "succeeded"
    stack.wait(
        "projection",
        lambda: {"status": stack.lag("projectionist")["lag_events"]},
        lambda s: s["status"] == 0,
    )
    mine = [
        c
        for c in stack.api("GET", "/v1/charges?limit=100", key).json()["data"]
        if c["amount"] == amount
    ]
    assert [c["id"] for c in mine] == [charge_id], "exactly one charge"
    assert len(stack.intents_of(charge_id)) == 1
    assert len(stack.psp_intents(f"amount:{amount} AND currency:'usd'")) == 1, (
        "exactly one PSP payment"
    )
    return charge_id


def test_50_concurrent_requests_with_one_idempotency_key(stack: Stack) -> None:
    """50 simultaneous identical SDK charges with one key: one charge, one PSP payment; every
    answer is the same 201, or a 409 while the first runs; a retry afterwards replays."""
    key = stack.seed.sdk.secret_key
    amount = 70_000 + secrets.randbelow(9_999)
    idempotency_key = "order-" + random_token(12)
    body = {
        "amount": amount,
        "currency": "usd",
        "payment_method": {"type": "psp_token", "token": stack.psp_token(VISA)},
    }
    answers = _concurrently(
        50, lambda: stack.call("api", "POST", "/v1/charges", key, body, idempotency_key)
    )
    charge_id = _one_charge_one_payment(stack, key, answers, amount)
    replay = stack.call("api", "POST", "/v1/charges", key, body, idempotency_key)
    assert replay.status_code == 201 and replay.json()["id"] == charge_id
    assert replay.headers["idempotent-replayed"] == "true"


def test_50_concurrent_raw_card_requests_with_one_idempotency_key(stack: Stack) -> None:
    """The same through the card ingress: each request is tokenized, but one charge and one
    PSP payment come of it, and the vault keeps one token (the others are deleted)."""
    key = stack.seed.raw.secret_key
    amount = 80_000 + secrets.randbelow(9_999)
    idempotency_key = "s2s-order-" + random_token(12)
    records = stack.vault_records()
    answers = _concurrently(
        50,
        lambda: stack.raw_card_charge(key, MC_DEBIT, amount, idempotency_key=idempotency_key),
    )
    _one_charge_one_payment(stack, key, answers, amount)
    assert stack.vault_records() == records + 1


def test_each_process_gets_only_its_zones_settings_and_its_own_identity(stack: Stack) -> None:
    """Read from /proc: a CDE process holds no non-CDE setting and the reverse, and each one
    holds its own service certificate and key (named after it), never another's."""
    from fincore.runner import ZONE_PREFIXES

    foreign = {
        zone: tuple(
            p for other, prefixes in ZONE_PREFIXES.items() if other != zone for p in prefixes
        )
        for zone in ZONE_PREFIXES
    }
    for child in stack.runner.children:
        raw = Path(f"/proc/{child.process.pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        spec = child.spec
        leaked = [k for k in env if k.startswith(foreign[spec.zone])]
        assert leaked == [], f"{spec.name} ({spec.zone}) sees {leaked}"
        assert env["FINCORE_ZONE"] == spec.zone
        if spec.identity or spec.tls:
            assert env["FINCORE_SERVICE_NAME"] == spec.name
            assert Path(env["FINCORE_SERVICE_CERT_FILE"]).name == f"{spec.name}.crt"
            assert Path(env["FINCORE_SERVICE_KEY_FILE"]).name == f"{spec.name}.key"
        else:
            assert "FINCORE_SERVICE_KEY_FILE" not in env
