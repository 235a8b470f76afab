"""Bench: the non-CDE platform on SQLite and PostgreSQL.

Figures: events appended/s (one event per transaction), charges/s (one unit of work: idempotency
reserve + 2 events + 1 job + complete, as the API does it; also with 4 threads), events read/s
(`read_all` in pages of 500) and jobs enqueued+leased+acked/s. Each beside the same-run baseline
of plain single-row INSERT commits on the same database through the same engine, measured in
alternating slices with the figure (medians of 5 slices each).

    python -m bench.platform [--quick] [--json]

PostgreSQL: a throw-away database on FINCORE_BENCH_PG (default
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards; skipped if unreachable.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

from bench.common import Report, percentile
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import NewEvent, StoredResponse
from noncde.platform.ports import Platform

_baseline_md = MetaData()
_baseline = Table(
    "bench_plain_insert",
    _baseline_md,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("payload", String(200), nullable=False),
)


def run_for(seconds: float, op: Callable[[int], int | None]) -> tuple[float, list[float]]:
    """Call op(i) until `seconds` pass; returns (items/s, latency per call in ms). `op` returns
    how many items one call did (None: 1)."""
    latencies: list[float] = []
    start = time.perf_counter()
    i = items = 0
    while True:
        t0 = time.perf_counter()
        items += op(i) or 1
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000)
        i += 1
        if t1 - start >= seconds:
            return items / (t1 - start), latencies


class Paired:
    """Runs a figure and its baseline in alternating slices, so both see the same machine
    (this VM has noisy neighbours: a baseline taken once at the start is not "the same run")."""

    def __init__(self, report: Report, label: str, baseline: Callable[[int], None]) -> None:
        self.report = report
        self.label = label
        self.baseline = baseline
        self.rounds = 3 if report.quick else 5
        self.counter = 0

    def measure(
        self,
        name: str,
        unit: str,
        seconds: float,
        op: Callable[[int], int | None] | None = None,
        threaded: Callable[[float], tuple[float, list[float]]] | None = None,
        latency: bool = True,
    ) -> None:
        rates: list[float] = []
        base_rates: list[float] = []
        latencies: list[float] = []
        for _ in range(self.rounds):
            base_rate, _ = run_for(seconds / self.rounds, self._base)
            base_rates.append(base_rate)
            if threaded is not None:
                rate, lat = threaded(seconds / self.rounds)
            else:
                assert op is not None
                rate, lat = run_for(seconds / self.rounds, self._offset(op))
            rates.append(rate)
            latencies.extend(lat)
        self.report.add(
            f"{self.label}: {name}",
            statistics.median(rates),
            unit,
            f"{self.label}: plain INSERT commits/s",
            statistics.median(base_rates),
            p50_ms=percentile(latencies, 50) if latency else None,
            p99_ms=percentile(latencies, 99) if latency else None,
        )

    def _base(self, _i: int) -> None:
        self.baseline(0)

    def _offset(self, op: Callable[[int], int | None]) -> Callable[[int], int | None]:
        """Keep stream and key names unique across slices."""
        self.counter += 1_000_000

        def shifted(i: int, base: int = self.counter) -> int | None:
            return op(base + i)

        return shifted


def plain_insert(platform: Platform) -> Callable[[int], None]:
    """The baseline: one single-row INSERT committed, through the same engine and pragmas."""
    db = platform.events.db  # type: ignore[attr-defined]
    _baseline_md.create_all(db.engine)
    insert = _baseline.insert()
    payload = "x" * 120

    def op(_i: int) -> None:
        with db.write() as conn:
            conn.execute(insert, {"payload": payload})

    return op


def charge_op(platform: Platform, prefix: str) -> Callable[[int], None]:
    response = StoredResponse(201, {"id": "ch_x", "status": "processing", "amount": 1000})

    def op(i: int) -> None:
        stream = f"charge-{prefix}{i}"
        with platform.unit_of_work() as uow:
            reservation = uow.idempotency.reserve("mer_bench", f"{prefix}-{i}", "fp")
            uow.events.append(
                stream,
                [
                    NewEvent("charge.requested", {"amount": 1000, "currency": "eur"}, "mer_bench"),
                    NewEvent("charge.risk_assessed", {"score": 12}, "mer_bench"),
                ],
                expected_version=0,
            )
            uow.jobs.enqueue("charge.authorize", {"charge": stream})
            uow.idempotency.complete(reservation, response)
            uow.commit()

    return op


def threaded_charges(
    platform: Platform, threads: int
) -> Callable[[float], tuple[float, list[float]]]:
    def run(seconds: float) -> tuple[float, list[float]]:
        done: list[tuple[float, list[float]]] = []

        def worker(n: int) -> None:
            done.append(run_for(seconds, charge_op(platform, f"t{n}x{secrets.token_hex(4)}-")))

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return sum(rate for rate, _ in done), [ms for _, lat in done for ms in lat]

    return run


def bench_backend(report: Report, label: str, url: str, seconds: float) -> None:
    platform = build_platform(PlatformConfig.for_database(url))
    try:
        paired = Paired(report, label, plain_insert(platform))

        def append(i: int) -> None:
            platform.events.append(
                f"charge-a{i}", [NewEvent("charge.requested", {"amount": i}, "mer_bench")], 0
            )

        paired.measure("events appended/s (1 per tx)", "events/s", seconds, append)
        paired.measure("charges/s (UoW, 1 thread)", "charges/s", seconds, charge_op(platform, "c"))
        paired.measure(
            "charges/s (UoW, 4 threads)",
            "charges/s",
            seconds,
            threaded=threaded_charges(platform, 4),
        )

        head = platform.events.head_position()

        def read_page(i: int) -> int:
            start = (i * 500) % max(1, head - 500) + 1
            return len(platform.events.read_all(start, limit=500))

        paired.measure(
            f"events read/s (read_all pages of 500, {head} events)",
            "events/s",
            seconds,
            read_page,
            latency=False,
        )

        # drain the charge jobs so the job figure starts on an empty queue
        while jobs := platform.jobs.lease("bench", n=500, visibility_timeout_s=60):
            for job in jobs:
                platform.jobs.ack(job)

        def job_cycle(i: int) -> None:
            platform.jobs.enqueue("webhook.deliver", {"i": i})
            (job,) = platform.jobs.lease("bench", n=1, visibility_timeout_s=60)
            platform.jobs.ack(job)

        paired.measure("jobs enqueued+leased+acked/s", "jobs/s", seconds, job_cycle)
    finally:
        platform.close()


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fincore-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'platform.db'}"


@contextmanager
def postgres_database() -> Iterator[str | None]:
    admin_url = os.environ.get("FINCORE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        import psycopg

        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - no server: report and skip the PG figures
        print(
            f"bench.platform: PostgreSQL unavailable ({type(exc).__name__}); skipped",
            file=sys.stderr,
        )
        yield None
        return
    name = f"fincore_bench_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    report = Report("noncde.platform: event store, unit of work, job queue", argv)
    seconds = 1.0 if report.quick else 5.0
    with sqlite_database() as url:
        bench_backend(report, "SQLite WAL NORMAL", url, seconds)
    with postgres_database() as pg_url:
        if pg_url is not None:
            bench_backend(report, "PostgreSQL", pg_url, seconds)
    report.print_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
