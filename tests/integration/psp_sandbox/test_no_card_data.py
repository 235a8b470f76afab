"""The sandbox keeps no card number anywhere: not in its database, its logs or its files."""

from __future__ import annotations

import httpx
import pytest

from psp_sandbox.domain import TEST_CARDS
from tests.integration.psp_sandbox.peer import SandboxServer

pytestmark = pytest.mark.psp


def test_no_pan_in_state_logs_or_files(sandbox: SandboxServer) -> None:
    """After payments with every test card (API and hosted page), no PAN is stored or logged."""
    client = sandbox.stripe_client()
    for card in TEST_CARDS:
        cvc = "1234" if card.brand == "amex" else "123"
        pm = sandbox.api(
            "POST",
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": card.number,
                "card[exp_month]": "4",
                "card[exp_year]": "2032",
                "card[cvc]": cvc,
            },
        )
        assert pm.status_code == 200
        sandbox.api(
            "POST",
            "/v1/payment_intents",
            data={
                "amount": "100",
                "currency": "eur",
                "payment_method": pm.json()["id"],
                "confirm": "true",
            },
        )
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "success_url": "http://127.0.0.1:9/ok",
                "line_items": [
                    {
                        "price_data": {
                            "currency": "eur",
                            "unit_amount": 100,
                            "product_data": {"name": "x"},
                        },
                        "quantity": 1,
                    }
                ],
            }
        )
        httpx.post(session.url, data={"number": card.number, "exp": "04/32", "cvc": cvc})
    files = [p for p in sandbox.state_dir.rglob("*") if p.is_file()]
    files += list(sandbox.state_dir.parent.glob("*.log"))
    files += list((sandbox.state_dir.parent / "log").glob("*"))
    assert any(p.name == "sandbox.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for card in TEST_CARDS:
            assert card.number.encode() not in data, f"{card.description} PAN found in {path.name}"
