"""The daily review (PCI DSS 10.4.1) flags what needs a person and lists the rest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from audit.adapters.ed25519 import Ed25519Verifier
from audit.adapters.memory import MemoryAuditSink
from audit.domain import Actor, EventType, Origin, RecordDraft, format_time, genesis_hash
from audit.service import AuditReader, ReviewPolicy, ReviewReport, review_day
from tests.unit.audit import tamper

DAY = date(2026, 3, 10)
POLICY = ReviewPolicy(known_services=frozenset({"vault", "gateway", "ingress", "dashboard", "api"}))


def at(hour: int, minute: int = 0, *, days_before: int = 0) -> datetime:
    return datetime(2026, 3, 10, hour, minute, tzinfo=UTC) - timedelta(days=days_before)


class Log:
    """Builds a linked chain with chosen times, writers and pids (what many processes write)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.prev = genesis_hash("cde", "cde")

    def add(
        self,
        when: datetime,
        event: EventType,
        *,
        actor: str = "gateway",
        actor_type: str = "service",
        outcome: str = "success",
        component: str = "vault",
        host: str = "host-1",
        pid: int = 100,
        ip: str | None = None,
        target: str | None = None,
    ) -> None:
        draft = RecordDraft.create(
            zone="cde",
            component=component,
            event_type=event,
            outcome=outcome,
            actor=Actor(actor, actor_type),
            origin=Origin(component, host, pid, ip),
            target=target,
        )
        record, line = draft.seal(
            stream="cde", seq=len(self.lines) + 1, prev_hash=self.prev, time=format_time(when)
        )
        self.prev = record.hash
        self.lines.append(line)

    def baseline(self, per_day: int = 20) -> Log:
        for days_before in range(7, 0, -1):
            for n in range(per_day):
                self.add(at(9, n % 60, days_before=days_before), EventType.DETOKENIZE)
        return self

    def review(self, lines: list[bytes] | None = None) -> ReviewReport:
        sink = MemoryAuditSink("cde")
        sink.load("cde", self.lines if lines is None else lines, [])
        reader = AuditReader({"cde": sink}, {"cde": Ed25519Verifier({})})
        return review_day(reader, DAY, POLICY, ["cde"])


def attention(report: ReviewReport) -> list[str]:
    return [f"{f.check}: {f.message}" for f in report.findings if f.severity == "attention"]


def ordinary_day(log: Log) -> Log:
    log.baseline()
    log.add(at(8), EventType.AUDIT_LOG_START, actor="vault")
    for n in range(22):
        log.add(at(9, n), EventType.DETOKENIZE, target=f"tok_{n}")
    log.add(at(10), EventType.ADMIN_ACTION, actor="alice", actor_type="user", component="dashboard")
    log.add(at(11), EventType.KEY_ROTATE, actor="vault", target="key_7")
    for n in range(3):
        log.add(
            at(12, n),
            EventType.AUTHENTICATION_FAILURE,
            actor="bob",
            actor_type="user",
            outcome="failure",
            component="dashboard",
            ip="10.0.0.9",
        )
    return log


def finish(log: Log) -> Log:
    log.add(at(23), EventType.AUDIT_LOG_STOP, actor="vault")
    return log


def test_an_ordinary_day_needs_no_one() -> None:
    """Usual detokenize volume, one admin action, a key rotation and 3 failed logins: all info."""
    report = finish(ordinary_day(Log())).review()
    assert report.verified
    assert attention(report) == []
    assert not report.needs_attention
    checks = {f.check for f in report.findings}
    assert {"detokenize_volume", "admin_action", "key_operation", "failed_access"} <= checks
    assert report.records == 29


def _spike(log: Log) -> None:
    for n in range(100):
        log.add(at(14, n % 60), EventType.DETOKENIZE)


def _new_detokenizer(log: Log) -> None:
    log.add(at(14), EventType.DETOKENIZE, actor="api", component="vault")


def _denied(log: Log) -> None:
    log.add(at(14), EventType.DETOKENIZE_DENIED, actor="api", outcome="failure")


def _login_storm(log: Log) -> None:
    for n in range(11):
        log.add(
            at(14, n),
            EventType.AUTHENTICATION_FAILURE,
            actor="mallory",
            actor_type="user",
            outcome="failure",
            component="dashboard",
            ip="203.0.113.5",
        )


def _key_destroyed(log: Log) -> None:
    log.add(at(14), EventType.KEY_DESTROY, actor="vault", target="key_1")


def _raw_card_enabled(log: Log) -> None:
    log.add(
        at(14),
        EventType.RAW_CARD_API_ENABLE,
        actor="alice",
        actor_type="user",
        component="dashboard",
    )


def _unknown_service(log: Log) -> None:
    log.add(at(14), EventType.TOKENIZE, actor="mystery-service")


def _anonymous_success(log: Log) -> None:
    log.add(at(14), EventType.CARD_READ, actor="anonymous", actor_type="anonymous")


def _unclean_stop(log: Log) -> None:
    log.add(at(14), EventType.AUDIT_LOG_START, actor="vault", pid=200)
    log.add(at(14, 5), EventType.TOKENIZE, actor="ingress", pid=200)
    log.add(at(15), EventType.AUDIT_LOG_START, actor="vault", pid=300)


def _long_gap(log: Log) -> None:
    log.add(at(16), EventType.AUDIT_LOG_STOP, actor="vault")
    log.add(at(17), EventType.AUDIT_LOG_START, actor="vault")


def _sink_outage(log: Log) -> None:
    log.add(at(14), EventType.AUDIT_LOG_RESUME, actor="vault", actor_type="system")


@pytest.mark.parametrize(
    ("scenario", "check"),
    [
        (_spike, "detokenize_volume"),
        (_new_detokenizer, "detokenize_volume"),
        (_denied, "failed_access"),
        (_login_storm, "failed_access"),
        (_key_destroyed, "key_operation"),
        (_raw_card_enabled, "admin_action"),
        (_unknown_service, "unknown_identity"),
        (_anonymous_success, "unknown_identity"),
        (_unclean_stop, "audit_gap"),
        (_long_gap, "audit_gap"),
        (_sink_outage, "audit_gap"),
    ],
)
def test_each_anomaly_needs_a_person(scenario: Callable[[Log], None], check: str) -> None:
    """Every kind of exception the review looks for turns an ordinary day into 'attention'."""
    log = ordinary_day(Log())
    scenario(log)
    report = finish(log).review()
    assert report.needs_attention
    assert any(line.startswith(f"{check}:") for line in attention(report)), attention(report)


def test_a_short_restart_is_not_a_gap() -> None:
    """A stop followed by a start within the allowed gap is listed, not escalated."""
    log = ordinary_day(Log())
    log.add(at(16), EventType.AUDIT_LOG_STOP, actor="vault")
    log.add(at(16, 5), EventType.AUDIT_LOG_START, actor="vault")
    report = finish(log).review()
    assert attention(report) == []
    assert any("was off from" in f.message for f in report.findings)


def test_a_tampered_log_needs_a_person() -> None:
    """If the chain does not verify, the review says so first."""
    log = finish(ordinary_day(Log()))
    lines = tamper.modify(log.lines, 150)
    report = log.review(lines)
    assert not report.verified
    assert attention(report)[0].startswith("integrity:")


def test_a_silent_zone_needs_a_person() -> None:
    """A zone that wrote nothing all day is itself an exception (logging may be off)."""
    log = Log().baseline()
    report = log.review()
    assert any(line.startswith("audit_gap:") for line in attention(report))
