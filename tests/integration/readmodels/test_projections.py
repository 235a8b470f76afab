"""PaymentDB and LedgerDB against real databases: what they hold after a history of events,
rebuilds from zero that come out identical, batches that are all-or-nothing, concurrent
projectors, an immutable and balanced ledger, balances at a date, reversals, and queries.
One contract, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.exc import DBAPIError

from fincore.pan_sweep import Sweeper
from noncde.api.domain import (
    CardDisplay,
    ChargeCaptured,
    ChargeRequested,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    RefundRequested,
    RefundSucceeded,
    charge_stream,
    rfc3339,
)
from noncde.api.domain.ids import new_id
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import NewEvent
from noncde.platform.ports import Platform
from noncde.readmodels.adapters.sql.ledger import SqlLedger
from noncde.readmodels.adapters.sql.payments import SqlPaymentDb, UnknownCursor
from noncde.readmodels.bootstrap import open_ledger, open_payments
from noncde.readmodels.domain.ledger import (
    FeeAssessed,
    LedgerEventType,
    UnknownCharge,
    settlement_stream,
)
from noncde.readmodels.service.ledger import AlreadyReversed, LedgerService
from noncde.readmodels.service.projector import Projector, rebuild
from tests.integration.readmodels import scenario


class Page:
    def __init__(
        self,
        limit: int = 10,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: Any = None,
    ) -> None:
        self.limit = limit
        self.starting_after = starting_after
        self.ending_before = ending_before
        self.created = created


class Created:
    def __init__(self, **bounds: int) -> None:
        self.gt = bounds.get("gt")
        self.gte = bounds.get("gte")
        self.lt = bounds.get("lt")
        self.lte = bounds.get("lte")


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta).total_seconds()


class ReadModelsContract:
    """Every test runs once per backend (subclasses provide `fresh_url`)."""

    @pytest.fixture
    def fresh_url(self) -> Callable[[str], str]:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(datetime(2026, 11, 27, 12, 0, tzinfo=UTC))

    @pytest.fixture
    def platform(self, fresh_url: Callable[[str], str], clock: FakeClock) -> Iterator[Platform]:
        built = build_platform(PlatformConfig.for_database(fresh_url("platform")), clock=clock)
        yield built
        built.close()

    @pytest.fixture
    def payments(self, fresh_url: Callable[[str], str]) -> Iterator[SqlPaymentDb]:
        db = open_payments(fresh_url("payments"))
        yield db
        db.close()

    @pytest.fixture
    def ledger(self, fresh_url: Callable[[str], str]) -> Iterator[SqlLedger]:
        db = open_ledger(fresh_url("ledger"))
        yield db
        db.close()

    @pytest.fixture
    def written(self, platform: Platform) -> scenario.Expected:
        return scenario.write(platform.events, charges=90)

    # ------------------------------------------------------------ PaymentDB

    def test_payments_hold_every_charge_refund_and_session(
        self, platform: Platform, payments: SqlPaymentDb, written: scenario.Expected
    ) -> None:
        """After projecting, every charge, refund and session has its final status, and the
        per-merchant counts add up to what was written."""
        Projector(platform.events, payments, batch_size=37).catch_up()
        states = {s["id"]: s for s in payments.charge_states()}
        assert {k: states[k]["status"] for k in written.charges} == written.charges
        for merchant in scenario.MERCHANTS:
            counts = payments.counts(merchant)
            mine = [c for c, m in written.merchant_of.items() if m == merchant]
            assert sum(counts["charges"].values()) == len(mine)
            for status in set(written.charges.values()):
                expected = sum(1 for c in mine if written.charges[c] == status)
                assert counts["charges"].get(status, 0) == expected
        refunds = {
            r.id: str(r.status)
            for m in scenario.MERCHANTS
            for r in payments.list_refunds(m, Page(limit=100)).data
        }
        assert refunds == written.refunds
        sessions = {
            s.id: str(s.status)
            for m in scenario.MERCHANTS
            for s in payments.list_sessions(m, Page(limit=100)).data
        }
        assert sessions == written.sessions
        assert payments.position() == platform.events.head_position()

    def test_payment_rebuild_is_identical_whatever_the_batch_size(
        self,
        platform: Platform,
        payments: SqlPaymentDb,
        written: scenario.Expected,
        fresh_url: Callable[[str], str],
    ) -> None:
        """A rebuild from zero into a fresh database, in other batch sizes, gives the same
        content hash for every table."""
        Projector(platform.events, payments, batch_size=1).catch_up()
        again = open_payments(fresh_url("payments2"))
        try:
            result = rebuild(platform.events, again, batch_size=1000)
            assert result.digest == payments.digest()
            assert result.position == payments.position()
        finally:
            again.close()

    def test_redelivered_batches_change_nothing(
        self, platform: Platform, payments: SqlPaymentDb, written: scenario.Expected
    ) -> None:
        """Applying events at or below the stored position again is a no-op."""
        events = platform.events.read_all(1, 10_000)
        assert payments.apply(events[:150]) == 150
        before = payments.digest()
        assert payments.apply(events[:150]) == 0
        assert payments.apply(events[100:120]) == 0
        assert payments.digest() == before
        assert payments.apply(events[100:]) == len(events) - 150

    def test_racing_projectors_produce_the_same_contents(
        self,
        platform: Platform,
        payments: SqlPaymentDb,
        written: scenario.Expected,
        fresh_url: Callable[[str], str],
    ) -> None:
        """Four projector threads on one PaymentDB end with the contents of a single one."""
        threads = [
            threading.Thread(target=Projector(platform.events, payments, batch_size=size).catch_up)
            for size in (7, 13, 50, 3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        single = open_payments(fresh_url("payments_single"))
        try:
            assert rebuild(platform.events, single).digest == payments.digest()
        finally:
            single.close()

    def test_lists_page_filter_and_stay_within_the_merchant(
        self, platform: Platform, payments: SqlPaymentDb, written: scenario.Expected
    ) -> None:
        """Cursor pagination (newest first) walks every charge once; filters and cursors never
        reach another merchant's objects."""
        Projector(platform.events, payments).catch_up()
        merchant, other = scenario.MERCHANTS[0], scenario.MERCHANTS[1]
        seen: list[str] = []
        page = payments.list_charges(merchant, Page(limit=7))
        while True:
            seen.extend(c.id for c in page.data)
            if not page.has_more:
                break
            page = payments.list_charges(merchant, Page(limit=7, starting_after=seen[-1]))
        mine = {c for c, m in written.merchant_of.items() if m == merchant}
        assert set(seen) == mine and len(seen) == len(mine)
        created = [c.created for c in payments.list_charges(merchant, Page(limit=100)).data]
        assert len(created) == len(mine)
        back = payments.list_charges(merchant, Page(limit=3, ending_before=seen[5]))
        assert [c.id for c in back.data] == seen[2:5]
        succeeded = payments.list_charges(merchant, Page(limit=100), status="succeeded").data
        assert {c.id for c in succeeded} == {c for c in mine if written.charges[c] == "succeeded"}
        with pytest.raises(UnknownCursor):
            payments.list_charges(other, Page(starting_after=seen[0]))
        events = payments.list_events(merchant, Page(limit=100), types=["refund.*"]).data
        assert events and all(e["type"].startswith("refund.") for e in events)
        first = events[0]
        assert payments.get_event(merchant, first["id"]) == first
        assert payments.get_event(other, first["id"]) is None
        refund_id = first["data"]["object"]["refund_id"]
        assert payments.refund_owner(refund_id) == (
            first["data"]["object"]["charge_id"],
            merchant,
        )
        cutoff = int(datetime(2026, 11, 10, tzinfo=UTC).timestamp())
        early = payments.list_charges(merchant, Page(limit=100, created=Created(lt=cutoff))).data
        assert early and all(int(c.created.timestamp()) < cutoff for c in early)

    # ------------------------------------------------------------ LedgerDB

    def test_ledger_balances_per_currency_and_per_merchant(
        self, platform: Platform, ledger: SqlLedger, written: scenario.Expected
    ) -> None:
        """Every currency balances; each merchant's captured, refunded and fees equal what the
        events say."""
        projector = Projector(platform.events, ledger, batch_size=41)
        projector.catch_up()
        service = LedgerService(platform.events, ledger, projector)
        trial = service.trial_balance()
        assert trial.balanced and set(trial.totals()) == {"usd", "eur", "gbp"}
        assert ledger.unbalanced_transactions() == []
        for merchant in scenario.MERCHANTS:
            balances = {b.currency: b for b in service.merchant_balance(merchant)}
            for currency, amount in written.captured.get(merchant, {}).items():
                assert balances[currency].captured == amount
            for currency, amount in written.refunded.get(merchant, {}).items():
                assert balances[currency].refunded == amount
            for currency, amount in written.fees.get(merchant, {}).items():
                assert balances[currency].fees == amount

    def test_ledger_rebuild_is_identical_and_replays_post_nothing_twice(
        self,
        platform: Platform,
        ledger: SqlLedger,
        written: scenario.Expected,
        fresh_url: Callable[[str], str],
    ) -> None:
        """A rebuild from zero gives the same journal; replaying every event again after losing
        the position posts nothing (each posting names its source event, once)."""
        Projector(platform.events, ledger, batch_size=1).catch_up()
        digest = ledger.digest()
        again = open_ledger(fresh_url("ledger2"))
        try:
            assert rebuild(platform.events, again, batch_size=500).digest == digest
        finally:
            again.close()
        with ledger.db.write() as conn:  # the position row is not journal: it may move
            conn.execute(sqlalchemy.text("UPDATE ledger_position SET position = 0"))
        Projector(platform.events, ledger).catch_up()
        after = ledger.digest()
        assert after["ledger_transactions"] == digest["ledger_transactions"]
        assert after["ledger_entries"] == digest["ledger_entries"]

    def test_ledger_refuses_update_and_delete(
        self, platform: Platform, ledger: SqlLedger, written: scenario.Expected
    ) -> None:
        """The database itself refuses to change or remove journal rows."""
        Projector(platform.events, ledger).catch_up()
        statements = [
            "UPDATE ledger_entries SET amount = amount + 1",
            "DELETE FROM ledger_entries",
            "UPDATE ledger_transactions SET memo = 'x'",
            "DELETE FROM ledger_transactions",
            "DELETE FROM ledger_charges",
        ]
        if ledger.db.is_postgres:
            statements.append("TRUNCATE ledger_entries")
        for statement in statements:
            with pytest.raises(DBAPIError, match="immutable"), ledger.db.write() as conn:
                conn.execute(sqlalchemy.text(statement))
        assert (
            LedgerService(platform.events, ledger, Projector(platform.events, ledger))
            .trial_balance()
            .balanced
        )

    def test_a_failing_batch_writes_nothing(
        self, platform: Platform, ledger: SqlLedger, payments: SqlPaymentDb
    ) -> None:
        """A batch that cannot be posted (a capture of a charge never requested) leaves the
        rows and the position as they were: rows and position move together."""
        merchant = scenario.MERCHANTS[0]
        good = _charge(platform, merchant, 1000, "usd")
        platform.events.append(
            charge_stream("ch_OrphanOrphanOrphan1"),
            [
                NewEvent(
                    "charge.captured",
                    ChargeCaptured("ch_OrphanOrphanOrphan1", 5, 5, "pi_x").to_data(),
                    merchant_id=merchant,
                    id=new_id("evt"),
                )
            ],
            expected_version=0,
        )
        events = platform.events.read_all(1, 100)
        with pytest.raises(UnknownCharge):
            ledger.apply(events)
        assert ledger.position() == 0
        assert ledger.transaction_count() == 0
        assert ledger.apply(events[:-1]) == len(events) - 1
        assert ledger.transaction_count() == 1
        assert payments.apply(events) == len(events)  # a read model just skips the orphan
        assert {s["id"] for s in payments.charge_states()} == {good}

    def test_balance_at_a_date_and_reversals(
        self, platform: Platform, ledger: SqlLedger, clock: FakeClock
    ) -> None:
        """Balances at the end of each day count only what was posted by then; a reversal
        undoes one transaction once, and the ledger stays balanced."""
        merchant = scenario.MERCHANTS[2]
        charge_id = _charge(platform, merchant, 10_000, "eur", pi="pi_DayOneDayOne")
        clock.advance(days=1)
        refund_id = new_id("re")
        _append(
            platform,
            charge_id,
            merchant,
            [
                RefundRequested(refund_id, charge_id, 2_500),
                RefundSucceeded(refund_id, charge_id, 2_500, "pre_DayTwo"),
            ],
        )
        clock.advance(days=1)
        platform.events.append(
            settlement_stream(date(2026, 11, 29)),
            [
                NewEvent(
                    LedgerEventType.FEE_ASSESSED,
                    FeeAssessed(
                        "2026-11-29",
                        "txn_DayThree",
                        "pi_DayOneDayOne",
                        merchant,
                        320,
                        "eur",
                        charge_id,
                    ).to_data(),
                    id=new_id("evt"),
                )
            ],
            expected_version=0,
        )
        projector = Projector(platform.events, ledger)
        service = LedgerService(platform.events, ledger, projector)
        service.catch_up()

        def net(day: date) -> tuple[int, int, int, int]:
            (balance,) = service.merchant_balance(merchant, day)
            return balance.captured, balance.refunded, balance.fees, balance.net

        assert service.merchant_balance(merchant, date(2026, 11, 26)) == []
        assert net(date(2026, 11, 27)) == (10_000, 0, 0, 10_000)
        assert net(date(2026, 11, 28)) == (10_000, 2_500, 0, 7_500)
        assert net(date(2026, 11, 29)) == (10_000, 2_500, 320, 7_180)
        fee = ledger.transactions_for_references(["pi_DayOneDayOne"])[-1]
        assert fee.kind == "fee"
        clock.advance(days=1)
        service.request_reversal(fee.seq, reason="fee charged in error", actor="ops")
        with pytest.raises(AlreadyReversed):
            service.request_reversal(fee.seq, reason="again", actor="ops")
        service.catch_up()
        assert net(date(2026, 11, 29)) == (10_000, 2_500, 320, 7_180)  # history unchanged
        assert net(date(2026, 11, 30)) == (10_000, 2_500, 0, 7_500)
        reversal = ledger.transactions_for_references(["pi_DayOneDayOne"])[-1]
        assert reversal.reverses == fee.seq and reversal.kind == "reversal"
        assert sorted(e.amount for e in reversal.entries) == sorted(-e.amount for e in fee.entries)
        trial = service.trial_balance(date(2026, 11, 30))
        assert trial.balanced and trial.transactions == 4

    def test_no_card_data_in_the_databases(
        self,
        platform: Platform,
        payments: SqlPaymentDb,
        ledger: SqlLedger,
        written: scenario.Expected,
        fresh_url: Callable[[str], str],
    ) -> None:
        """The PAN sweep finds nothing in PaymentDB or LedgerDB."""
        Projector(platform.events, payments).catch_up()
        Projector(platform.events, ledger).catch_up()
        sweeper = Sweeper()
        for db in (payments.db, ledger.db):
            sweeper.target(
                db.engine.url.render_as_string(hide_password=False)
                .replace("+psycopg", "")
                .replace("+pysqlite", "")
            )
        assert sweeper.result.errors == []
        assert sweeper.findings == []
        assert sweeper.result.stats["rows"] > 100


