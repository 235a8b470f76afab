"""Pure rules of the platform domain: backoff, ids, guards, error texts."""

from __future__ import annotations

import pytest

from noncde.platform.domain import (
    MAX_ERROR_TEXT,
    CardDataRefused,
    InvalidArgument,
    NewEvent,
    NewJob,
    RecordedEvent,
    RetryPolicy,
    StoredResponse,
    from_micros,
    job_id_for,
    prepare_append,
    refuse_card_data,
    safe_error_text,
)

PAN = "5555555555554444"


def test_backoff_grows_exponentially_with_equal_jitter() -> None:
    """Attempt n waits between half and all of base·2^(n-1), capped."""
    policy = RetryPolicy(max_attempts=10, backoff_base_s=1.0, backoff_cap_s=60.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (9, 60.0)]:
        samples = [policy.backoff_s(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert max(samples) - min(samples) > ceiling / 10  # really jittered


def test_retry_policy_refuses_nonsense() -> None:
    """At least one attempt, and 0 < base <= cap <= 12 h."""
    with pytest.raises(InvalidArgument):
        RetryPolicy(max_attempts=0)
    with pytest.raises(InvalidArgument):
        RetryPolicy(backoff_base_s=10, backoff_cap_s=5)
    with pytest.raises(InvalidArgument):
        RetryPolicy(backoff_cap_s=13 * 3600)
    assert RetryPolicy(max_attempts=2).exhausted(2) and not RetryPolicy(3).exhausted(2)


def test_dedup_ids_name_the_same_job() -> None:
    """A dedup id always maps to the same opaque job id; different ids to different jobs."""
    assert job_id_for("charge:ch_1") == job_id_for("charge:ch_1")
    assert job_id_for("charge:ch_1") != job_id_for("charge:ch_2")
    assert job_id_for("x").startswith("job_") and "charge" not in job_id_for("charge:ch_1")
    job_id, _ = NewJob("charge.authorize", {}, dedup_id="charge:ch_1").prepared()
    assert job_id == job_id_for("charge:ch_1")
    random_ids = {NewJob("charge.authorize", {}).prepared()[0] for _ in range(100)}
    assert len(random_ids) == 100


def test_card_refusal_names_paths_but_never_the_number() -> None:
    """The error locates the card data and masks a PAN even when it is used as a key."""
    with pytest.raises(CardDataRefused) as raised:
        refuse_card_data("event", {"meta": {PAN: "x"}, "note": f"card {PAN}", "cvc": "1"})
    text = str(raised.value)
    assert PAN not in text
    assert "$.note" in text and "$.cvc" in text and "555555******4444" in text


def test_tokens_and_display_data_pass_the_guard() -> None:
    """Tokens, last4, expiry, amounts and timestamps are not card data."""
    refuse_card_data(
        "event",
        {
            "card": {"token": "tok_4f9a", "last4": "4444", "brand": "mastercard", "exp_month": 12},
            "amount": 123456789012,
            "created": 1795785569817,
            "order": "20261127123456789",
        },
    )


def test_error_text_is_masked_and_capped() -> None:
    """Stored error texts mask card numbers and stop at 2000 characters."""
    assert safe_error_text(ValueError(f"bad {PAN}")) == "ValueError: bad 555555******4444"
    assert len(safe_error_text("x" * 10_000)) == MAX_ERROR_TEXT


def test_prepare_append_validates_before_io() -> None:
    """Names, expected versions and JSON are checked before anything is written."""
    with pytest.raises(InvalidArgument):
        prepare_append("charge-1", [NewEvent("charge.requested", {})], expected_version=-1)
    with pytest.raises(InvalidArgument):
        prepare_append("charge-1", [NewEvent("charge.requested", {"x": float("nan")})], 0)
    with pytest.raises(InvalidArgument):
        prepare_append("charge-1", [NewEvent("charge.requested", {"x": object()})], 0)
    with pytest.raises(InvalidArgument):
        prepare_append("charge-1", [NewEvent("charge.requested", {}, merchant_id="m 1")], 0)
    ((_, event_id, data),) = prepare_append("charge-1", [NewEvent("charge.requested", {"b": 1})], 0)
    assert event_id.startswith("evt_") and data == '{"b":1}'


def test_wire_form_round_trips() -> None:
    """The feed's JSON form of an event decodes to an equal event."""
    event = RecordedEvent(
        "evt_1", "charge.requested", "charge-1", 1, 7, from_micros(1_795_785_569_817_123), {"a": 1}
    )
    assert RecordedEvent.from_wire(event.to_wire()) == event
    assert event.recorded_at.utcoffset() is not None


def test_stored_response_round_trips() -> None:
    """A stored response comes back with the same status and body."""
    response = StoredResponse(402, {"error": {"type": "card_error", "code": "card_declined"}})
    assert StoredResponse.from_json(response.to_json()) == response
