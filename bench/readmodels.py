"""Bench: the read models on SQLite and PostgreSQL: PaymentDB projection rebuild (events/s) and
LedgerDB posting (postings/s), each beside a same-run baseline of plain batched INSERTs (1000
rows per transaction, executemany) of as many rows into a fresh table on the same database.

The event store is filled once per backend with charge histories (requested, risk verdict,
captured, and for half of them a partial refund requested and succeeded: ~4 events and 1.5
postings per charge). Each round rebuilds into a fresh database; figures are the median of
the rounds, taken alternately with their baseline so both see the same machine.

    python -m bench.readmodels [--quick] [--json]

PostgreSQL: throw-away databases on FINCORE_BENCH_PG (default
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards; skipped if unreachable.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, create_engine

from bench.common import Report
from noncde.api.domain import (
    CardDisplay,
    ChargeCaptured,
    ChargeRequested,
    ChargeRiskAssessed,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    RefundRequested,
    RefundSucceeded,
    RiskDecision,
    charge_stream,
    rfc3339,
)
from noncde.api.domain.ids import new_id
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import NewEvent
from noncde.platform.ports import Platform
from noncde.readmodels.bootstrap import open_ledger, open_payments
from noncde.readmodels.service.projector import Projector

_md = MetaData()
_plain = Table(
    "bench_plain_insert",
    _md,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("payload", String(2000), nullable=False),
)
MERCHANTS = ("mer_BenchAlphaAlpha", "mer_BenchBravoBravo", "mer_BenchCharlieC")


def fill(platform: Platform, charges: int) -> tuple[int, int]:
    """Write `charges` charge histories; returns (events, expected postings)."""
    created = rfc3339(datetime.now(UTC))
    postings = 0
    for n in range(charges):
        merchant = MERCHANTS[n % 3]
        charge_id, amount = new_id("ch"), 1000 + n % 5000
        method = PaymentMethodRef(
            PaymentMethodType.VAULT_TOKEN,
            new_id("tok"),
            CardDisplay("visa", "4242", 12, 2030, fingerprint=new_id("fp")[3:], country="US"),
        )
        events: list = [
            ChargeRequested(
                charge_id,
                amount,
                "usd",
                True,
                method,
                Flow.S2S,
                created,
                description="bench",
                metadata={"order": str(n)},
            ),
            ChargeRiskAssessed(charge_id, RiskDecision.ALLOW, [], 1, ["r1"]),
            ChargeCaptured(charge_id, amount, amount, new_id("pi")),
        ]
        postings += 1
        if n % 2:
            refund_id = new_id("re")
            events += [
                RefundRequested(refund_id, charge_id, 100),
                RefundSucceeded(refund_id, charge_id, 100, new_id("pre")),
            ]
            postings += 1
        platform.events.append(
            charge_stream(charge_id),
            [NewEvent(e.type, e.to_data(), merchant_id=merchant, id=new_id("evt")) for e in events],
            expected_version=0,
        )
    return platform.events.head_position(), postings


def plain_inserts(url: str, rows: int, payload: str) -> float:
    """Rows/s of INSERTs in transactions of 1000 rows into a fresh table (SQLAlchemy Core)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            _md.drop_all(conn)
            _md.create_all(conn)
        start = time.perf_counter()
        done = 0
        while done < rows:
            batch = [
                {"id": done + i + 1, "payload": payload} for i in range(min(1000, rows - done))
            ]
            with engine.begin() as conn:
                conn.execute(_plain.insert(), batch)
            done += len(batch)
        return rows / (time.perf_counter() - start)
    finally:
        engine.dispose()


@contextmanager
def sqlite_urls() -> Iterator[Callable[[str], str]]:
    with tempfile.TemporaryDirectory(prefix="fincore-bench-rm-") as folder:
        counter = iter(range(1_000_000))
        yield lambda name: f"sqlite:///{Path(folder) / f'{name}-{next(counter)}.db'}"


@contextmanager
def postgres_urls() -> Iterator[Callable[[str], str] | None]:
    admin_url = os.environ.get("FINCORE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        import psycopg

        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - no server: report and skip the PG figures
        print(
            f"bench.readmodels: PostgreSQL unavailable ({type(exc).__name__}); skipped",
            file=sys.stderr,
        )
        yield None
        return
    made: list[str] = []

    def fresh(_name: str) -> str:
        name = f"fincore_bench_rm_{secrets.token_hex(4)}"
        admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return admin_url.rsplit("/", 1)[0] + f"/{name}"

    with admin:
        try:
            yield fresh
        finally:
            for name in made:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_backend(report: Report, label: str, urls: Callable[[str], str], charges: int) -> None:
    rounds = 3 if report.quick else 5
    with ExitStack() as stack:
        platform = build_platform(PlatformConfig.for_database(urls("platform")))
        stack.callback(platform.close)
        events, postings = fill(platform, charges)
        payload = "x" * 600  # about the size of a PaymentDB row's JSON snapshot
        figures: dict[str, list[float]] = {
            "rebuild": [],
            "apply": [],
            "ledger": [],
            "base_events": [],
            "base_postings": [],
        }
        cached = platform.events.read_all(1, events + 1)
        for _ in range(rounds):
            figures["base_events"].append(plain_inserts(urls("plain"), events, payload))
            payments = open_payments(urls("payments"))
            start = time.perf_counter()
            Projector(platform.events, payments, batch_size=1000).catch_up()
            figures["rebuild"].append(events / (time.perf_counter() - start))
            payments.close()
            payments = open_payments(urls("payments"))
            start = time.perf_counter()
            for offset in range(0, len(cached), 1000):
                payments.apply(cached[offset : offset + 1000])
            figures["apply"].append(events / (time.perf_counter() - start))
            payments.close()
            figures["base_postings"].append(plain_inserts(urls("plain"), postings, payload[:200]))
            ledger = open_ledger(urls("ledger"))
            start = time.perf_counter()
            Projector(platform.events, ledger, batch_size=1000).catch_up()
            figures["ledger"].append(postings / (time.perf_counter() - start))
            assert ledger.transaction_count() == postings
            ledger.close()
        median = {k: statistics.median(v) for k, v in figures.items()}
        base = f"plain batched INSERT ({label}), rows/s"
        report.add(
            f"PaymentDB rebuild, read + apply ({label})",
            median["rebuild"],
            "events/s",
            base,
            median["base_events"],
        )
        report.add(
            f"PaymentDB apply, events in memory ({label})",
            median["apply"],
            "events/s",
            base,
            median["base_events"],
        )
        report.add(
            f"LedgerDB rebuild ({label})",
            median["ledger"],
            "postings/s",
            base,
            median["base_postings"],
        )


def main(argv: list[str] | None = None) -> int:
    report = Report("noncde.readmodels: PaymentDB projection and LedgerDB postings", argv)
    charges = 1500 if report.quick else 10_000
    with sqlite_urls() as urls:
        bench_backend(report, "SQLite WAL NORMAL", urls, charges)
    with postgres_urls() as pg_urls:
        if pg_urls is not None:
            bench_backend(report, "PostgreSQL", pg_urls, charges)
    report.print_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
