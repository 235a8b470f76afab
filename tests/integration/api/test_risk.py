"""The risk engine in the API: rules from the platform's RulesStore, decisions recorded as
events, blocks fail the charge with risk_blocked (402, no job), rules reload without restart."""

from __future__ import annotations

from typing import Any

from tests.integration.api.conftest import CHARGE, Api

VAULT_CHARGE: dict[str, Any] = {
    "amount": 1000,
    "currency": "usd",
    "payment_method": {
        "type": "vault_token",
        "token": "tok_riskcard00000001",
        "card": {
            "brand": "visa",
            "last4": "3184",
            "bin": "400000",
            "exp_month": 11,
            "exp_year": 2030,
            "fingerprint": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        },
    },
}


def vault_charge(api: Api, key: str, **changes: Any) -> Any:
    body = {**VAULT_CHARGE, **changes}
    return api.post("/v1/charges", key, body, **api.pki.headers("ingress"))


def test_a_block_fails_the_charge_and_enqueues_nothing(api: Api) -> None:
    """402 risk_blocked with the charge id and reasons; events requested, assessed, failed."""
    api.publish_rules([{"id": "cap", "type": "amount_limit", "max_amount": 5000}])
    key = api.merchant()
    blocked = api.post("/v1/charges", key, {**CHARGE, "amount": 6000})
    assert blocked.status_code == 402
    error = blocked.json()["error"]
    assert (error["type"], error["code"], error["reasons"]) == (
        "card_error",
        "risk_blocked",
        ["amount_over_limit"],
    )
    events = api.stream(error["charge"])
    assert [e.type for e in events] == [
        "charge.requested",
        "charge.risk_assessed",
        "charge.failed",
    ]
    assert events[1].data["decision"] == "block" and events[1].data["rules"] == ["cap"]
    assert api.jobs() == []
    shown = api.get(f"/v1/charges/{error['charge']}", key).json()
    assert (shown["status"], shown["failure_code"], shown["outcome"]["type"]) == (
        "failed",
        "risk_blocked",
        "blocked",
    )


def test_review_lets_the_charge_through_and_says_so(api: Api) -> None:
    """A review decision still authorizes; the outcome shows manual_review."""
    api.publish_rules(
        [{"type": "amount_limit", "max_amount": 100, "action": "review", "reason": "large"}]
    )
    key = api.merchant()
    charge = api.post("/v1/charges", key, CHARGE)
    assert charge.status_code == 201
    assert charge.json()["outcome"] == {
        "type": "manual_review",
        "risk_decision": "review",
        "reasons": ["large"],
        "rules_version": api.runtime.platform.rules.active_version(),
    }
    assert len(api.jobs("charge.authorize")) == 1


def test_rules_change_without_a_restart(api: Api) -> None:
    """A newly published rule set applies to the next charge (hot reload)."""
    key = api.merchant()
    assert api.post("/v1/charges", key, CHARGE).status_code == 201
    version = api.publish_rules([{"type": "currency_allowlist", "currencies": ["eur"]}])
    refused = api.post("/v1/charges", key, CHARGE)
    assert refused.status_code == 402 and refused.json()["error"]["reasons"] == [
        "currency_not_allowed"
    ]
    assert api.stream(refused.json()["error"]["charge"])[1].data["rules_version"] == version
    api.publish_rules([])
    assert api.post("/v1/charges", key, CHARGE).status_code == 201
    changes = [r for r in api.audit_records() if r["event_type"] == "system.rule_change"]
    assert len(changes) >= 2 and changes[-1]["actor"]["id"] == "test-operator"


def test_card_velocity_blocks_the_next_charge_of_the_same_card(api: Api) -> None:
    """Three charges of one card in the window pass; the fourth is blocked."""
    api.publish_rules([{"type": "velocity", "scope": "card", "window_s": 3600, "max_count": 3}])
    key = api.merchant(raw_card_until="2099-12-31")
    statuses = [vault_charge(api, key).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 402]
    other_card = {**VAULT_CHARGE["payment_method"]["card"], "fingerprint": "ffff0000"}
    other = vault_charge(
        api, key, payment_method={**VAULT_CHARGE["payment_method"], "card": other_card}
    )
    assert other.status_code == 201


def test_raw_card_charges_get_stricter_rules_and_blocked_countries(api: Api) -> None:
    """An s2s-only limit applies to vault-token charges only; a blocked BIN country blocks."""
    api.publish_rules(
        [
            {"type": "amount_limit", "max_amount": 500, "flows": ["s2s"]},
            {"type": "bin_country", "prefixes": {"400000": "KP"}},
            {"type": "blocked_bin_countries", "countries": ["KP"], "flows": ["sdk"]},
        ]
    )
    key = api.merchant(raw_card_until="2099-12-31")
    assert api.post("/v1/charges", key, {**CHARGE, "amount": 1000}).status_code == 201
    raw = vault_charge(api, key)
    assert raw.status_code == 402 and raw.json()["error"]["reasons"] == ["amount_over_limit"]
    small = vault_charge(api, key, amount=400)
    assert small.status_code == 201
    assert small.json()["payment_method_details"]["card"]["country"] == "KP"
    api.publish_rules(
        [
            {"type": "bin_country", "prefixes": {"400000": "KP"}},
            {"type": "blocked_bin_countries", "countries": ["KP"]},
        ]
    )
    country = vault_charge(api, key, amount=400)
    assert country.status_code == 402
    assert country.json()["error"]["reasons"] == ["bin_country_blocked"]
