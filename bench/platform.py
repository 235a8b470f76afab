"""Bench: the non-CDE platform on SQLite and PostgreSQL.

Figures: events appended/s (one event per transaction), charges/s (one unit of work: idempotency
reserve + 2 events + 1 job + complete, as the API does it; also with 4 threads), events read/s
(`read_all` in pages of 500) and jobs enqueued+leased+acked/s. Each beside the same-run baseline
of plain single-row INSERT commits on the same database through the same engine.

    python -m bench.platform [--quick] [--json]

PostgreSQL: a throw-away database on FINCORE_BENCH_PG (default
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards; skipped if unreachable.
"""

from __future__ import annotations

import os
import secrets
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


def run_for(seconds: float, op: Callable[[int], object]) -> tuple[float, list[float]]:
    """Call op(i) until `seconds` pass; returns (ops/s, latencies in ms)."""
    latencies: list[float] = []
    start = time.perf_counter()
    i = 0
    while True:
        t0 = time.perf_counter()
        op(i)
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000)
        i += 1
        if t1 - start >= seconds:
            return i / (t1 - start), latencies


def plain_inserts(platform: Platform, seconds: float) -> float:
    db = platform.events.db  # type: ignore[attr-defined]
    _baseline_md.create_all(db.engine)
    insert = _baseline.insert()
    payload = "x" * 120

    def op(_i: int) -> None:
        with db.write() as conn:
            conn.execute(insert, {"payload": payload})

    rate, _ = run_for(seconds, op)
    return rate


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


def threaded_charges(platform: Platform, seconds: float, threads: int) -> tuple[float, list[float]]:
    done: list[tuple[float, list[float]]] = []

    def worker(n: int) -> None:
        done.append(run_for(seconds, charge_op(platform, f"t{n}x{secrets.token_hex(3)}-")))

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(rate for rate, _ in done), [ms for _, lat in done for ms in lat]


def bench_backend(report: Report, label: str, url: str, seconds: float) -> None:
    platform = build_platform(PlatformConfig.for_database(url))
    try:
        baseline = plain_inserts(platform, seconds)
        base_name = f"{label}: plain INSERT commits/s"

        def append(i: int) -> None:
            platform.events.append(
                f"charge-a{i}", [NewEvent("charge.requested", {"amount": i}, "mer_bench")], 0
            )

        rate, lat = run_for(seconds, append)
        report.add(
            f"{label}: events appended/s (1 per tx)",
            rate,
            "events/s",
            base_name,
            baseline,
            p50_ms=percentile(lat, 50),
            p99_ms=percentile(lat, 99),
        )

        rate, lat = run_for(seconds, charge_op(platform, "c"))
        report.add(
            f"{label}: charges/s (UoW, 1 thread)",
            rate,
            "charges/s",
            base_name,
            baseline,
            p50_ms=percentile(lat, 50),
            p99_ms=percentile(lat, 99),
        )
        rate, lat = threaded_charges(platform, seconds, 4)
        report.add(
            f"{label}: charges/s (UoW, 4 threads)",
            rate,
            "charges/s",
            base_name,
            baseline,
            p50_ms=percentile(lat, 50),
            p99_ms=percentile(lat, 99),
        )

        head = platform.events.head_position()
        read = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            position = 1
            while page := platform.events.read_all(position, limit=500):
                read += len(page)
                position = page[-1].position + 1
        report.add(
            f"{label}: events read/s (pages of 500, {head} events)",
            read / (time.perf_counter() - start),
            "events/s",
            base_name,
            baseline,
        )

        # drain the charge jobs so the job figure starts on an empty queue
        while jobs := platform.jobs.lease("bench", n=500, visibility_timeout_s=60):
            for job in jobs:
                platform.jobs.ack(job)

        def job_cycle(i: int) -> None:
            platform.jobs.enqueue("webhook.deliver", {"i": i})
            (job,) = platform.jobs.lease("bench", n=1, visibility_timeout_s=60)
            platform.jobs.ack(job)

        rate, lat = run_for(seconds, job_cycle)
        report.add(
            f"{label}: jobs enqueued+leased+acked/s",
            rate,
            "jobs/s",
            base_name,
            baseline,
            p50_ms=percentile(lat, 50),
            p99_ms=percentile(lat, 99),
        )
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
    seconds = 0.5 if report.quick else 3.0
    with sqlite_database() as url:
        bench_backend(report, "SQLite WAL NORMAL", url, seconds)
    with postgres_database() as pg_url:
        if pg_url is not None:
            bench_backend(report, "PostgreSQL", pg_url, seconds)
    report.print_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
