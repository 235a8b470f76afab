"""Nothing card-like lands in the gateway's stores, logs, audit records or relayed events:
every test card goes through the vault, SDK and hosted-page flows, then a PAN sweep
(`fincore.pan_sweep`) of all of it, with every test card number as a canary, finds nothing."""

from __future__ import annotations

import time

import httpx
import pytest

from fincore.pan_sweep import sweep, sweep_bytes
from fincore.runner import Plan
from psp_sandbox.domain import TEST_CARDS, Brand
from tests.integration.gateway.peers import (
    MERCHANT,
    GatewayServer,
    RecordingApi,
    VaultServer,
    authorize_body,
    new_id,
    psp_token,
)
from tests.integration.psp_sandbox.peer import SandboxServer

pytestmark = [pytest.mark.e2e, pytest.mark.psp]
CANARIES = [card.number for card in TEST_CARDS] + ["4111111111111111"]


def test_pan_sweep_of_the_gateway_finds_nothing(
    gateway: GatewayServer,
    vault: VaultServer,
    sandbox: SandboxServer,
    recording_api: RecordingApi,
    plan: Plan,
) -> None:
    """After every card through every flow, the gateway's database, logs, the CDE audit log
    and every relayed event are free of card numbers (PCI DSS 3.5.1, A1)."""
    charges = []
    for card in TEST_CARDS:
        cvc = "7391" if card.brand is Brand.amex else "123"
        token = vault.tokenize(card.number, cvc=cvc)["token"]
        body = authorize_body(token, capture=False)
        answer = gateway.post("/v1/authorizations", body).json()
        if answer["status"] == "requires_capture":
            gateway.post("/v1/captures", {"charge_id": body["charge_id"]})
            gateway.post(
                "/v1/refunds",
                {"refund_id": new_id("re"), "charge_id": body["charge_id"], "amount": 100},
            )
        charges.append(body["charge_id"])
        sdk = authorize_body(psp_token(sandbox, card.number), method="psp_token")
        gateway.post("/v1/authorizations", sdk)
        charges.append(sdk["charge_id"])
    session = gateway.post(
        "/v1/checkout_sessions",
        {
            "session_id": new_id("ps"),
            "merchant_id": MERCHANT,
            "amount": 700,
            "currency": "usd",
            "success_url": "https://merchant.example/ok",
            "expires_at": int(time.time()) + 3600,
        },
        identity="api",
    ).json()
    httpx.post(
        session["url"],
        data={"number": "4242424242424242", "exp": "12 / 34", "cvc": "123", "name": "A"},
        timeout=10,
    )
    try:
        recording_api.wait_for(
            lambda ev: (
                set(charges) <= {e.get("charge_id") for e in ev}
                and any(e.get("session_id") == session["session_id"] for e in ev)
            ),
            timeout_s=60,
        )
    except AssertionError:
        seen = {e.get("charge_id") for e in recording_api.stored()}
        missing = [c for c in charges if c not in seen]
        states = [d["state"] for d in sandbox.deliveries()]
        raise AssertionError(
            f"not relayed: {missing}; outbox {gateway.cli('outbox')}; "
            f"sandbox deliveries {sorted(set(states))} ({len(states)})"
        ) from None
    var = plan.var_dir
    targets = [
        str(path)
        for path in (
            *sorted((var / "cde").glob("gateway*")),
            *sorted((var / "log").glob("gateway*")),
            *sorted(var.glob("gateway*.out")),
            var / "audit",
        )
    ]
    assert any(t.endswith("gateway.db") for t in targets)
    assert sweep(targets, CANARIES) == []
    relayed = b"\n".join(d.body for d in recording_api.deliveries)
    assert relayed.count(b"pspevt_") >= len(charges)
    assert sweep_bytes(relayed, CANARIES, label="relayed events") == []


def test_the_sweep_would_see_a_card(plan: Plan) -> None:
    """The same sweep reports a card number planted in a copy of the gateway's database."""
    import sqlite3

    copy = plan.var_dir / "planted.db"
    with sqlite3.connect(plan.var_dir / "cde" / "gateway.db") as live, sqlite3.connect(copy) as db:
        live.backup(db)
        db.execute(
            "UPDATE gateway_payments SET description = ? WHERE rowid = "
            "(SELECT min(rowid) FROM gateway_payments)",
            ("4000 0000 0000 9995",),
        )
    try:
        found = sweep([str(copy)], CANARIES)
        assert [(f.table, f.column) for f in found] == [("gateway_payments", "description")]
    finally:
        copy.unlink()
