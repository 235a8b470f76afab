"""The workers' pure decisions: gateway answers to events, signatures, retry schedules,
endpoint filters, settlement parsing and matching."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, date, datetime

import pytest
import stripe

from fincore.sensitive import SecretKey
from noncde.api.domain import (
    AuthorizeCharge,
    CancelCharge,
    CaptureCharge,
    Charge,
    ChargeAuthorized,
    ChargeCanceled,
    ChargeCaptured,
    ChargeFailed,
    ExecuteRefund,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    RefundFailed,
    RefundSucceeded,
)
from noncde.workers.domain.jobs import (
    GatewayRefused,
    PaymentAnswer,
    PaymentStatus,
    RefundAnswer,
    RefundAnswerStatus,
    is_settled,
    payment_events,
    refund_events,
    refused_events,
)
from noncde.workers.domain.reconciliation import (
    FindingKind,
    LedgerItem,
    LineType,
    SettlementFormatError,
    parse_settlement,
    reconcile,
)
from noncde.workers.domain.webhooks import (
    Endpoint,
    RetrySchedule,
    WebhookSignatureError,
    signature_header,
    verify_signature,
)

WHEN = datetime(2026, 11, 27, 12, tzinfo=UTC)


def _charge(status: str = "processing", **fields: object) -> Charge:
    charge = Charge(
        "ch_One",
        "mer_A",
        1000,
        "usd",
        True,
        PaymentMethodRef(PaymentMethodType.PSP_TOKEN, "pm"),
        Flow.SDK,
        WHEN,
    )
    charge.status = type(charge.status)(status)
    for key, value in fields.items():
        setattr(charge, key, value)
    return charge


AUTH = AuthorizeCharge("ch_One", "mer_A", 1000, "usd", True, {"type": "psp_token", "token": "pm"})


def test_answers_become_outcome_events_only_while_the_charge_waits() -> None:
    """Each final answer maps to its event; unknown, not-final and settled charges map to none."""
    captured = payment_events(
        AUTH, _charge(), PaymentAnswer(PaymentStatus.SUCCEEDED, "pi_1", amount_received=1000)
    )
    assert captured == [ChargeCaptured("ch_One", 1000, 1000, "pi_1")]
    assert payment_events(
        AUTH,
        _charge(),
        PaymentAnswer(PaymentStatus.REQUIRES_CAPTURE, "pi_1", amount_capturable=900),
    ) == [ChargeAuthorized("ch_One", 900, "pi_1")]
    failed = payment_events(
        AUTH,
        _charge(),
        PaymentAnswer(
            PaymentStatus.FAILED, "pi_1", decline_code="insufficient_funds", message="No."
        ),
    )
    assert isinstance(failed[0], ChargeFailed) and failed[0].decline_code == "insufficient_funds"
    assert payment_events(AUTH, _charge(), PaymentAnswer(PaymentStatus.UNKNOWN)) == []
    assert (
        payment_events(AUTH, _charge("succeeded"), PaymentAnswer(PaymentStatus.SUCCEEDED, "pi"))
        == []
    )
    capture = CaptureCharge("ch_One", "mer_A", 600)
    waiting = _charge("requires_capture", psp_reference="pi_1")
    assert (
        payment_events(capture, waiting, PaymentAnswer(PaymentStatus.REQUIRES_CAPTURE, "pi_1"))
        == []
    )
    assert payment_events(capture, waiting, PaymentAnswer(PaymentStatus.SUCCEEDED, "pi_1")) == [
        ChargeCaptured("ch_One", 600, 600, "pi_1")
    ]
    cancel = CancelCharge("ch_One", "mer_A")
    assert payment_events(cancel, waiting, PaymentAnswer(PaymentStatus.CANCELED, "pi_1")) == [
        ChargeCanceled("ch_One", "pi_1")
    ]


def test_refund_answers_and_refusals() -> None:
    """Refund answers map to refund events (pending maps to nothing); a 4xx refusal fails an
    authorization or a refund, but not when it means our identity or a conflict (401/403/409)."""
    refund = ExecuteRefund("re_1", "ch_One", "mer_A", 300)
    charge = _charge("succeeded")
    from noncde.api.domain import Refund, RefundStatus

    charge.refunds.append(Refund("re_1", "ch_One", "mer_A", 300, "usd", RefundStatus.PENDING, WHEN))
    assert refund_events(
        refund, charge, RefundAnswer(RefundAnswerStatus.SUCCEEDED, "pre_1", 300)
    ) == [RefundSucceeded("re_1", "ch_One", 300, "pre_1")]
    assert refund_events(refund, charge, RefundAnswer(RefundAnswerStatus.PENDING)) == []
    refused = GatewayRefused(400, "amount_too_large", "Too much.")
    assert refused_events(refund, charge, refused) == [
        RefundFailed("re_1", "ch_One", "amount_too_large", "Too much.")
    ]
    assert refused_events(AUTH, _charge(), GatewayRefused(404, "token_not_found", "No.")) and True
    for status in (401, 403, 409):
        assert GatewayRefused(status, None, "x").needs_operator
        assert refused_events(AUTH, _charge(), GatewayRefused(status, None, "x")) == []
    assert is_settled(refund, charge) is False
    assert (
        PaymentAnswer.from_json({"status": "weird", "amount_received": True}).status
        is PaymentStatus.UNKNOWN
    )


def test_signatures_verify_like_stripe_and_refuse_tampering() -> None:
    """Our header verifies with Stripe's own verifier and ours; a changed body, another secret
    or an old timestamp is refused."""
    body = json.dumps({"id": "evt_1", "object": "event"}).encode()
    now = int(time.time())
    header = signature_header("whsec_abc", now, body)
    stripe.WebhookSignature.verify_header(body.decode(), header, "whsec_abc", tolerance=300)
    assert verify_signature(body, header, "whsec_abc", now=now) == now
    for payload, secret, at in (
        (body + b" ", "whsec_abc", now),
        (body, "whsec_other", now),
        (body, "whsec_abc", now + 3600),
    ):
        with pytest.raises(WebhookSignatureError):
            verify_signature(payload, header, secret, now=at)
    rotated = f"{header},v1={'0' * 64}"
    assert verify_signature(body, rotated, "whsec_abc", now=now) == now
    with pytest.raises(WebhookSignatureError):
        verify_signature(body, None, "whsec_abc", now=now)


def test_retry_schedule_grows_and_gives_up_after_the_window() -> None:
    """Each wait is at least the previous one until the cap; nothing is scheduled past 24 h."""
    schedule = RetrySchedule(base_s=30, cap_s=4 * 3600, give_up_after_s=24 * 3600)
    waits = [schedule.delay_s(n) for n in range(1, 10)]
    assert all(b >= a for a, b in itertools.pairwise(waits))
    assert all(w <= 4 * 3600 for w in waits)
    start, now, attempts = 0.0, 0.0, 0
    while (due := schedule.next_attempt(start, attempts + 1, now)) is not None:
        attempts, now = attempts + 1, due
    assert now <= 24 * 3600 and attempts >= 10


def test_endpoint_event_filters() -> None:
    """`*`, a `prefix.*` or an exact type; a disabled endpoint wants nothing."""
    endpoint = Endpoint(
        "we_1", "mer_A", "https://x", ("charge.*", "refund.succeeded"), SecretKey("whsec_x")
    )
    assert endpoint.wants("charge.captured") and endpoint.wants("refund.succeeded")
    assert not endpoint.wants("refund.failed") and not endpoint.wants("payment_session.created")
    assert "whsec_x" not in repr(endpoint)
    off = Endpoint("we_2", "mer_A", "https://x", ("*",), SecretKey("s"), disabled=True)
    assert not off.wants("charge.captured")


def test_settlement_parsing_withholds_card_numbers_and_checks_arithmetic() -> None:
    """A card-like cell is never echoed; a net that is not amount - fee, or a non-number, is
    malformed; a file without the header is not a settlement file."""
    data = (
        b"psp_reference,type,amount,fee,net,currency,date,payment_intent,balance_transaction,reference\n"
        b"pi_1,charge,1000,59,941,usd,2026-11-27,pi_1,txn_1,ch_1\n"
        b"pi_2,charge,1000,59,900,usd,2026-11-27,pi_2,txn_2,ch_2\n"
        b"pi_3,charge,ten,59,900,usd,2026-11-27,pi_3,txn_3,ch_3\n"
        b"4111111111111111,charge,1,0,1,usd,2026-11-27,x,txn_4,\n"
    )
    lines, problems = parse_settlement(data)
    assert [line.psp_reference for line in lines] == ["pi_1"]
    assert [(p.kind, p.psp_reference) for p in problems] == [
        (FindingKind.MALFORMED, "pi_2"),
        (FindingKind.MALFORMED, "pi_3"),
        (FindingKind.MALFORMED, "(withheld)"),
    ]
    assert "4111" not in json.dumps([p.to_dict() for p in problems])
    with pytest.raises(SettlementFormatError):
        parse_settlement(b"a,b,c\n1,2,3\n")


def test_matching_finds_every_kind_and_is_deterministic() -> None:
    """Pure matching: each finding kind, fees only for known references, a stable fingerprint."""

    def item(
        ref: str, amount: int, currency: str = "usd", kind: LineType = LineType.CHARGE
    ) -> LedgerItem:
        return LedgerItem(kind, ref, amount, currency, "mer_A", "ch_" + ref, None, (1,), WHEN)

    data = (
        b"psp_reference,type,amount,fee,net,currency,date,payment_intent,balance_transaction,reference\n"
        b"pi_ok,charge,1000,59,941,usd,d,pi_ok,txn_1,\n"
        b"pi_amt,charge,999,59,940,usd,d,pi_amt,txn_2,\n"
        b"pi_cur,charge,1000,59,941,eur,d,pi_cur,txn_3,\n"
        b"pi_dup,charge,1000,59,941,usd,d,pi_dup,txn_4,\n"
        b"pi_dup,charge,1000,59,941,usd,d,pi_dup,txn_5,\n"
        b"pi_new,charge,1000,59,941,usd,d,pi_new,txn_6,\n"
        b"pi_twice,charge,1000,59,941,usd,d,pi_twice,txn_7,\n"
        b"re_ok,refund,-300,0,-300,usd,d,pi_ok,txn_8,\n"
    )
    lines, problems = parse_settlement(data)
    ledger = {
        (LineType.CHARGE, "pi_ok"): [item("pi_ok", 1000)],
        (LineType.CHARGE, "pi_amt"): [item("pi_amt", 1000)],
        (LineType.CHARGE, "pi_cur"): [item("pi_cur", 1000)],
        (LineType.CHARGE, "pi_dup"): [item("pi_dup", 1000)],
        (LineType.CHARGE, "pi_twice"): [item("pi_twice", 1000), item("pi_twice", 1000)],
        (LineType.REFUND, "re_ok"): [item("re_ok", 300, kind=LineType.REFUND)],
    }
    of_day = [*ledger[(LineType.CHARGE, "pi_ok")], item("pi_gone", 500)]
    report = reconcile(date(2026, 11, 27), "test", lines, problems, ledger, of_day)
    assert sorted((f.kind.value, f.psp_reference) for f in report.findings) == [
        ("amount_mismatch", "pi_amt"),
        ("currency_mismatch", "pi_cur"),
        ("duplicate", "pi_dup"),
        ("duplicate", "pi_twice"),
        ("missing_at_psp", "pi_gone"),
        ("missing_in_ledger", "pi_new"),
    ]
    assert report.matched == 3 and len(report.fees) == 5
    again = reconcile(date(2026, 11, 27), "test", lines, problems, ledger, of_day)
    assert again.fingerprint() == report.fingerprint() and again.to_dict() == report.to_dict()
    assert report.findings_csv().count("\n") == 7 and "FINDINGS: 6" in report.summary()
