"""Canary CVCs and PANs through every flow (ingress, refusal, detokenize, rotation, purge) with
the production CVC store (Redis), then a sweep of every store and log of the CDE and of what
the non-CDE API received: no PAN, no CVC, no cardholder name anywhere (PCI DSS 3.3.1, 3.5.1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.vault.conftest import (
    Cde,
    RecordingApi,
    make_cde,
    merchant_answer,
    recording_api_server,
    sweep_findings,
)

DETOKENIZED = {"number": "378282246310005", "cvc": "7391", "name": "Canary Holder"}
HELD = {"number": "371449635398431", "cvc": "8264", "name": "Canary Keeper"}
REFUSED = {"number": "378734493671000", "cvc": "6052", "name": "Canary Refused"}
CANARIES = [value for card in (DETOKENIZED, HELD, REFUSED) for value in card.values()]


@pytest.fixture
def flows(tmp_path: Path, redis_url: str) -> Iterator[tuple[Cde, RecordingApi, str]]:
    """Vault (Redis CVC store) + recording API + ingress in a fresh folder."""
    cde = make_cde(tmp_path, FINCORE_VAULT_CVC_URL=redis_url)
    cde.cli("attest", "mer_alpha", "--expires", "2099-12-31")
    cde.start("vault")
    with recording_api_server(cde) as api:
        api.keys["sk_test_canary_permitted"] = merchant_answer("mer_alpha")
        api.keys["sk_test_canary_refused"] = merchant_answer("mer_beta", active=False)
        cde.start(
            "ingress",
            {"FINCORE_INGRESS_VAULT_URL": cde.url("vault"), "FINCORE_INGRESS_API_URL": api.url},
        )
        try:
            yield cde, api, redis_url
        finally:
            for name in list(cde.processes):
                cde.stop(name)


def _charge(card: dict[str, str]) -> dict[str, object]:
    return {
        "amount": 500,
        "currency": "usd",
        "payment_method": {
            "type": "card",
            "card": {**card, "exp_month": 8, "exp_year": 2031},
        },
    }


def test_no_canary_survives_anywhere(flows: tuple[Cde, RecordingApi, str], tmp_path: Path) -> None:
    """After every flow, the sweep of the vault DB (and WAL), key file, audit log, process logs
    and stdout, Redis, and the API's received requests finds no canary and no card number."""
    cde, api, redis_url = flows
    with cde.client() as client:
        tokens = []
        for card, key, expected in (
            (DETOKENIZED, "sk_test_canary_permitted", 201),
            (HELD, "sk_test_canary_permitted", 201),
            (REFUSED, "sk_test_canary_refused", 403),
        ):
            response = client.post(
                cde.url("ingress") + "/v1/charges",
                json=_charge(card),
                headers={
                    "Authorization": f"Bearer {key}",
                    "Idempotency-Key": f"k-{card['name'].split()[1]}",
                },
            )
            assert response.status_code == expected, response.text
        tokens = [json.loads(r.body)["payment_method"]["token"] for r in api.charges()]
        assert len(tokens) == 2
        url = cde.url("vault") + f"/v1/tokens/{tokens[0]}/detokenize"
        denied = client.post(url, json={"merchant_id": "mer_alpha"}, headers=cde.headers("api"))
        revealed = client.post(
            url, json={"merchant_id": "mer_alpha"}, headers=cde.headers("gateway")
        )
        assert (denied.status_code, revealed.json()["cvc"]) == (403, DETOKENIZED["cvc"])

    # The held CVC is in Redis only sealed, with a TTL of at most 15 minutes.
    client_redis = redis.Redis.from_url(redis_url)
    keys = client_redis.keys("fincore:vault:cvc:*")
    assert keys == [f"fincore:vault:cvc:{tokens[1]}".encode()]
    sealed = client_redis.get(keys[0]) or b""
    assert b".FCC1" in sealed and HELD["cvc"].encode() not in sealed
    assert 0 < client_redis.ttl(keys[0]) <= 900
    client_redis.close()

    # Operator flows touch every record and key as well.
    cde.cli("rotate-kek", "--batch", "2")
    cde.cli("purge")
    cde.cli("status")
    cde.stop("ingress")
    cde.stop("vault")  # flush and close every log and database file

    targets = [str(cde.var), redis_url]
    assert sweep_findings(targets, CANARIES) == []
    non_cde = tmp_path / "api-received"
    non_cde.mkdir()
    for index, request in enumerate(api.requests):
        (non_cde / f"{index}.json").write_bytes(request.body + json.dumps(request.headers).encode())
    assert sweep_findings([str(non_cde)], CANARIES) == []

    # The sweep is not blind: the same canaries planted in a log line and in Redis are found.
    control = tmp_path / "control"
    control.mkdir()
    (control / "app.log").write_text(json.dumps({"event": "oops", "cvc": HELD["cvc"]}) + "\n")
    assert len(sweep_findings([str(control)], CANARIES)) == 1
    planted = redis.Redis.from_url(redis_url)
    planted.set("planted", json.dumps({"card": DETOKENIZED["number"]}))
    assert sweep_findings([redis_url], CANARIES)
    planted.close()
