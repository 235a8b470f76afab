"""noncde.workers (non-CDE): daily reconciliation: fetch the PSP's settlement file, match it to
the ledger, post the PSP's fees, write the report, alert on any mismatch.

Idempotent per day: fees are posted once per balance transaction (the ledger dedups), the
report is rewritten with the same content, and an alert is raised once per distinct set of
findings, so re-running a day changes nothing. The scheduler runs yesterday's reconciliation
after a time of day (UTC) and catches up on recent days that have no report, or whose file
had not arrived yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as daytime

from audit.domain import EventType as AuditEvent
from audit.domain import Outcome
from fincore.logs import get_logger
from noncde.workers.domain.reconciliation import (
    Alert,
    Finding,
    Report,
    SettlementFormatError,
    SettlementLine,
    parse_settlement,
    reconcile,
)
from noncde.workers.ports import AlertSink, AuditTrail, LedgerBook, ReportStore, SettlementSource


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, daytime.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RunResult:
    report: Report
    location: str
    fees_posted: int
    alerted: bool


class Reconciler:
    """Reconciles one day (see the module docstring)."""

    def __init__(
        self,
        source: SettlementSource,
        ledger: LedgerBook,
        reports: ReportStore,
        alerts: AlertSink,
        *,
        audit: AuditTrail | None = None,
    ) -> None:
        self.source = source
        self.ledger = ledger
        self.reports = reports
        self.alerts = alerts
        self.audit = audit
        self.log = get_logger("workers.reconciliation")

    def run(self, day: date, *, actor: str | None = None) -> RunResult:
        """Reconcile `day`. Raises `SettlementUnavailable` when the source cannot be read
        (nothing written; the scheduler tries again) and `SettlementFormatError` for a file
        that is not a settlement file (reported as an alert too)."""
        if actor is not None and self.audit is not None:
            # An operator run is an administrative action (PCI DSS 10.2.1.2); refused
            # if the audit log cannot record it.
            self.audit.record(
                AuditEvent.ADMIN_ACTION,
                actor=actor,
                outcome=Outcome.SUCCESS,
                target=f"settlement:{day.isoformat()}",
                resource="reconciliation",
                details={"action": "reconcile"},
            )
        # Post everything the event store holds, so a capture recorded a moment ago counts.
        self.ledger.catch_up()
        data = self.source.fetch(day)
        source = self.source.describe()
        lines: list[SettlementLine] = []
        problems: list[Finding] = []
        if data is not None:
            try:
                lines, problems = parse_settlement(data)
            except SettlementFormatError as exc:
                self._alert_unreadable(day, str(exc))
                raise
        references = sorted({(line.type, line.psp_reference) for line in lines})
        by_reference = self.ledger.items_for(references)
        start, end = day_bounds(day)
        of_day = self.ledger.items_between(start, end)
        report = reconcile(
            day,
            source,
            lines,
            problems,
            by_reference,
            of_day,
            self._adjacent_references(day),
        )
        report.file_found = data is not None
        fees_posted = self.ledger.record_fees(day, report.fees) if report.fees else 0
        location = self.reports.write(report)
        alerted = False
        if not report.clean:
            alerted = self.alerts.raise_alert(
                Alert(
                    day=day.isoformat(),
                    title=f"Settlement of {day.isoformat()} does not reconcile: "
                    f"{len(report.findings)} finding(s)",
                    counts={k: v for k, v in report.counts().items() if v},
                    report_path=location,
                    fingerprint=report.fingerprint(),
                )
            )
        self.log.info(
            "reconciled",
            day=day.isoformat(),
            lines=report.lines,
            matched=report.matched,
            findings=len(report.findings),
            fees_posted=fees_posted,
            alerted=alerted,
            file_found=report.file_found,
        )
        return RunResult(report, location, fees_posted, alerted)

    def _adjacent_references(self, day: date) -> frozenset[str]:
        """References in the previous and next days' files, where those exist: a capture at
        23:59:59.9 in our clock may settle on the PSP's next day."""
        found: set[str] = set()
        for other in (day - timedelta(days=1), day + timedelta(days=1)):
            try:
                data = self.source.fetch(other)
                if data is None:
                    continue
                lines, _ = parse_settlement(data)
            except Exception as exc:  # noqa: BLE001 - a neighbour is a courtesy, not required
                self.log.info(
                    "adjacent settlement file unreadable",
                    day=other.isoformat(),
                    error=type(exc).__name__,
                )
                continue
            found.update(line.psp_reference for line in lines)
        return frozenset(found)

    def _alert_unreadable(self, day: date, why: str) -> None:
        self.alerts.raise_alert(
            Alert(
                day=day.isoformat(),
                title=f"Settlement file of {day.isoformat()} is unreadable: {why}",
                counts={"unreadable_file": 1},
                report_path="",
                fingerprint=f"unreadable:{day.isoformat()}:{why}",
            )
        )


class ReconcileScheduler:
    """Runs the daily reconciliation: after `run_at` (UTC) each day, every day of the last
    `catch_up_days` (yesterday included) that has no report yet, or whose file had not arrived,
    is reconciled (a day that had no file is tried again only while the ledger shows payments
    for it). Failures are logged and retried at the next check."""

    def __init__(
        self,
        reconciler: Reconciler,
        reports: ReportStore,
        *,
        run_at: daytime = daytime(2, 0),
        catch_up_days: int = 7,
        check_every_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reconciler = reconciler
        self.reports = reports
        self.run_at = run_at
        self.catch_up_days = catch_up_days
        self.check_every_s = check_every_s
        self.clock = clock
        self.log = get_logger("workers.reconcile_scheduler")
        self.last_run: dict[str, object] = {}

    def due(self) -> list[date]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        today = now.date()
        newest = today - timedelta(days=1)
        if now.time() < self.run_at:
            newest = today - timedelta(days=2)
        days = []
        for offset in range(self.catch_up_days - 1, -1, -1):
            day = newest - timedelta(days=offset)
            existing = self.reports.read(day)
            # A day whose file had not arrived while the ledger had payments is tried again.
            if existing is None or not (existing.get("file_found") or existing.get("clean")):
                days.append(day)
        return days

    def tick(self) -> list[date]:
        done = []
        for day in self.due():
            try:
                self.reconciler.run(day)
                done.append(day)
            except Exception as exc:  # noqa: BLE001 - retried at the next check
                self.log.warning(
                    "reconciliation failed",
                    day=day.isoformat(),
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )
        if done:
            self.last_run = {"days": [d.isoformat() for d in done], "at": self.clock()}
        return done

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(self.check_every_s)
