"""The event catalogue, the record's fields and canonical form, and input validation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from audit.domain import (
    Actor,
    ActorType,
    AuditRecord,
    CardDataInAuditDetails,
    EventType,
    InvalidAuditRecord,
    Origin,
    Outcome,
    RecordDraft,
    Requirement,
    canonical_json,
    digest_b64,
    format_time,
    genesis_hash,
    requirement_of,
)
from audit.domain.records import body_of_line, line_hash_ok
from fincore.cards import find_card_numbers

ORIGIN = Origin(service="vault", host="host-1", pid=4242, ip="10.0.0.7")


def draft(**overrides: object) -> RecordDraft:
    values: dict[str, object] = {
        "zone": "cde",
        "component": "vault",
        "event_type": EventType.DETOKENIZE,
        "outcome": Outcome.SUCCESS,
        "actor": Actor("gateway", ActorType.SERVICE, on_behalf_of="mer_123"),
        "origin": ORIGIN,
        "target": "tok_abc",
        "resource": "vault.card",
        "request_id": "req_1",
        "details": {"purpose": "authorize", "amount": 1250},
    }
    values.update(overrides)
    return RecordDraft.create(**values)  # type: ignore[arg-type]


def test_every_event_type_has_a_requirement() -> None:
    """The catalogue maps each event type to the PCI DSS sub-requirement it serves."""
    for event in EventType:
        assert isinstance(event.requirement, Requirement)
        assert re.fullmatch(r"[a-z_]+\.[a-z_.]+", event.value), event


def test_catalogue_covers_10_2_1_1_to_10_2_1_7() -> None:
    """Every sub-requirement 10.2.1.1 to 10.2.1.7 has at least one event type."""
    covered = {event.requirement.value for event in EventType}
    assert {f"10.2.1.{n}" for n in range(1, 8)} <= covered


def test_catalogue_has_the_names_other_components_use() -> None:
    """The names the vault, gateway, API and dashboard are built against exist."""
    for name in (
        "TOKENIZE", "DETOKENIZE", "DETOKENIZE_DENIED", "CARD_REVEAL_ATTEMPT", "TOKEN_DELETE",
        "ADMIN_ACTION", "AUDIT_LOG_SEARCH", "AUTHENTICATION_FAILURE", "SERVICE_IDENTITY_REFUSED",
        "ACCOUNT_CREATE", "API_KEY_CREATE", "API_KEY_ROTATE", "API_KEY_REVOKE",
        "CAPABILITY_GRANT", "CAPABILITY_REVOKE", "MFA_ENROL", "MFA_RESET", "AUDIT_LOG_INIT",
        "AUDIT_LOG_STOP", "AUDIT_LOG_PAUSE", "AUDIT_LOG_RESUME", "KEY_CREATE", "KEY_ROTATE",
        "KEY_RETIRE", "KEY_DESTROY", "MERCHANT_CREATE", "MERCHANT_DELETE", "RULE_CREATE",
        "RULE_DELETE", "PSP_CALL", "WEBHOOK_VERIFICATION_FAILURE",
    ):  # fmt: skip
        assert hasattr(EventType, name), name


def test_unknown_stored_event_types_are_tolerated() -> None:
    """A reader meets event types a newer writer added: no requirement, no crash."""
    assert requirement_of("future.thing") is None
    assert requirement_of("card.detokenize") is Requirement.CARDHOLDER_DATA_ACCESS


def test_time_is_utc_rfc3339_with_z_and_milliseconds() -> None:
    """Timestamps are UTC, RFC 3339, millisecond precision, ending in Z (PCI DSS 10.6.1)."""
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 3, 1, 14, 5, 6, 789_999, tzinfo=plus_two)) == (
        "2026-03-01T12:05:06.789Z"
    )
    with pytest.raises(InvalidAuditRecord):
        format_time(datetime(2026, 3, 1))  # noqa: DTZ001 - the point of the test


def test_sealed_record_holds_every_10_2_2_field() -> None:
    """A sealed record has actor, type, time, outcome, origin, target, resource and chain data."""
    record, line = draft().seal(
        stream="cde", seq=7, prev_hash="p" * 43, time="2026-03-01T00:00:00.000Z"
    )
    stored = json.loads(line)
    assert stored["actor"] == {"id": "gateway", "type": "service", "on_behalf_of": "mer_123"}
    assert stored["origin"] == {"service": "vault", "host": "host-1", "pid": 4242, "ip": "10.0.0.7"}
    for field in ("event_type", "time", "outcome", "target", "resource", "zone", "component",
                  "request_id", "seq", "details", "prev_hash", "hash", "stream"):  # fmt: skip
        assert field in stored, field
    assert record.time.endswith("Z")
    assert AuditRecord.from_line(line) == record


def test_hash_is_sha256_over_the_canonical_body() -> None:
    """The stored hash is SHA-256 (base64url) of the canonical JSON body without the hash."""
    record, line = draft().seal(
        stream="cde", seq=1, prev_hash="p" * 43, time="2026-03-01T00:00:00.000Z"
    )
    assert body_of_line(line) == canonical_json(record.body())
    assert record.hash == digest_b64(canonical_json(record.body()))
    assert line_hash_ok(line, record.hash)
    assert not line_hash_ok(line.replace(b"tok_abc", b"tok_abd"), record.hash)


def test_canonical_json_is_sorted_compact_ascii() -> None:
    """Canonical JSON: sorted keys, no spaces, ASCII escapes, no NaN."""
    assert canonical_json({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'
    with pytest.raises(ValueError, match="JSON"):
        canonical_json({"x": float("nan")})


def test_genesis_binds_zone_and_stream() -> None:
    """Two logs never share a first link, so a record cannot be moved between them."""
    assert genesis_hash("cde", "cde") != genesis_hash("noncde", "noncde")
    assert len(genesis_hash("cde", "cde")) == 43


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"details": {"note": "card 4242 4242 4242 4242 declined"}}, "$.details.note"),
        ({"details": {"nested": {"list": ["x", "5555555555554444"]}}}, "$.details.nested.list[1]"),
        ({"details": {"number": "tok_1"}}, "$.details.number"),
        ({"details": {"cvc": "123"}}, "$.details.cvc"),
        ({"details": {"amount": 4111111111111111}}, "$.details.amount"),
        ({"target": "4000056655665556"}, "$.target"),
        ({"reason": "pan 378282246310005 refused"}, "$.reason"),
        ({"request_id": "4242-4242-4242-4242"}, "$.request_id"),
        ({"actor": Actor("gateway", on_behalf_of="5105105105105100")}, "$.actor.on_behalf_of"),
    ],
)
def test_card_data_in_any_field_is_refused(overrides: dict[str, object], path: str) -> None:
    """A card number or card field anywhere raises, naming the path but never the value."""
    with pytest.raises(CardDataInAuditDetails) as caught:
        draft(**overrides)
    assert path in caught.value.paths
    assert not find_card_numbers(str(caught.value))


def test_ordinary_numbers_are_not_card_data() -> None:
    """Amounts, timestamps, ids and long non-card numbers pass the card check."""
    made = draft(
        details={"amount": 123456789, "ms": 1767225600000, "order": "20260301123456789", "ok": True}
    )
    assert made.details["ms"] == 1767225600000


@pytest.mark.parametrize(
    "overrides",
    [
        {"event_type": "card.made_up"},
        {"outcome": "maybe"},
        {"actor": Actor("")},
        {"actor": Actor("x", type="robot")},
        {"details": {"when": datetime.now(UTC)}},
        {"details": {1: "non-string key"}},
        {"details": {"ratio": float("inf")}},
        {"details": {"blob": "x" * 20_000}},
        {"target": "t" * 600},
        {"zone": "CDE!"},
    ],
)
def test_values_a_record_cannot_hold_are_refused(overrides: dict[str, object]) -> None:
    """Unknown types, non-JSON details, oversized fields and bad zones raise InvalidAuditRecord."""
    with pytest.raises(InvalidAuditRecord):
        draft(**overrides)


def test_details_are_copied_not_shared() -> None:
    """Changing the caller's dict afterwards cannot change what is written."""
    tags = ["a"]
    details: dict[str, object] = {"merchant": "mer_1", "tags": tags}
    made = draft(details=details)
    details["merchant"] = "mer_2"
    tags.append("b")
    assert made.details == {"merchant": "mer_1", "tags": ["a"]}


