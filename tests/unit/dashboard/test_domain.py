"""The dashboard's pure rules: password policy, lockout, session timeouts, TOTP steps, the
four-eyes refund request, money and masked cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fincore.cards import contains_card_number
from noncde.dashboard.domain import (
    Conflict,
    InvalidInput,
    LockoutPolicy,
    PasswordPolicy,
    RefundRequest,
    RefundRequestStatus,
    SelfApproval,
    Session,
    SessionPolicy,
    SessionStage,
    WeakPassword,
    check_username,
    token_key,
)
from noncde.dashboard.domain.accounts import candidate_steps, fresh_step, normalize_code
from noncde.dashboard.domain.sessions import AuthMethod
from noncde.dashboard.domain.views import (
    MaskedCard,
    describe_event,
    format_money,
    parse_money,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("password", "broken"),
    [
        ("short1a", "at least 12 characters"),
        ("onlyletterslong", "at least one digit"),
        ("123456789012345", "at least one letter"),
        ("alice-password-1", "must not contain the user name"),
        ("x 4111 1111 1111 1111", "must not contain a card-like number"),
    ],
)
def test_password_policy_names_each_broken_rule(password: str, broken: str) -> None:
    """PCI DSS 8.3.6: each weak password is refused and the broken rule is named."""
    policy = PasswordPolicy()
    assert broken in policy.problems(password, "alice")
    with pytest.raises(WeakPassword):
        policy.check(password, "alice")


def test_password_policy_accepts_a_good_password_and_refuses_a_weaker_minimum() -> None:
    """A 12+ character password with letters and digits passes; a minimum below 12 is refused."""
    assert PasswordPolicy().problems("Correct horse 4 battery", "alice") == []
    with pytest.raises(ValueError, match="12"):
        PasswordPolicy(min_length=8)


def test_lockout_policy_limits_are_pci_limits() -> None:
    """PCI DSS 8.3.4: more than 10 attempts or less than 30 minutes cannot be configured."""
    with pytest.raises(ValueError, match="1-10 attempts"):
        LockoutPolicy(threshold=11)
    with pytest.raises(ValueError, match="30 minutes"):
        LockoutPolicy(duration=timedelta(minutes=29))


def test_lockout_locks_on_the_tenth_failure_for_thirty_minutes_then_counts_again() -> None:
    """Ten failures lock the name until 30 minutes later; after that a failure counts from 1."""
    policy = LockoutPolicy()
    guard = None
    for attempt in range(1, 11):
        guard = policy.after_failure(guard, "bob", NOW)
        assert guard.failures == attempt
        assert policy.locked(guard, NOW) is (attempt == 10)
    assert guard is not None and guard.locked_until == NOW + timedelta(minutes=30)
    assert policy.locked(guard, NOW + timedelta(minutes=29, seconds=59))
    later = NOW + timedelta(minutes=30)
    assert not policy.locked(guard, later)
    assert policy.after_failure(guard, "bob", later).failures == 1


def test_session_policy_idle_absolute_and_mfa_windows() -> None:
    """PCI DSS 8.2.8: 15 minutes idle ends a session; so do the lifetime and the code window."""
    policy = SessionPolicy()
    active = Session("k", "u", SessionStage.ACTIVE, AuthMethod.PASSWORD, NOW, NOW, "c", NOW)
    assert policy.expiry_reason(active, NOW + timedelta(minutes=15)) is None
    assert policy.expiry_reason(active, NOW + timedelta(minutes=15, seconds=1)) == "idle_timeout"
    busy = Session(
        "k", "u", SessionStage.ACTIVE, AuthMethod.PASSWORD, NOW, NOW + timedelta(hours=12), "c"
    )
    assert policy.expiry_reason(busy, NOW + timedelta(hours=12, seconds=1)) == "absolute_timeout"
    pending = Session("k", "u", SessionStage.MFA, AuthMethod.PASSWORD, NOW, NOW, "c")
    assert policy.expiry_reason(pending, NOW + timedelta(minutes=5, seconds=1)) == "mfa_timeout"
    with pytest.raises(ValueError, match="15 minutes"):
        SessionPolicy(idle=timedelta(minutes=16))


def test_session_tokens_are_stored_as_digests() -> None:
    """The store key of a token is its SHA-256, never the token itself."""
    token = "a-session-token-value"
    key = token_key(token)
    assert key != token and token not in key and len(key) == 43


def test_totp_steps_are_accepted_once_and_codes_are_six_digits() -> None:
    """A step is accepted only when newer than the last used one (no replay, 8.5.1)."""
    steps = candidate_steps(NOW)
    assert steps == sorted(steps, reverse=True) and len(steps) == 3
    assert fresh_step(steps[1], steps[2])
    assert not fresh_step(steps[1], steps[1])
    assert not fresh_step(None, 0)
    assert normalize_code("123 456") == "123456"
    assert normalize_code("12345") is None and normalize_code("abcdef") is None


def test_user_names_are_checked_and_never_card_numbers() -> None:
    """A user name is normalized; one holding a card-like number is refused."""
    assert check_username("  Alice.Smith ") == "alice.smith"
    for bad in ("a", "4111111111111111", "x4111111111111111", "bad name"):
        with pytest.raises(InvalidInput):
            check_username(bad)


def _request(**kw: object) -> RefundRequest:
    values: dict[str, object] = {
        "id": "rfr_1",
        "charge_id": "ch_1",
        "merchant_id": "mer_1",
        "amount": 500,
        "currency": "usd",
        "reason": "customer asked",
        "requested_by": "sam",
        "now": NOW,
        "refundable": 1000,
    }
    values.update(kw)
    return RefundRequest.new(**values)  # type: ignore[arg-type]


def test_refund_request_needs_a_second_person_and_a_fitting_amount() -> None:
    """The requester cannot approve; the amount must fit what is left; decisions happen once."""
    request = _request()
    with pytest.raises(SelfApproval):
        request.approve("sam", NOW)
    approved = request.approve("fin", NOW)
    assert approved.status is RefundRequestStatus.APPROVED and approved.decided_by == "fin"
    with pytest.raises(Conflict):
        approved.reject("fin", NOW, "late")
    assert approved.submitted("re_1").refund_id == "re_1"
    with pytest.raises(InvalidInput):
        _request(amount=1001)
    with pytest.raises(InvalidInput):
        _request(amount=0)
    with pytest.raises(InvalidInput):
        _request(reason="  ")


def test_money_is_formatted_and_parsed_in_minor_units() -> None:
    """Integer minor units per currency exponent; never a float."""
    assert format_money(123456, "usd") == "1,234.56 USD"
    assert format_money(500, "jpy") == "500 JPY"
    assert format_money(-5, "eur") == "-0.05 EUR"
    assert format_money(1234, "kwd") == "1.234 KWD"
    assert parse_money("12.5", "usd") == 1250
    assert parse_money("1,000", "jpy") == 1000
    assert parse_money("1.234", "usd") is None
    assert parse_money("-3", "usd") is None
    assert parse_money("1e3", "usd") is None


def test_masked_card_shows_brand_last4_and_expiry_only() -> None:
    """The only card view: brand, last four, expiry; a malformed last4 is not echoed."""
    card = MaskedCard.from_data(
        {"brand": "visa", "last4": "4242", "exp_month": 3, "exp_year": 2031, "bin": "424242"}
    )
    assert str(card) == "Visa \u2022\u2022\u2022\u2022 4242 (exp 03/2031)"
    assert "424242" not in str(card)
    odd = MaskedCard.from_data({"brand": "visa", "last4": "4242424242424242"[-6:] + "x"})
    assert odd is not None and odd.last4 == "????"


def test_timeline_lines_never_show_tokens_or_card_numbers() -> None:
    """Event summaries are written from named fields: no token, BIN or card number."""
    data = {
        "charge_id": "ch_1",
        "amount": 1500,
        "flow": "s2s",
        "payment_method": {
            "type": "vault_token",
            "token": "tok_secretish",
            "card": {
                "brand": "visa",
                "last4": "4242",
                "exp_month": 1,
                "exp_year": 2030,
                "bin": "424242",
            },
        },
    }
    line = describe_event("charge.requested", data, "usd")
    assert "15.00 USD" in line and "4242" in line
    assert "tok_" not in line and "424242" not in line and not contains_card_number(line)
    failed = describe_event(
        "charge.failed", {"failure_code": "card_declined", "decline_code": "do_not_honor"}, "usd"
    )
    assert "card_declined" in failed
