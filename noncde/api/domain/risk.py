"""noncde.api (non-CDE): the risk rules and their evaluation; pure, no I/O.

Rules are JSON objects published as one versioned set in the platform's RulesStore (hot
reloaded, no restart). Every rule may be limited to one merchant (`merchant_id`) and to some
flows (`flows: ["s2s"]` is how raw-card charges get stricter rules), and has an `action`
(`block` or `review`, default `block`) and an optional `reason` code. Types:

- `amount_limit`: `max_amount` (and/or `min_amount`), optionally for one `currency`
  → reason `amount_over_limit` / `amount_under_limit`;
- `currency_allowlist`: `currencies` → `currency_not_allowed`;
- `velocity`: `scope` `card` (by the keyed card fingerprint) or `merchant`, `window_s`,
  `max_count` (charges in the window, this one included) → `card_velocity_exceeded` /
  `merchant_velocity_exceeded`;
- `blocked_bin_countries`: `countries` (ISO 3166 alpha-2) → `bin_country_blocked`;
- `bin_country`: `prefixes` `{ "<BIN prefix>": "<country>" }` extends the BIN table.

The decision is the strongest action among the matching rules (block > review > allow);
`reasons` lists every matching rule's reason code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from noncde.api.domain.events import Flow, RiskDecision
from noncde.api.domain.money import CURRENCIES

RULE_TYPES = frozenset(
    {"amount_limit", "currency_allowlist", "velocity", "blocked_bin_countries", "bin_country"}
)
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_RULE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_WINDOW_S = 30 * 24 * 3600
# A velocity window is counted in this many buckets (a sliding window, precise to 1/60).
WINDOW_BUCKETS = 60

_SEVERITY = {RiskDecision.ALLOW: 0, RiskDecision.REVIEW: 1, RiskDecision.BLOCK: 2}

# Issuer countries of well-known test BINs; rules of type `bin_country` extend or override it.
DEFAULT_BIN_COUNTRIES: Mapping[str, str] = {
    "424242": "US",
    "400005": "US",
    "555555": "US",
    "222300": "US",
    "520082": "US",
    "378282": "US",
    "371449": "US",
    "601111": "US",
    "305693": "US",
    "352800": "JP",
    "620000": "CN",
    "400000": "US",
    "400002": "US",
}


class InvalidRules(ValueError):
    """A rule set cannot be published: the message names the rule and the field."""


@dataclass(frozen=True, slots=True)
class RiskInput:
    """What the engine knows of one charge (token-only: no card data)."""

    merchant_id: str
    amount: int
    currency: str
    flow: Flow
    card_fingerprint: str | None = None
    bin: str | None = None


@dataclass(frozen=True, slots=True)
class VelocitySeries:
    """One counter the engine needs: `key` counted over `window_s` in `bucket_s` buckets."""

    key: str
    window_s: int
    bucket_s: int


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    decision: RiskDecision
    reasons: tuple[str, ...]
    rules: tuple[str, ...]
    rules_version: int
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    type: str
    action: RiskDecision
    reason: str | None
    merchant_id: str | None
    flows: frozenset[Flow] | None
    params: Mapping[str, Any]

    def applies(self, charge: RiskInput) -> bool:
        if self.merchant_id is not None and self.merchant_id != charge.merchant_id:
            return False
        return self.flows is None or charge.flow in self.flows


@dataclass(frozen=True)
class RiskPolicy:
    """A parsed rule set of one version."""

    version: int
    rules: tuple[Rule, ...] = ()
    bin_countries: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BIN_COUNTRIES))

    def country_of(self, bin_digits: str | None) -> str | None:
        """The issuing country of the longest known prefix of `bin_digits`."""
        if not bin_digits:
            return None
        for length in range(min(len(bin_digits), 11), 0, -1):
            country = self.bin_countries.get(bin_digits[:length])
            if country is not None:
                return country
        return None

    def velocity_series(self, charge: RiskInput) -> list[VelocitySeries]:
        """The counters to bump (and read) for this charge, one per distinct window."""
        wanted: dict[str, VelocitySeries] = {}
        for rule in self.rules:
            if rule.type != "velocity" or not rule.applies(charge):
                continue
            key = _velocity_key(rule, charge)
            if key is None:
                continue
            window = int(rule.params["window_s"])
            series = VelocitySeries(key, window, max(1, window // WINDOW_BUCKETS))
            wanted[f"{key}/{window}"] = series
        return list(wanted.values())

    def evaluate(
        self, charge: RiskInput, counts: Mapping[tuple[str, int], int] | None = None
    ) -> RiskAssessment:
        """The decision for `charge`; `counts[(key, window_s)]` are the velocity counts
        including this charge (missing counts are taken as 1: this charge alone)."""
        counts = counts or {}
        country = self.country_of(charge.bin)
        decision = RiskDecision.ALLOW
        reasons: list[str] = []
        matched: list[str] = []
        for rule in self.rules:
            if not rule.applies(charge):
                continue
            reason = _match(rule, charge, country, counts)
            if reason is None:
                continue
            matched.append(rule.id)
            code = rule.reason or reason
            if code not in reasons:
                reasons.append(code)
            if _SEVERITY[rule.action] > _SEVERITY[decision]:
                decision = rule.action
        return RiskAssessment(decision, tuple(reasons), tuple(matched), self.version, country)


def _velocity_key(rule: Rule, charge: RiskInput) -> str | None:
    if rule.params["scope"] == "card":
        # Without a keyed fingerprint (SDK tokens) card velocity is the PSP's to judge.
        return (
            f"card:{charge.merchant_id}:{charge.card_fingerprint}"
            if charge.card_fingerprint
            else None
        )
    return f"merchant:{charge.merchant_id}"


def _match(
    rule: Rule, charge: RiskInput, country: str | None, counts: Mapping[tuple[str, int], int]
) -> str | None:
    params = rule.params
    if rule.type == "amount_limit":
        currency = params.get("currency")
        if currency is not None and currency != charge.currency:
            return None
        if "max_amount" in params and charge.amount > int(params["max_amount"]):
            return "amount_over_limit"
        if "min_amount" in params and charge.amount < int(params["min_amount"]):
            return "amount_under_limit"
        return None
    if rule.type == "currency_allowlist":
        return None if charge.currency in params["currencies"] else "currency_not_allowed"
    if rule.type == "velocity":
        key = _velocity_key(rule, charge)
        if key is None:
            return None
        count = counts.get((key, int(params["window_s"])), 1)
        if count > int(params["max_count"]):
            return f"{params['scope']}_velocity_exceeded"
        return None
    if rule.type == "blocked_bin_countries":
        if country is not None and country in params["countries"]:
            return "bin_country_blocked"
        return None
    return None


# ---------------------------------------------------------------- parsing


def _fail(index: int, message: str) -> InvalidRules:
    return InvalidRules(f"rule {index}: {message}")


def _positive_int(raw: Mapping[str, Any], name: str, index: int, maximum: int) -> int:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise _fail(index, f"{name} must be an integer between 1 and {maximum}")
    return value


def parse_rule(raw: Mapping[str, Any], index: int) -> Rule:
    """One rule, validated; `InvalidRules` names what is wrong."""
    if not isinstance(raw, Mapping):
        raise _fail(index, "a rule is a JSON object")
    kind = raw.get("type")
    if kind not in RULE_TYPES:
        raise _fail(index, f"type must be one of {', '.join(sorted(RULE_TYPES))}")
    rule_id = raw.get("id", f"rule-{index}")
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        raise _fail(index, "id must be 1-64 characters of letters, digits and _ . : -")
    try:
        action = RiskDecision(raw.get("action", "block"))
    except ValueError:
        raise _fail(index, "action must be block or review") from None
    if action is RiskDecision.ALLOW:
        raise _fail(index, "action must be block or review")
    reason = raw.get("reason")
    if reason is not None and (not isinstance(reason, str) or not _REASON.match(reason)):
        raise _fail(index, "reason must be a lowercase code (letters, digits, _)")
    merchant = raw.get("merchant_id")
    if merchant is not None and (not isinstance(merchant, str) or not merchant.startswith("mer_")):
        raise _fail(index, "merchant_id must be a merchant id (mer_…)")
    flows_raw = raw.get("flows")
    flows: frozenset[Flow] | None = None
    if flows_raw is not None:
        try:
            flows = frozenset(Flow(f) for f in flows_raw)
        except (TypeError, ValueError):
            raise _fail(index, "flows must be a list of s2s, sdk, redirect") from None
    params: dict[str, Any] = {}
    if kind == "amount_limit":
        if "max_amount" not in raw and "min_amount" not in raw:
            raise _fail(index, "amount_limit needs max_amount or min_amount")
        for name in ("max_amount", "min_amount"):
            if name in raw:
                params[name] = _positive_int(raw, name, index, 10**12)
        if "currency" in raw:
            if raw["currency"] not in CURRENCIES:
                raise _fail(index, "currency must be a lowercase ISO-4217 code")
            params["currency"] = raw["currency"]
    elif kind == "currency_allowlist":
        currencies = raw.get("currencies")
        if not isinstance(currencies, list) or not all(c in CURRENCIES for c in currencies):
            raise _fail(index, "currencies must be a list of lowercase ISO-4217 codes")
        params["currencies"] = frozenset(currencies)
    elif kind == "velocity":
        if raw.get("scope") not in {"card", "merchant"}:
            raise _fail(index, "scope must be card or merchant")
        params["scope"] = raw["scope"]
        params["window_s"] = _positive_int(raw, "window_s", index, MAX_WINDOW_S)
        params["max_count"] = _positive_int(raw, "max_count", index, 10**9)
    elif kind == "blocked_bin_countries":
        countries = raw.get("countries")
        if not isinstance(countries, list) or not all(
            isinstance(c, str) and _COUNTRY.match(c) for c in countries
        ):
            raise _fail(index, "countries must be a list of ISO 3166 alpha-2 codes (US, DE...)")
        params["countries"] = frozenset(countries)
    elif kind == "bin_country":
        prefixes = raw.get("prefixes")
        if not isinstance(prefixes, Mapping) or not all(
            isinstance(p, str)
            and p.isdigit()
            and 1 <= len(p) <= 11
            and isinstance(c, str)
            and _COUNTRY.match(c)
            for p, c in prefixes.items()
        ):
            raise _fail(index, "prefixes maps BIN prefixes (1-11 digits) to alpha-2 countries")
        params["prefixes"] = dict(prefixes)
    return Rule(rule_id, kind, action, reason, merchant, flows, params)


def parse_rules(raw_rules: Sequence[Mapping[str, Any]], version: int = 0) -> RiskPolicy:
    """A whole rule set, validated (raises `InvalidRules` on the first bad rule)."""
    if isinstance(raw_rules, Mapping | str):
        raise InvalidRules("a rule set is a JSON list of rules")
    rules = [parse_rule(raw, index) for index, raw in enumerate(raw_rules)]
    ids = [r.id for r in rules]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise InvalidRules(f"duplicate rule ids: {', '.join(sorted(duplicated))}")
    bins = dict(DEFAULT_BIN_COUNTRIES)
    for rule in rules:
        if rule.type == "bin_country":
            bins.update(rule.params["prefixes"])
    return RiskPolicy(version, tuple(r for r in rules if r.type != "bin_country"), bins)


# The rule set the API publishes on first start when none exists: generous limits for every
# flow, stricter ones for raw-card (s2s) charges, and the sanctioned-country block.
DEFAULT_RULES: tuple[Mapping[str, Any], ...] = (
    {"id": "max-amount", "type": "amount_limit", "max_amount": 1_000_000, "action": "block"},
    {
        "id": "max-amount-s2s",
        "type": "amount_limit",
        "max_amount": 500_000,
        "flows": ["s2s"],
        "action": "block",
    },
    {
        "id": "large-amount-review",
        "type": "amount_limit",
        "max_amount": 250_000,
        "action": "review",
        "reason": "large_amount",
    },
    {
        "id": "card-velocity-hour",
        "type": "velocity",
        "scope": "card",
        "window_s": 3600,
        "max_count": 30,
        "action": "block",
    },
    {
        "id": "card-velocity-hour-s2s",
        "type": "velocity",
        "scope": "card",
        "window_s": 3600,
        "max_count": 15,
        "flows": ["s2s"],
        "action": "block",
    },
    {
        "id": "card-velocity-minute",
        "type": "velocity",
        "scope": "card",
        "window_s": 60,
        "max_count": 10,
        "action": "review",
    },
    {
        "id": "sanctioned-countries",
        "type": "blocked_bin_countries",
        "countries": ["CU", "IR", "KP", "SY"],
        "action": "block",
    },
)
