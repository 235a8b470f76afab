"""End to end, real processes over TLS: the card ingress and the vault (CDE) in front of the API
(non-CDE). An authorized merchant's raw card becomes a vault-token charge in the API; an
unauthorized merchant gets 403 and nothing is stored anywhere; no store or log of the non-CDE
zone holds the card number afterwards."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fincore.pan_sweep import sweep
from tests.integration.api.processes import ApiProcess
from tests.integration.vault.conftest import Cde, make_cde

PAN = "4000002760003184"  # a published Visa test card (also used by the vault's tests)
CVC = "913"

pytestmark = pytest.mark.e2e


def raw_charge(amount: int = 1999) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "usd",
        "description": "s2s order",
        "payment_method": {
            "type": "card",
            "card": {"number": PAN, "exp_month": 11, "exp_year": 2030, "cvc": CVC},
        },
    }


class Stack:
    def __init__(self, cde: Cde, api: ApiProcess) -> None:
        self.cde, self.api = cde, api

    def post_raw(self, key: str, body: Any, **headers: str) -> Any:
        with self.cde.client() as client:
            return client.post(
                self.cde.url("ingress") + "/v1/charges",
                content=json.dumps(body).encode(),
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/json",
                    **headers,
                },
            )

    def vault_records(self) -> int:
        with sqlite3.connect(self.cde.db_path()) as conn:
            return int(conn.execute("SELECT count(*) FROM vault_records").fetchone()[0])

    def merchant_events(self, merchant_id: str) -> list[tuple[str, str]]:
        path = self.api.var / "noncde" / "platform.db"
        with sqlite3.connect(path) as conn:
            rows = conn.execute(
                "SELECT type, data FROM events WHERE merchant_id = ? ORDER BY position",
                (merchant_id,),
            ).fetchall()
        return [(str(t), str(d)) for t, d in rows]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, vault and ingress processes sharing one var folder and CA, like the runner."""
    cde = make_cde(tmp_path_factory.mktemp("e2e"))
    api = ApiProcess(cde.plan).start()
    try:
        cde.start("vault")
        yield Stack(cde, api)
    finally:
        for name in list(cde.processes):
            cde.stop(name)
        api.stop()


def test_s2s_raw_card_authorized_and_refused(stack: Stack, tmp_path: Path) -> None:
    """Permitted merchant: 201 vault-token charge (s2s) with a job; unpermitted: 403 with no
    vault record and no API event; retry with the same key replays; PAN swept: none."""
    api, cde = stack.api, stack.cde
    permitted = api.admin("merchants", "create", "--name", "S2S permitted")
    refused = api.admin("merchants", "create", "--name", "S2S not permitted")
    permitted_id = permitted["merchant"]["id"]
    api.admin("raw-card", "grant", permitted_id, "--attestation-expires", "2099-12-31")
    cde.cli("attest", permitted_id, "--expires", "2099-12-31")
    cde.cli("attest", refused["merchant"]["id"], "--expires", "2099-12-31")
    cde.start(
        "ingress",
        {
            "FINCORE_INGRESS_VAULT_URL": cde.url("vault"),
            "FINCORE_INGRESS_API_URL": api.url,
        },
    )
    key = permitted["secret_key"]["value"]
    before = stack.vault_records()
    created = stack.post_raw(key, raw_charge(), **{"Idempotency-Key": "s2s-e2e-1"})
    assert created.status_code == 201, created.text
    charge = created.json()
    assert (charge["flow"], charge["status"]) == ("s2s", "processing")
    assert charge["payment_method"].startswith("tok_")
    assert charge["payment_method_details"]["card"]["last4"] == "3184"
    assert stack.vault_records() == before + 1
    with api.client() as client:
        fetched = client.get(f"/v1/charges/{charge['id']}", auth=(key, "")).json()
    assert fetched["id"] == charge["id"] and fetched["flow"] == "s2s"
    replay = stack.post_raw(key, raw_charge(), **{"Idempotency-Key": "s2s-e2e-1"})
    assert replay.status_code == 201 and replay.json() == charge
    assert stack.vault_records() == before + 1  # the retry's fresh token was deleted again

    not_permitted = refused["secret_key"]["value"]
    denied = stack.post_raw(not_permitted, raw_charge())
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "raw_card_data_not_permitted"
    assert stack.vault_records() == before + 1
    assert stack.merchant_events(refused["merchant"]["id"]) == []

    events = stack.merchant_events(permitted_id)
    assert [t for t, _ in events] == ["charge.requested", "charge.risk_assessed"]
    assert '"type":"vault_token"' in events[0][1] and PAN not in events[0][1]

    api.stop()  # flush the API's files before sweeping them
    targets = [
        str(api.var / "noncde"),
        str(api.var / "log" / "api.log"),
        str(api.var / "audit" / "noncde"),
    ]
    findings = sweep(targets, [PAN])
    assert findings == [], [f.as_dict() for f in findings][:5]
    planted = tmp_path / "planted"
    planted.write_text(f"x {PAN} y")
    assert sweep([str(planted)], [PAN]) != []
