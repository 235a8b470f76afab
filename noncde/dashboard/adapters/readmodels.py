"""noncde.dashboard adapters, read models: read-only queries over the other components' stores.

- PaymentDB (noncde.readmodels) for the payments search and the daily charts; a charge's page
  folds its stream from the platform's event store, so it is current even while the
  projection lags.
- LedgerDB (noncde.readmodels) for balances.
- The platform's job queue for dead letters and their replay; projection positions against
  the event store's head for the lag.
- WebhookDB and the reconciliation reports of noncde.workers.

Every query is read-only except the two commands the owning components expose for operators:
`JobQueue.replay` and `DeliveryStore.redeliver` (the same calls as the workers' CLI).
Card data never appears: snapshots hold tokens and display data, and the views read only
brand, last four and expiry from them.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from noncde.api.domain import Charge, ChargeStatus, EventLike, charge_stream
from noncde.dashboard.domain.views import ChargeRow, PaymentQuery, charge_row
from noncde.dashboard.ports import (
    BalanceRow,
    DayStats,
    DeadJob,
    DeliveryRow,
    ProjectionLag,
    ReconciliationMismatch,
    ReconciliationReport,
)
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.platform.ports import EventReader, JobQueue
from noncde.readmodels.adapters.sql.schema import pdb_charges
from noncde.readmodels.ports import LedgerQueries

# Rows read per search before the last-4 check (a charge's last 4 lives in its snapshot).
_SCAN_LIMIT = 5000
_APPROVED = {ChargeStatus.SUCCEEDED.value, ChargeStatus.REQUIRES_CAPTURE.value}


def _day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


class PaymentDbReads:
    """`PaymentReads` over PaymentDB and the event store."""

    def __init__(self, db: SqlDatabase, events: EventReader) -> None:
        self.db = db
        self.events_store = events

    def search(self, query: PaymentQuery) -> list[ChargeRow]:
        table = pdb_charges
        sql = select(table.c.state).order_by(table.c.created.desc(), table.c.seq.desc())
        if query.charge_id:
            sql = sql.where(table.c.id == query.charge_id)
        if query.merchant_id:
            sql = sql.where(table.c.merchant_id == query.merchant_id)
        if query.status:
            sql = sql.where(table.c.status == query.status)
        if query.created_from:
            sql = sql.where(table.c.created >= _day_start(query.created_from))
        if query.created_to:
            sql = sql.where(table.c.created < _day_start(query.created_to + timedelta(days=1)))
        if query.amount is not None:
            sql = sql.where(table.c.amount == query.amount)
        if query.last4:
            # Narrow in the database by the snapshot's text, then check the parsed value.
            sql = sql.where(table.c.state.contains(f'"last4":"{query.last4}"', autoescape=True))
        sql = sql.limit(query.limit if not query.last4 else _SCAN_LIMIT)
        found: list[ChargeRow] = []
        with self.db.read() as conn:
            for (state,) in conn.execute(sql):
                charge = Charge.from_state(json.loads(state))
                card = charge.payment_method.card
                if query.last4 and (card is None or card.last4 != query.last4):
                    continue
                found.append(charge_row(charge))
                if len(found) >= query.limit:
                    break
        return found

    def charge(self, charge_id: str) -> Charge | None:
        events = self.events(charge_id)
        return Charge.fold(events) if events else None

    def events(self, charge_id: str) -> list[EventLike]:
        if not charge_id.startswith("ch_") or len(charge_id) > 100:
            return []
        return list(self.events_store.read_stream(charge_stream(charge_id)))

    def daily_stats(self, start: date, end: date) -> list[DayStats]:
        table = pdb_charges
        sql = select(table.c.created, table.c.currency, table.c.status, table.c.amount_captured)
        sql = sql.where(
            table.c.created >= _day_start(start),
            table.c.created < _day_start(end + timedelta(days=1)),
        )
        totals: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        with self.db.read() as conn:
            for created, currency, status, captured in conn.execute(sql):
                day = datetime.fromtimestamp(int(created), tz=UTC).date()
                line = totals[(day, currency)]
                line[0] += 1
                line[1] += status in _APPROVED
                line[2] += status == ChargeStatus.FAILED.value
                line[3] += int(captured or 0)
        return [
            DayStats(day, currency, *values) for (day, currency), values in sorted(totals.items())
        ]


class LedgerFinanceReads:
    """`FinanceReads`: LedgerDB balances, PaymentDB figures, the reconciliation reports."""

    def __init__(
        self,
        ledger: LedgerQueries,
        payments: PaymentDbReads,
        reports: Callable[[], Sequence[Mapping[str, Any]]],
    ) -> None:
        self.ledger = ledger
        self.payments = payments
        self.reports = reports

    def balances(self) -> list[BalanceRow]:
        return [
            BalanceRow(row.account, row.currency, row.debits, row.credits)
            for row in self.ledger.account_balances()
        ]

    def daily_stats(self, start: date, end: date) -> list[DayStats]:
        return self.payments.daily_stats(start, end)

    def reconciliation_reports(self, limit: int = 30) -> list[ReconciliationReport]:
        return [report_view(raw) for raw in list(self.reports())[:limit]]


def _money(amount: Any, currency: Any) -> str | None:
    if amount is None:
        return None
    return f"{amount} {str(currency or '').upper()}".strip()


def report_view(raw: Mapping[str, Any]) -> ReconciliationReport:
    """A stored reconciliation report (noncde.workers' `Report.to_dict()`) as the page shows it."""
    findings = raw.get("findings") or []
    status = "clean" if raw.get("clean") else "mismatches"
    if not raw.get("file_found", True):
        status = "no settlement file" if raw.get("clean") else "no settlement file, mismatches"
    return ReconciliationReport(
        day=date.fromisoformat(str(raw["day"])),
        status=status,
        matched=int(raw.get("matched") or 0),
        mismatches=tuple(
            ReconciliationMismatch(
                kind=str(f.get("kind")),
                reference=f.get("psp_reference"),
                expected=_money(f.get("settlement_amount"), f.get("settlement_currency")),
                actual=_money(f.get("ledger_amount"), f.get("ledger_currency")),
                resolution="open",
                details={"detail": str(f.get("detail") or "")[:300]},
            )
            for f in findings
        ),
    )


class PlatformOperations:
    """`OperationsReads`: the platform's dead letters and projection positions."""

    def __init__(
        self,
        jobs: JobQueue,
        events: EventReader,
        positions: Mapping[str, Callable[[], int]],
    ) -> None:
        self.jobs = jobs
        self.events = events
        self.positions = dict(positions)

    def dead_jobs(self, limit: int = 200) -> list[DeadJob]:
        found = []
        for letter in self.jobs.dead_letters(limit):
            payload = letter.payload or {}
            found.append(
                DeadJob(
                    job_id=letter.job_id,
                    type=letter.type,
                    attempts=letter.attempts,
                    reason=(letter.last_error or "")[:500] or None,
                    dead_at=letter.dead_at,
                    charge_id=_text(payload.get("charge_id")),
                    merchant_id=_text(payload.get("merchant_id")),
                )
            )
        return found

    def replay(self, job_ids: Sequence[str]) -> int:
        return self.jobs.replay(list(job_ids))

    def projection_lags(self) -> list[ProjectionLag]:
        head = self.events.head_position()
        return [ProjectionLag(name, read(), head) for name, read in self.positions.items()]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class WorkersWebhookLog:
    """`WebhookLog` over noncde.workers' delivery store (WebhookDB)."""

    def __init__(self, store: Any, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def deliveries(self, endpoint_ids: Sequence[str], limit: int = 50) -> list[DeliveryRow]:
        rows = []
        for endpoint in endpoint_ids:
            rows.extend(self.store.deliveries(endpoint_id=endpoint, limit=limit))
        rows.sort(key=lambda d: d.id, reverse=True)
        return [
            DeliveryRow(
                id=int(d.id),
                event_id=d.event_id,
                event_type=d.event_type,
                endpoint_id=d.endpoint_id,
                status=str(d.status),
                attempts=int(d.attempts),
                series=int(d.series),
                last_status=d.last_status,
                last_error=(d.last_error or "")[:200] or None,
                next_attempt_at=(
                    datetime.fromtimestamp(d.next_attempt_at, tz=UTC)
                    if d.next_attempt_at and str(d.status) == "pending"
                    else None
                ),
            )
            for d in rows[:limit]
        ]

    def redeliver(self, event_id: str, endpoint_id: str) -> int:
        return int(self.store.redeliver(event_id, endpoint_id, self.clock()))

    def close(self) -> None:
        self.store.close()
