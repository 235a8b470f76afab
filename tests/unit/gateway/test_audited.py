"""Audited PSP calls: a request record before the call (fail closed: no record, no call), a
result record after it (its failure cannot undo a call that happened), none with card data;
and the HTTP error mapping of the gateway's failures."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit.adapters.memory import named_store
from audit.bootstrap import open_audit_log
from audit.domain import AuditUnavailable, EventType
from audit.service import AuditLog
from cde.gateway.app import api_error
from cde.gateway.domain import (
    CardTokenRefused,
    Operation,
    PaymentOutcome,
    PaymentStatus,
    PspIdempotencyError,
    PspRateLimited,
    PspRequestError,
    PspUnavailable,
    ReferenceConflict,
    WebhookVerificationError,
)
from cde.gateway.service import Audited, Caller

WORKER = Caller("worker", request_id="req_1", origin_ip="127.0.0.1")


@pytest.fixture
def audit_log(tmp_path: Path) -> Iterator[tuple[AuditLog, str]]:
    name = "gw-" + secrets.token_hex(6)
    env = {"FINCORE_VAR_DIR": str(tmp_path), "FINCORE_ENV": "test"}
    log = open_audit_log("cde", "gateway-test", url=f"memory://{name}", env=env)
    try:
        yield log, name
    finally:
        log.close()


def records(name: str) -> list[dict[str, Any]]:
    store = named_store(name, "cde")
    with store.lock:
        return [json.loads(line) for line in store.records.get("cde", [])]


class FailingAudit:
    """An audit trail whose sink is down after `ok` successful writes."""

    def __init__(self, ok: int) -> None:
        self.ok = ok

    def record(self, event_type: EventType, **kwargs: Any) -> None:
        if self.ok <= 0:
            raise AuditUnavailable("sink down")
        self.ok -= 1


def test_a_call_is_recorded_before_and_after(audit_log: tuple[AuditLog, str]) -> None:
    """Each PSP call has a request and a result record with ids, statuses and codes."""
    log, name = audit_log
    audited = Audited(log, None)
    outcome = PaymentOutcome(PaymentStatus.failed, "pi_1", decline_code="lost_card")
    result = asyncio.run(
        audited.psp_call(
            Operation.authorize,
            "ch_abcdef12",
            WORKER,
            lambda: outcome,
            merchant_id="mer_a",
            details={"amount": 100},
        )
    )
    assert result is outcome
    calls = [r for r in records(name) if r["event_type"] == "psp.call"]
    assert [c["details"]["phase"] for c in calls] == ["request", "result"]
    assert calls[1]["outcome"] == "failure" and calls[1]["details"]["decline_code"] == "lost_card"
    assert all(c["target"] == "ch_abcdef12" for c in calls)
    assert calls[0]["actor"] == {"id": "worker", "type": "service", "on_behalf_of": "mer_a"}


def test_no_request_record_no_call() -> None:
    """When the audit log cannot take the request record, the PSP is never called."""
    called: list[bool] = []
    audited = Audited(FailingAudit(ok=0), None)
    with pytest.raises(AuditUnavailable):
        asyncio.run(
            audited.psp_call(Operation.capture, "ch_abcdef12", WORKER, lambda: called.append(True))
        )
    assert called == []


def test_a_lost_result_record_does_not_hide_the_call() -> None:
    """The call happened: its answer is returned even if the result record fails."""
    audited = Audited(FailingAudit(ok=1), None)
    outcome = PaymentOutcome(PaymentStatus.succeeded, "pi_2")
    assert (
        asyncio.run(audited.psp_call(Operation.capture, "ch_abcdef12", WORKER, lambda: outcome))
        is outcome
    )


def test_psp_errors_are_recorded_and_raised(audit_log: tuple[AuditLog, str]) -> None:
    """A refused call is a failure record with the PSP's code, then the error propagates."""
    log, name = audit_log

    def refuse() -> None:
        raise PspRequestError("No.", code="amount_too_large", param="amount")

    with pytest.raises(PspRequestError):
        asyncio.run(Audited(log, None).psp_call(Operation.refund, "re_abcdef12", WORKER, refuse))
    result = [r for r in records(name) if r["event_type"] == "psp.call"][-1]
    assert result["outcome"] == "failure" and result["reason"] == "amount_too_large"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (
            ReferenceConflict("x", code="idempotency_error", param="charge_id"),
            409,
            "idempotency_error",
        ),
        (CardTokenRefused("x", code="token_not_owned"), 403, "token_not_owned"),
        (PspRequestError("x", code="amount_too_large", http_status=400), 400, "amount_too_large"),
        (PspRequestError("x", code="resource_missing", http_status=404), 404, "resource_missing"),
        (PspIdempotencyError("x"), 409, "idempotency_error"),
        (PspRateLimited("x"), 429, "psp_rate_limited"),
        (PspUnavailable("x"), 503, "psp_unavailable"),
        (WebhookVerificationError("x", code="signature"), 400, "webhook_signature_invalid"),
        (AuditUnavailable("down"), 503, "audit_unavailable"),
    ],
)
def test_errors_map_to_stripe_style_answers(error: Exception, status: int, code: str) -> None:
    """Every failure has its HTTP status and a stable code."""
    mapped = api_error(error)
    assert (mapped.status, mapped.code) == (status, code)


def test_refusals_are_written_off_the_event_loop_and_before_the_error_is_raised(
    audit_log: tuple[AuditLog, str],
) -> None:
    """`refusal` (and `arecord`) write on the PSP executor, never on the event loop's thread
    (an fsync there would stall every request), and the record exists once it returns."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    log, name = audit_log
    writers: list[str] = []

    class Spy:
        def record(self, event: EventType, **fields: Any) -> Any:
            writers.append(threading.current_thread().name)
            return log.record(event, **fields)

    async def refuse() -> tuple[str, Exception]:
        with ThreadPoolExecutor(1, thread_name_prefix="psp-test") as executor:
            audited = Audited(Spy(), executor)  # type: ignore[arg-type]
            error = await audited.refusal(
                WORKER,
                ReferenceConflict("other parameters", code="reference_conflict"),
                target="ch_1",
            )
            return threading.current_thread().name, error

    loop_thread, error = asyncio.run(refuse())
    assert isinstance(error, ReferenceConflict)
    assert writers and all(w.startswith("psp-test") for w in writers) and loop_thread not in writers
    denied = [r for r in records(name) if r["event_type"] == EventType.ACCESS_DENIED.value]
    assert [(r["target"], r["reason"]) for r in denied] == [("ch_1", "reference_conflict")]
