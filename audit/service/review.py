"""audit (both zones): the daily log review of PCI DSS 10.4.1 as an automated first pass.

It reads one UTC day and a baseline of the days before, and lists what a person must look at:
failed and denied accesses, detokenize volume per caller against its usual level, administrative
actions, key operations, gaps and failures of audit logging, records from unknown identities
and the chain verification. `needs_attention` is the exit status of `python -m audit review`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from audit.domain import (
    ADMIN_EVENTS,
    IDENTIFICATION_EVENTS,
    INVALID_ACCESS_EVENTS,
    KEY_EVENTS,
    ActorType,
    AuditRecord,
    EventType,
    Outcome,
    format_time,
    parse_time,
)
from audit.service.reader import AuditReader

ATTENTION = "attention"
INFO = "info"

# Any one of these is worth a person's time: they are refusals on the card-data path.
_ALWAYS_ATTENTION = frozenset(
    {
        EventType.DETOKENIZE_DENIED,
        EventType.CARD_REVEAL_ATTEMPT,
        EventType.SERVICE_IDENTITY_REFUSED,
        EventType.MTLS_FAILURE,
        EventType.WEBHOOK_VERIFICATION_FAILURE,
        EventType.ACCESS_DENIED,
    }
)
_ATTENTION_ADMIN = frozenset(
    {EventType.RAW_CARD_API_ENABLE, EventType.BREAK_GLASS_SESSION, EventType.MFA_RESET}
)
_SAMPLE = 10


@dataclass(frozen=True, slots=True)
class ReviewPolicy:
    """Thresholds of the review; the defaults follow PCI_CHECKLIST.md F6."""

    baseline_days: int = 7
    failed_login_threshold: int = 10
    detokenize_factor: float = 3.0
    detokenize_floor: int = 10
    max_logging_gap: timedelta = timedelta(minutes=15)
    known_services: frozenset[str] = frozenset()
    expected_detokenizers: frozenset[str] = frozenset({"gateway"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the review: how urgent, which check, what, and which records show it."""

    severity: str
    check: str
    message: str
    count: int = 1
    records: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "check": self.check,
            "message": self.message,
            "count": self.count,
            "records": list(self.records),
        }


@dataclass(slots=True)
class ReviewReport:
    """The review of one day."""

    day: str
    zones: list[str]
    records: int = 0
    verified: bool = True
    findings: list[Finding] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return any(f.severity == ATTENTION for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "zones": self.zones,
            "records": self.records,
            "verified": self.verified,
            "needs_attention": self.needs_attention,
            "attention": sum(f.severity == ATTENTION for f in self.findings),
            "findings": [f.to_dict() for f in self.findings],
        }


def _ref(record: AuditRecord) -> str:
    return f"{record.zone}/{record.stream}#{record.seq}"


def _refs(records: Iterable[AuditRecord]) -> tuple[str, ...]:
    return tuple(_ref(r) for r in list(records)[:_SAMPLE])


