"""noncde.dashboard (non-CDE): what the finance page shows, computed from LedgerDB balances and
the daily charge figures: balances per merchant and currency, the trial balance, chart series,
and the reconciliation reports with the resolution finance records per mismatch.

Ledger accounts are named `merchant:<id>:<kind>` (balance, pending, refunds, fees) and
`psp:<kind>` (noncde-events.md). A balance shown is credits minus debits (the merchant's side);
the trial balance holds when, per currency, debits equal credits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from audit.domain import EventType, Outcome
from noncde.dashboard.domain import NotFound, StaffUser
from noncde.dashboard.domain.reconciliation import Resolution
from noncde.dashboard.ports import (
    AuditTrail,
    BalanceRow,
    Clock,
    DayStats,
    FinanceReads,
    ReconciliationReport,
    StaffStore,
)
from noncde.dashboard.service.context import Origin, staff_actor

MERCHANT_KINDS = ("balance", "pending", "refunds", "fees")


@dataclass
class MerchantLine:
    merchant_id: str
    currency: str
    amounts: dict[str, int] = field(default_factory=dict)

    @property
    def net(self) -> int:
        return sum(self.amounts.values())


@dataclass(frozen=True, slots=True)
class TrialLine:
    currency: str
    debits: int
    credits: int

    @property
    def balanced(self) -> bool:
        return self.debits == self.credits


@dataclass(frozen=True, slots=True)
class Summary:
    merchants: list[MerchantLine]
    other: list[BalanceRow]
    trial: list[TrialLine]


def summarize(rows: Sequence[BalanceRow]) -> Summary:
    merchants: dict[tuple[str, str], MerchantLine] = {}
    other: list[BalanceRow] = []
    debits: dict[str, int] = defaultdict(int)
    credits: dict[str, int] = defaultdict(int)
    for row in rows:
        debits[row.currency] += row.debits
        credits[row.currency] += row.credits
        parts = row.account.split(":")
        if len(parts) == 3 and parts[0] == "merchant":
            line = merchants.setdefault(
                (parts[1], row.currency), MerchantLine(parts[1], row.currency)
            )
            line.amounts[parts[2]] = line.amounts.get(parts[2], 0) + row.balance
        else:
            other.append(row)
    trial = [TrialLine(c, debits[c], credits[c]) for c in sorted(set(debits) | set(credits))]
    return Summary(
        merchants=sorted(merchants.values(), key=lambda m: (m.merchant_id, m.currency)),
        other=other,
        trial=trial,
    )


@dataclass(frozen=True, slots=True)
class Series:
    """One currency's days from `start` to `end`, with gaps filled as empty days."""

    currency: str
    days: list[DayStats]


def series(stats: Sequence[DayStats], start: date, end: date, *, top: int = 3) -> list[Series]:
    """Per currency (the `top` busiest), one entry per day of the range."""
    by_currency: dict[str, dict[date, DayStats]] = defaultdict(dict)
    for day in stats:
        by_currency[day.currency][day.day] = day
    busiest = sorted(by_currency, key=lambda c: -sum(d.count for d in by_currency[c].values()))
    result = []
    for currency in busiest[:top]:
        filled = []
        current = start
        while current <= end:
            filled.append(
                by_currency[currency].get(current) or DayStats(current, currency, 0, 0, 0, 0)
            )
            current += timedelta(days=1)
        result.append(Series(currency, filled))
    return result


class ReconciliationDesk:
    """Reconciliation reports with the resolution finance recorded for each mismatch, and
    the recording itself (audited: PCI DSS 10.2.1.2)."""

    def __init__(
        self, finance: FinanceReads, store: StaffStore, audit: AuditTrail, clock: Clock
    ) -> None:
        self.finance = finance
        self.store = store
        self.audit = audit
        self.clock = clock

    def reports(self, limit: int = 30) -> list[ReconciliationReport]:
        shown = []
        for report in self.finance.reconciliation_reports(limit):
            recorded = self.store.resolutions(report.day)
            mismatches = tuple(
                replace(
                    m,
                    resolution=str(recorded[m.key].status),
                    resolved_by=recorded[m.key].by,
                    note=recorded[m.key].note or None,
                )
                if m.key in recorded
                else m
                for m in report.mismatches
            )
            shown.append(replace(report, mismatches=mismatches))
        return shown

    def resolve(
        self,
        user: StaffUser,
        day: date,
        key: str,
        status: str,
        note: str,
        origin: Origin,
    ) -> Resolution:
        report = next((r for r in self.finance.reconciliation_reports(366) if r.day == day), None)
        finding = next((m for m in report.mismatches if m.key == key), None) if report else None
        if finding is None:
            raise NotFound("No such mismatch in that day's reconciliation report.")
        resolution = Resolution.new(day, key, status, note, user.username, self.clock())
        self.store.set_resolution(resolution)
        self.audit.record(
            EventType.ADMIN_ACTION,
            actor=staff_actor(user.username),
            outcome=Outcome.SUCCESS,
            target=finding.reference,
            resource="dashboard.reconciliation",
            details={
                "action": "reconciliation_resolution",
                "day": day.isoformat(),
                "mismatch": finding.kind,
                "status": str(resolution.status),
                "note": resolution.note,
            },
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )
        return resolution