def _append(platform: Platform, charge_id: str, merchant: str, events: list[Any]) -> None:
    stream = charge_stream(charge_id)
    platform.events.append(
        stream,
        [NewEvent(e.type, e.to_data(), merchant_id=merchant, id=new_id("evt")) for e in events],
        expected_version=platform.events.stream_version(stream),
    )


def _charge(platform: Platform, merchant: str, amount: int, currency: str, pi: str = "") -> str:
    charge_id = new_id("ch")
    method = PaymentMethodRef(
        PaymentMethodType.PSP_TOKEN, new_id("pm"), CardDisplay("visa", "4242", 1, 2030)
    )
    _append(
        platform,
        charge_id,
        merchant,
        [
            ChargeRequested(
                charge_id, amount, currency, True, method, Flow.SDK, rfc3339(datetime.now(UTC))
            ),
            ChargeCaptured(charge_id, amount, amount, pi or new_id("pi")),
        ],
    )
    return charge_id


class TestSqliteReadModels(ReadModelsContract):
    @pytest.fixture
    def fresh_url(self, tmp_path: Path) -> Callable[[str], str]:
        return lambda name: f"sqlite:///{tmp_path / name}.db"


@pytest.mark.postgres
class TestPostgresReadModels(ReadModelsContract):
    @pytest.fixture
    def fresh_url(self, fresh_postgres_url: Callable[[], str]) -> Callable[[str], str]:
        return lambda _name: fresh_postgres_url()
