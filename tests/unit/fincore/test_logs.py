"""The redaction processor masks card data in every field before anything is written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from fincore.logs import REDACTED, configure_logging, redact
from fincore.sensitive import Cvc, Pan, SecretKey


def _redacted(**event: object) -> dict[str, object]:
    return redact(None, "info", dict(event))


def test_masked_types_are_rendered_masked() -> None:
    """Pan, Cvc and SecretKey values are replaced by their masked repr."""
    out = _redacted(pan_value=Pan("4242424242424242"), c=Cvc("123"), k=SecretKey("sk_live_x"))
    assert out == {
        "pan_value": "Pan('424242******4242')",
        "c": "Cvc('***')",
        "k": "SecretKey('sk_***')",
    }


@pytest.mark.parametrize(
    "text",
    ["4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242", "card:5555555555554444!"],
)
def test_card_numbers_in_any_string_field_are_masked(text: str) -> None:
    """A Luhn-valid run in any field is masked, with or without separators."""
    out = _redacted(event="charge", note=text)
    assert "4242424242424242" not in str(out).replace(" ", "").replace("-", "")
    assert "5555555555554444" not in str(out)
    assert "******" in str(out["note"])


def test_card_numbers_as_integers_are_masked() -> None:
    """An integer that is a card number is masked; ordinary integers stay integers."""
    out = _redacted(n=4242424242424242, amount=1000, ts=1700000000000)
    assert out["n"] == "424242******4242" and out["amount"] == 1000 and out["ts"] == 1700000000000


@pytest.mark.parametrize("key", ["number", "pan", "card_number", "cvc", "cvv", "security_code"])
def test_values_of_card_keys_are_removed(key: str) -> None:
    """Values under card-like keys are removed whatever they look like (CVCs are 3 digits)."""
    out = _redacted(**{key: "123"})
    assert out[key] == REDACTED


def test_nested_dicts_and_lists_are_redacted() -> None:
    """Redaction reaches into nested dicts and lists, keys included."""
    out = _redacted(
        request={"card": {"number": "4242424242424242", "cvc": "999", "exp_month": 12}},
        items=[{"memo": "5555 5555 5555 4444"}, "378282246310005"],
        extra={"4242424242424242": "key as card"},
    )
    text = json.dumps(out)
    for pan in ("4242424242424242", "5555555555554444", "378282246310005", "999"):
        assert pan not in text.replace(" ", "")
    assert out["request"]["card"]["exp_month"] == 12  # type: ignore[index]


def test_exception_messages_are_redacted() -> None:
    """Exception text (with traceback) is masked after formatting."""
    stream = io.StringIO()
    configure_logging("unit-test", stream=stream, to_file=False)
    log = structlog.get_logger()
    try:
        raise ValueError("bad card 4242424242424242 and cvc")
    except ValueError:
        log.exception("failed", pan_in_message="x")
    line = stream.getvalue()
    assert "4242424242424242" not in line
    assert "424242******4242" in line
    assert json.loads(line.splitlines()[-1])["event"] == "failed"


def test_stdlib_logging_goes_through_the_same_redaction() -> None:
    """Library logs (uvicorn, httpx) through stdlib logging are redacted too."""
    import logging

    stream = io.StringIO()
    configure_logging("unit-test", stream=stream, to_file=False)
    logging.getLogger("uvicorn.access").warning("GET /pay?card=4242424242424242 200")
    line = stream.getvalue()
    assert "4242424242424242" not in line and "424242******4242" in line


def test_lines_are_json_with_utc_timestamp_and_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line is JSON with a UTC `Z` timestamp, written to stdout and var/log/<component>.log."""
    monkeypatch.setenv("FINCORE_LOG_DIR", str(tmp_path))
    stream = io.StringIO()
    configure_logging("unit-test", stream=stream)
    structlog.get_logger().info("hello", pan=Pan("4242424242424242"))
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["ts"].endswith("Z") and record["component"] == "unit-test"
    assert record["pan"] == REDACTED
    file_line = (tmp_path / "unit-test.log").read_text().splitlines()[-1]
    assert json.loads(file_line) == record


def test_capture_logs_sees_events_before_rendering() -> None:
    """structlog.testing sees the raw event; the processor chain is what redacts it."""
    with capture_logs() as logs:
        structlog.get_logger().info("raw", note="4242424242424242")
    assert logs[0]["note"] == "4242424242424242"
    assert redact(None, "info", dict(logs[0]))["note"] == "424242******4242"


def test_log_info_writes_what_structlog_would_and_redacts_the_same() -> None:
    """`log_info` (the access log's fast path) gives the line `get_logger().info` gives, keys in
    the same order, redaction and request context included; under another structlog
    configuration (capture_logs) it goes through structlog."""
    from fincore.logs import bind_request, clear_request, log_info

    stream = io.StringIO()
    configure_logging("unit-test", stream=stream, to_file=False)
    bind_request(request_id="req_fast_1")
    try:
        fields = {"method": "POST", "route": "/v1/x", "status": 201, "ref": "4242424242424242"}
        structlog.get_logger("access").info("request", **fields)
        log_info("request", **fields)
    finally:
        clear_request()
    slow, fast = (json.loads(line) for line in stream.getvalue().splitlines()[-2:])
    assert slow.pop("ts") and fast.pop("ts")
    assert list(fast.items()) == list(slow.items())
    assert fast["ref"] == "424242******4242" and fast["request_id"] == "req_fast_1"
    with capture_logs() as logs:
        log_info("request", status=200)
    assert logs == [{"event": "request", "status": 200, "log_level": "info"}]
    configure_logging("unit-test", stream=stream, to_file=False, level="WARNING")
    before = stream.getvalue()
    log_info("request", status=200)
    assert stream.getvalue() == before