def day_bounds(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return format_time(start), format_time(start + timedelta(days=1))


def review_day(
    reader: AuditReader,
    day: date,
    policy: ReviewPolicy,
    zones: Sequence[str] | None = None,
) -> ReviewReport:
    """Review `day` (UTC) of the zones' logs against `policy`."""
    chosen = list(zones or reader.zones)
    start, end = day_bounds(day)
    baseline_start = day_bounds(day - timedelta(days=policy.baseline_days))[0]
    report = ReviewReport(day=day.isoformat(), zones=chosen)

    verification = reader.verify(chosen, time_from=start, time_to=end)
    report.verified = verification.ok
    for stream, issue in verification.issues:
        report.findings.append(
            Finding(
                ATTENTION,
                "integrity",
                f"{stream.zone}/{stream.stream}: {issue.kind.value} at record {issue.seq}: "
                f"{issue.message}",
                records=(f"{stream.zone}/{stream.stream}#{issue.seq}",),
            )
        )

    today: list[AuditRecord] = []
    baseline: list[AuditRecord] = []
    for record in reader.all_records(chosen):
        if record.time >= end:
            break
        if record.time >= start:
            today.append(record)
        elif record.time >= baseline_start:
            baseline.append(record)
    report.records = len(today)

    for zone in chosen:
        if not any(r.zone == zone for r in today):
            report.findings.append(
                Finding(ATTENTION, "audit_gap", f"zone {zone} wrote no audit records on {day}")
            )
    _failed_access(today, policy, report)
    _detokenize(today, baseline, policy, report)
    _admin_and_identity(today, report)
    _keys(today, report)
    _lifecycle(today, policy, report)
    _unknown_identities(today, policy, report)
    report.findings.sort(key=lambda f: (f.severity != ATTENTION, f.check, f.message))
    return report


def _failed_access(records: list[AuditRecord], policy: ReviewPolicy, report: ReviewReport) -> None:
    groups: dict[tuple[str, str, str], list[AuditRecord]] = defaultdict(list)
    for r in records:
        if r.outcome == Outcome.FAILURE or r.event_type in INVALID_ACCESS_EVENTS:
            if r.event_type in (EventType.AUDIT_INTEGRITY_ALERT,):
                continue
            groups[(r.event_type, r.actor.id, r.origin.ip or "-")].append(r)
    for (event_type, actor, ip), items in sorted(groups.items()):
        if event_type in _ALWAYS_ATTENTION:
            severity = ATTENTION
        elif event_type in (EventType.AUTHENTICATION_FAILURE, EventType.API_KEY_INVALID):
            severity = ATTENTION if len(items) >= policy.failed_login_threshold else INFO
        else:
            severity = INFO
        report.findings.append(
            Finding(
                severity,
                "failed_access",
                f"{len(items)} x {event_type} by {actor} from {ip}",
                count=len(items),
                records=_refs(items),
            )
        )


def _detokenize(
    today: list[AuditRecord],
    baseline: list[AuditRecord],
    policy: ReviewPolicy,
    report: ReviewReport,
) -> None:
    def counts(records: Iterable[AuditRecord]) -> Counter[str]:
        return Counter(
            r.actor.id
            for r in records
            if r.event_type == EventType.DETOKENIZE and r.outcome == Outcome.SUCCESS
        )

    now, before = counts(today), counts(baseline)
    for caller, count in sorted(now.items()):
        usual = before[caller] / policy.baseline_days
        reasons = []
        if caller not in policy.expected_detokenizers:
            reasons.append("caller is not an expected detokenizer")
        if before[caller] == 0:
            reasons.append(
                f"no detokenize by this caller in the previous {policy.baseline_days} days"
            )
        elif count > max(policy.detokenize_factor * usual, usual + policy.detokenize_floor):
            reasons.append(f"more than {policy.detokenize_factor:g}x the usual level")
        report.findings.append(
            Finding(
                ATTENTION if reasons else INFO,
                "detokenize_volume",
                f"{caller}: {count} detokenize (usual {usual:.1f}/day)"
                + (f": {'; '.join(reasons)}" if reasons else ""),
                count=count,
                records=_refs(
                    r
                    for r in today
                    if r.event_type == EventType.DETOKENIZE and r.actor.id == caller
                ),
            )
        )


def _admin_and_identity(records: list[AuditRecord], report: ReviewReport) -> None:
    groups: dict[tuple[str, str, str], list[AuditRecord]] = defaultdict(list)
    for r in records:
        if r.event_type in ADMIN_EVENTS:
            groups[("admin_action", r.event_type, r.actor.id)].append(r)
        elif r.event_type in IDENTIFICATION_EVENTS:
            groups[("identification_change", r.event_type, r.actor.id)].append(r)
    for (check, event_type, actor), items in sorted(groups.items()):
        targets = sorted({r.target for r in items if r.target})
        report.findings.append(
            Finding(
                ATTENTION if event_type in _ATTENTION_ADMIN else INFO,
                check,
                f"{len(items)} x {event_type} by {actor}"
                + (f" on {', '.join(targets[:5])}" if targets else ""),
                count=len(items),
                records=_refs(items),
            )
        )


def _keys(records: list[AuditRecord], report: ReviewReport) -> None:
    for r in records:
        if r.event_type not in KEY_EVENTS:
            continue
        attention = r.event_type == EventType.KEY_DESTROY or r.outcome == Outcome.FAILURE
        report.findings.append(
            Finding(
                ATTENTION if attention else INFO,
                "key_operation",
                f"{r.event_type} ({r.outcome}) of {r.target or '?'} by {r.actor.id} at {r.time}",
                records=(_ref(r),),
            )
        )


def _lifecycle(records: list[AuditRecord], policy: ReviewPolicy, report: ReviewReport) -> None:
    open_writers: dict[tuple[str, str, int], AuditRecord] = {}
    last_seen: dict[tuple[str, str, int], str] = {}
    last_stop: dict[tuple[str, str], AuditRecord] = {}
    for r in records:
        writer = (r.component, r.origin.host, r.origin.pid)
        last_seen[writer] = r.time
        if r.event_type == EventType.AUDIT_LOG_START:
            for other, started in list(open_writers.items()):
                if other[:2] == writer[:2] and other != writer and last_seen[other] <= r.time:
                    report.findings.append(
                        Finding(
                            ATTENTION,
                            "audit_gap",
                            f"{other[0]} on {other[1]} (pid {other[2]}, started {started.time}) "
                            f"stopped without audit.log_stop; last record {last_seen[other]}",
                            records=(_ref(started),),
                        )
                    )
                    del open_writers[other]
            stopped = last_stop.pop(writer[:2], None)
            if stopped is not None:
                gap = parse_time(r.time) - parse_time(stopped.time)
                report.findings.append(
                    Finding(
                        ATTENTION if gap > policy.max_logging_gap else INFO,
                        "audit_gap",
                        f"audit logging of {writer[0]} on {writer[1]} was off from "
                        f"{stopped.time} to {r.time} ({gap})",
                        records=(_ref(stopped), _ref(r)),
                    )
                )
            open_writers[writer] = r
        elif r.event_type == EventType.AUDIT_LOG_STOP:
            open_writers.pop(writer, None)
            last_stop[writer[:2]] = r
        elif r.event_type in (
            EventType.AUDIT_LOG_PAUSE,
            EventType.AUDIT_LOG_RESUME,
            EventType.AUDIT_LOG_RECOVER,
            EventType.AUDIT_INTEGRITY_ALERT,
        ):
            since = r.details.get("unavailable_since")
            extra = f" (unavailable since {since})" if since else ""
            report.findings.append(
                Finding(
                    ATTENTION,
                    "audit_gap",
                    f"{r.event_type} by {r.component} on {r.origin.host} at {r.time}{extra}",
                    records=(_ref(r),),
                )
            )
    for writer, started in sorted(open_writers.items()):
        report.findings.append(
            Finding(
                INFO,
                "audit_gap",
                f"{writer[0]} on {writer[1]} (pid {writer[2]}) started at {started.time} and had "
                "not stopped by the end of the day",
                records=(_ref(started),),
            )
        )


def _unknown_identities(
    records: list[AuditRecord], policy: ReviewPolicy, report: ReviewReport
) -> None:
    unknown: dict[str, list[AuditRecord]] = defaultdict(list)
    for r in records:
        if r.actor.type in (ActorType.SERVICE, ActorType.SYSTEM):
            if policy.known_services and r.actor.id not in policy.known_services:
                unknown[f"service {r.actor.id}"].append(r)
        elif r.actor.type == ActorType.ANONYMOUS and r.outcome == Outcome.SUCCESS:
            unknown[f"anonymous caller ({r.event_type} succeeded)"].append(r)
        if policy.known_services and r.component not in policy.known_services:
            unknown[f"writer component {r.component}"].append(r)
    for name, items in sorted(unknown.items()):
        report.findings.append(
            Finding(
                ATTENTION,
                "unknown_identity",
                f"{len(items)} record(s) from unknown identity: {name}",
                count=len(items),
                records=_refs(items),
            )
        )