def test_time_format_matches_the_strftime_reference() -> None:
    """The isoformat fast path gives the same text as the strftime form for any aware time
    (seeded random instants, offsets and microseconds; milliseconds truncated, not rounded)."""
    import random

    rng = random.Random(11)
    for _ in range(5_000):
        offset = timezone(timedelta(minutes=rng.randint(-14 * 60, 14 * 60)))
        moment = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.randint(0, 60 * 365 * 86_400), microseconds=rng.randint(0, 999_999)
        )
        local = moment.astimezone(offset)
        utc = local.astimezone(UTC)
        reference = utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"
        assert format_time(local) == reference


def test_flat_details_are_copied_and_odd_values_still_refused() -> None:
    """Flat details (the usual case) are copied too; a value that is not a JSON scalar, an
    enum-typed or non-string event type or outcome is handled as before."""
    details: dict[str, object] = {"merchant": "mer_1", "ok": True, "n": 3, "none": None}
    made = draft(details=details)
    details["merchant"] = "mer_2"
    assert made.details == {"merchant": "mer_1", "ok": True, "n": 3, "none": None}
    assert draft(event_type=EventType.TOKENIZE).event_type == "card.tokenize"
    for overrides in ({"event_type": 5}, {"outcome": None}, {"details": {"b": b"x"}}):
        with pytest.raises(InvalidAuditRecord):
            draft(**overrides)
