"""The risk rules: parsing (publish-time validation) and decisions."""

from __future__ import annotations

from typing import Any

import pytest

from noncde.api.domain import Flow, RiskDecision
from noncde.api.domain.risk import (
    DEFAULT_RULES,
    InvalidRules,
    RiskInput,
    parse_rules,
)

MER = "mer_riskmerchant00000001"


def charge(amount: int = 1000, **kw: Any) -> RiskInput:
    values: dict[str, Any] = {
        "merchant_id": MER,
        "amount": amount,
        "currency": "usd",
        "flow": Flow.SDK,
        "card_fingerprint": None,
        "bin": None,
    }
    values.update(kw)
    return RiskInput(**values)


def test_amount_limits_block_and_review_with_reason_codes() -> None:
    """The strongest action wins and every matching rule's reason is listed."""
    policy = parse_rules(
        [
            {"id": "cap", "type": "amount_limit", "max_amount": 5000},
            {
                "id": "big",
                "type": "amount_limit",
                "max_amount": 2000,
                "action": "review",
                "reason": "large_amount",
            },
        ],
        7,
    )
    assert policy.evaluate(charge(1000)).decision is RiskDecision.ALLOW
    review = policy.evaluate(charge(3000))
    assert (review.decision, review.reasons, review.rules_version) == (
        RiskDecision.REVIEW,
        ("large_amount",),
        7,
    )
    block = policy.evaluate(charge(6000))
    assert block.decision is RiskDecision.BLOCK
    assert block.reasons == ("amount_over_limit", "large_amount") and block.rules == ("cap", "big")


def test_rules_can_target_one_merchant_one_currency_and_the_s2s_flow() -> None:
    """Per-merchant and per-currency limits, and stricter limits for raw-card charges."""
    policy = parse_rules(
        [
            {"type": "amount_limit", "max_amount": 100, "merchant_id": "mer_other0000000001"},
            {"type": "amount_limit", "max_amount": 500, "currency": "eur"},
            {"type": "amount_limit", "max_amount": 800, "flows": ["s2s"]},
            {"type": "currency_allowlist", "currencies": ["usd", "eur"]},
        ]
    )
    assert policy.evaluate(charge(900)).decision is RiskDecision.ALLOW
    assert policy.evaluate(charge(900, flow=Flow.S2S)).decision is RiskDecision.BLOCK
    assert policy.evaluate(charge(600, currency="eur")).reasons == ("amount_over_limit",)
    assert policy.evaluate(charge(10, currency="gbp")).reasons == ("currency_not_allowed",)


def test_velocity_counts_include_the_charge_and_need_a_fingerprint_for_cards() -> None:
    """Card velocity keys on the keyed fingerprint; merchant velocity on the merchant."""
    policy = parse_rules(
        [
            {"type": "velocity", "scope": "card", "window_s": 3600, "max_count": 3},
            {
                "type": "velocity",
                "scope": "merchant",
                "window_s": 60,
                "max_count": 100,
                "action": "review",
            },
        ]
    )
    with_card = charge(card_fingerprint="fp1")
    series = policy.velocity_series(with_card)
    assert {(s.key, s.window_s, s.bucket_s) for s in series} == {
        (f"card:{MER}:fp1", 3600, 60),
        (f"merchant:{MER}", 60, 1),
    }
    assert len(policy.velocity_series(charge())) == 1  # no fingerprint: no card counter
    counts = {(f"card:{MER}:fp1", 3600): 4, (f"merchant:{MER}", 60): 101}
    verdict = policy.evaluate(with_card, counts)
    assert verdict.decision is RiskDecision.BLOCK
    assert verdict.reasons == ("card_velocity_exceeded", "merchant_velocity_exceeded")
    assert policy.evaluate(with_card, {(f"card:{MER}:fp1", 3600): 3}).decision is RiskDecision.ALLOW


def test_blocked_bin_countries_use_the_bin_table_and_its_extensions() -> None:
    """BIN countries come from the built-in table, extended by bin_country rules."""
    policy = parse_rules(
        [
            {"type": "bin_country", "prefixes": {"411111": "KP"}},
            {"type": "blocked_bin_countries", "countries": ["KP"]},
        ]
    )
    blocked = policy.evaluate(charge(bin="411111"))
    assert blocked.decision is RiskDecision.BLOCK and blocked.country == "KP"
    assert blocked.reasons == ("bin_country_blocked",)
    allowed = policy.evaluate(charge(bin="424242"))
    assert allowed.decision is RiskDecision.ALLOW and allowed.country == "US"
    assert policy.evaluate(charge(bin=None)).country is None


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"type": "amount_limit"}, "a JSON list"),
        ([{"type": "teleport"}], "type must be one of"),
        ([{"type": "amount_limit"}], "needs max_amount"),
        ([{"type": "amount_limit", "max_amount": -1}], "max_amount must be"),
        ([{"type": "amount_limit", "max_amount": 1, "action": "allow"}], "block or review"),
        ([{"type": "velocity", "scope": "ip", "window_s": 1, "max_count": 1}], "scope"),
        ([{"type": "blocked_bin_countries", "countries": ["usa"]}], "alpha-2"),
        ([{"type": "amount_limit", "max_amount": 1, "flows": ["fax"]}], "flows"),
        ([{"type": "amount_limit", "max_amount": 1, "merchant_id": "acme"}], "merchant_id"),
        ([{"id": "a", "type": "amount_limit", "max_amount": 1}] * 2, "duplicate rule ids"),
    ],
)
def test_invalid_rule_sets_are_refused_with_a_reason(rules: Any, message: str) -> None:
    """Publishing validates every rule and names what is wrong."""
    with pytest.raises(InvalidRules, match=message):
        parse_rules(rules)


def test_the_default_rules_parse_and_are_stricter_for_raw_cards() -> None:
    """The defaults allow ordinary charges and block raw-card charges sooner."""
    policy = parse_rules(list(DEFAULT_RULES), 1)
    assert policy.evaluate(charge(10_000)).decision is RiskDecision.ALLOW
    assert policy.evaluate(charge(600_000)).decision is RiskDecision.REVIEW
    assert policy.evaluate(charge(600_000, flow=Flow.S2S)).decision is RiskDecision.BLOCK
