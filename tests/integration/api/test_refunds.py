"""Refunds: partial, never beyond what was captured (also when refunds race), read fresh."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.integration.api.conftest import CHARGE, Api


def captured_charge(api: Api, key: str, amount: int = 1000) -> str:
    charge_id = api.post("/v1/charges", key, {**CHARGE, "amount": amount}).json()["id"]
    api.succeed(charge_id, amount)
    return str(charge_id)


def test_partial_refunds_until_nothing_is_left(api: Api) -> None:
    """Two partial refunds, then a third beyond the rest is refused with amount_too_large."""
    key = api.merchant()
    charge_id = captured_charge(api, key)
    first = api.post(
        "/v1/refunds", key, {"charge": charge_id, "amount": 300, "reason": "duplicate"}
    )
    assert first.status_code == 201, first.text
    refund = first.json()
    assert (refund["object"], refund["status"], refund["amount"]) == ("refund", "pending", 300)
    assert api.get(f"/v1/refunds/{refund['id']}", key).json()["status"] == "pending"
    second = api.post("/v1/refunds", key, {"charge": charge_id, "amount": 600})
    assert second.status_code == 201
    over = api.post("/v1/refunds", key, {"charge": charge_id, "amount": 101})
    assert over.status_code == 422
    assert (over.json()["error"]["code"], over.json()["error"]["param"]) == (
        "amount_too_large",
        "amount",
    )
    rest = api.post("/v1/refunds", key, {"charge": charge_id})
    assert rest.status_code == 201 and rest.json()["amount"] == 100
    done = api.post("/v1/refunds", key, {"charge": charge_id, "amount": 1})
    assert done.json()["error"]["code"] == "charge_already_refunded"
    jobs = api.jobs("refund.execute")
    assert sorted(j["payload"]["amount"] for j in jobs) == [100, 300, 600]
    succeeded = api.psp_event(
        type="refund.succeeded", charge_id=charge_id, refund_id=refund["id"], psp_reference="re_p1"
    )
    assert succeeded.json()["applied"] is True
    shown = api.get(f"/v1/charges/{charge_id}", key).json()
    assert shown["amount_refunded"] == 300 and shown["refunds"]["total_count"] == 3
    assert api.get(f"/v1/refunds/{refund['id']}", key).json()["status"] == "succeeded"
    api.catch_up()
    listed = api.get("/v1/refunds", key, charge=charge_id).json()["data"]
    assert len(listed) == 3 and listed[-1]["id"] == refund["id"]


def test_refunds_need_a_succeeded_charge_of_the_merchant(api: Api) -> None:
    """Refunding a processing charge is 422; another merchant's charge is 404."""
    key, other = api.merchant("A"), api.merchant("B")
    processing = api.post("/v1/charges", key, CHARGE).json()["id"]
    refused = api.post("/v1/refunds", key, {"charge": processing})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "charge_not_refundable"
    charge_id = captured_charge(api, key)
    assert api.post("/v1/refunds", other, {"charge": charge_id}).status_code == 404
    assert api.get("/v1/refunds/re_unknown00000000000001", key).status_code == 404


def test_racing_refunds_never_exceed_the_captured_amount(api: Api) -> None:
    """Twelve concurrent refunds of 300 on 1000 captured: exactly three are accepted."""
    key = api.merchant()
    charge_id = captured_charge(api, key)

    def refund(_: int) -> int:
        return int(api.post("/v1/refunds", key, {"charge": charge_id, "amount": 300}).status_code)

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(refund, range(12)))
    assert statuses.count(201) == 3, statuses
    assert set(statuses) <= {201, 422, 409}
    requested = [e for e in api.stream(charge_id) if e.type == "refund.requested"]
    assert sum(e.data["amount"] for e in requested) == 900
