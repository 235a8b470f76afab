"""noncde.workers (non-CDE): the process entry point and the operators' commands.

Long-running roles (started by the runner; each serves /healthz, /readyz and /metrics on
loopback over plain HTTP):

    python -m noncde.workers.app jobs        # the job worker (charges, captures, cancels, refunds)
    python -m noncde.workers.app webhooks    # merchant webhook deliveries
    python -m noncde.workers.app reconcile   # the daily reconciliation scheduler

Commands (docs/operations.md):

    python -m noncde.workers.app reconcile --date YYYY-MM-DD [--json]
    python -m noncde.workers.app dlq list [--limit N]
    python -m noncde.workers.app dlq replay JOB_ID... | --all
    python -m noncde.workers.app dlq sweep
    python -m noncde.workers.app redeliver EVENT_ID [--endpoint WE_ID]
    python -m noncde.workers.app deliveries EVENT_ID
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge, Histogram

from audit.bootstrap import open_audit_log
from audit.config import auditor_name
from audit.domain import Actor, ActorType, Outcome
from audit.domain import EventType as AuditEvent
from fincore.card_guard import CardDataGuard
from fincore.logs import configure_logging, get_logger
from fincore.process import ProcessSettings, start_process
from fincore.web import DEFAULT_MAX_BODY, create_service_app, serve
from noncde.platform.ports import Platform
from noncde.workers.bootstrap import build_job_worker, build_reconciler, build_webhooks
from noncde.workers.config import WorkersConfig
from noncde.workers.ports import DeliveryStore
from noncde.workers.service.webhooks import delivery_summary

ROLES = {
    "jobs": ("worker", 8211),
    "webhooks": ("webhooks", 8214),
    "reconcile": ("reconciler", 8215),
}


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _operator() -> Actor:
    return Actor(auditor_name(), ActorType.USER)


def _serve(app: Any, settings: ProcessSettings, stop: threading.Event) -> None:
    """Serve health and metrics until SIGTERM/SIGINT. The signal handlers set `stop`:
    uvicorn re-raises the signal after its own shutdown, and with the default handler a
    SIGTERM would kill the process before the caller's graceful shutdown (finish or release
    the work in hand) could run."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # One line per gateway or webhook request would drown the log; outcomes are logged.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # PCI DSS 3.2.1 (checklist A2): even a health endpoint of the non-CDE zone refuses card
    # data with a 400 (tests/security/test_card_data_noncde.py).
    app.add_middleware(CardDataGuard, max_body=DEFAULT_MAX_BODY)
    serve(app, host=settings.host, port=settings.port, tls=settings.tls())


# ---------------------------------------------------------------- long-running roles


def _always() -> bool:
    return True


def _queue_gauge(platform: Platform, state: str) -> Callable[[], float]:
    return lambda: float(getattr(platform.jobs.counts(), state))


def _delivery_gauge(store: DeliveryStore, status: str) -> Callable[[], float]:
    return lambda: float(store.counts().get(status, 0))


def run_jobs(settings: ProcessSettings) -> None:
    log = get_logger("worker")
    app_metrics: dict[str, Any] = {}

    def observe(kind: str, outcome: str, seconds: float) -> None:
        if "jobs" not in app_metrics:
            return
        if kind.startswith("gateway."):
            app_metrics["gateway"].labels(kind.split(".", 1)[1], outcome).inc()
        else:
            app_metrics["jobs"].labels(kind, outcome).inc()
            app_metrics["seconds"].labels(kind).observe(seconds)

    role = build_job_worker(
        credentials=settings.credentials(), ca_file=settings.ca_file, observe=observe
    )
    worker = role.worker
    assert worker is not None
    app = create_service_app(
        "worker", readiness={"platform_db": role.platform.readiness.get("platform_db", _always)}
    )
    registry = app.state.metrics_registry
    app_metrics["jobs"] = Counter(
        "worker_jobs", "Jobs handled, by type and outcome.", ["type", "outcome"], registry=registry
    )
    app_metrics["gateway"] = Counter(
        "worker_gateway_answers",
        "Gateway answers, by call and status.",
        ["call", "status"],
        registry=registry,
    )
    app_metrics["seconds"] = Histogram(
        "worker_job_seconds",
        "Time to handle one job.",
        ["type"],
        registry=registry,
        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )
    queue = Gauge("worker_queue_jobs", "Jobs in the queue by state.", ["state"], registry=registry)
    for state in ("ready", "in_flight", "delayed", "dead"):
        queue.labels(state).set_function(_queue_gauge(role.platform, state))

    stop = threading.Event()
    threads = [
        threading.Thread(
            target=worker.run,
            args=(stop,),
            kwargs={"name": f"{worker.settings.worker_id}:{n}"},
            name=f"job-worker-{n}",
            daemon=True,
        )
        for n in range(role.concurrency)
    ]

    def sweep() -> None:
        while not stop.wait(worker.settings.dead_letter_sweep_s):
            try:
                worker.sweep_dead_letters()
            except Exception as exc:  # noqa: BLE001 - retried at the next sweep
                log.warning("dead-letter sweep failed", error=type(exc).__name__)

    threads.append(threading.Thread(target=sweep, name="dlq-sweep", daemon=True))
    for thread in threads:
        thread.start()
    log.info("job worker started", worker_id=worker.settings.worker_id, threads=role.concurrency)
    try:
        _serve(app, settings, stop)
    finally:
        # Graceful shutdown: no new leases; each thread finishes the job in hand.
        stop.set()
        for thread in threads:
            thread.join(worker.settings.gateway_timeout_s * 2 + 5)
        role.close()
        log.info("job worker stopped", worker_id=worker.settings.worker_id)


def run_webhooks(settings: ProcessSettings) -> None:
    log = get_logger("webhooks")
    counters: dict[str, Any] = {}

    def observe(kind: str, outcome: str, seconds: float) -> None:
        if "deliveries" in counters:
            counters["deliveries"].labels(outcome).inc()

    role = build_webhooks(
        credentials=settings.credentials(), ca_file=settings.ca_file, observe=observe
    )
    dispatcher, store = role.dispatcher, role.store
    assert dispatcher is not None and store is not None
    app = create_service_app("webhooks", readiness={"webhooks_db": store.db.ping})
    registry = app.state.metrics_registry
    counters["deliveries"] = Counter(
        "webhook_attempts", "Delivery attempts by outcome.", ["outcome"], registry=registry
    )
    pending = Gauge("webhook_deliveries", "Deliveries by status.", ["status"], registry=registry)
    for status in ("pending", "delivered", "failed"):
        pending.labels(status).set_function(_delivery_gauge(store, status))
    Gauge(
        "webhook_fan_out_lag_events", "Events not yet fanned out.", registry=registry
    ).set_function(lambda: float(role.platform.events.head_position() - store.position()))

    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(dispatcher.run(stop)), name="webhooks", daemon=True
    )
    thread.start()
    log.info("webhook deliverer started")
    try:
        _serve(app, settings, stop)
    finally:
        stop.set()
        thread.join(dispatcher.settings.timeout_s + 10)
        role.close()


def run_reconcile(settings: ProcessSettings) -> None:
    log = get_logger("reconciler")
    role = build_reconciler()
    scheduler = role.scheduler
    assert scheduler is not None
    app = create_service_app(
        "reconciler", readiness={"platform_db": role.platform.readiness.get("platform_db", _always)}
    )

    @app.get("/status", include_in_schema=False)
    async def status() -> JSONResponse:
        return JSONResponse(
            {"last_run": scheduler.last_run, "due": [d.isoformat() for d in scheduler.due()]}
        )

    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="reconcile", daemon=True)
    thread.start()
    log.info("reconciliation scheduler started", run_at=scheduler.run_at.isoformat())
    try:
        _serve(app, settings, stop)
    finally:
        stop.set()
        thread.join(60)
        role.close()


# ---------------------------------------------------------------- commands


def _audit(action: str, target: str | None, details: dict[str, Any]) -> None:
    """Operator commands are administrative actions (PCI DSS 10.2.1.2), refused unaudited."""
    log = open_audit_log("noncde", "workers", lifecycle=False)
    try:
        log.record(
            AuditEvent.ADMIN_ACTION,
            actor=_operator(),
            outcome=Outcome.SUCCESS,
            target=target,
            resource="workers",
            details={"action": action, **details},
        )
    finally:
        log.close()


def _reconcile_once(day: date, as_json: bool) -> int:
    role = build_reconciler()
    log = open_audit_log("noncde", "workers", lifecycle=False)
    try:
        assert role.reconciler is not None
        role.reconciler.audit = log
        result = role.reconciler.run(day, actor=auditor_name())
    finally:
        log.close()
        role.close()
    if as_json:
        _print(
            {
                **result.report.to_dict(),
                "report": result.location,
                "fees_posted_now": result.fees_posted,
                "alerted": result.alerted,
            }
        )
    else:
        print(result.report.summary(), end="")
        print(f"  report: {result.location}")
    return 0 if result.report.clean else 1


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if len(args_in) == 1 and args_in[0] in ROLES:
        component, port = ROLES[args_in[0]]
        settings = start_process(component, "noncde", port)
        {"jobs": run_jobs, "webhooks": run_webhooks, "reconcile": run_reconcile}[args_in[0]](
            settings
        )
        return 0
    parser = argparse.ArgumentParser(prog="python -m noncde.workers.app")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("jobs", help="run the job worker (long-running)")
    commands.add_parser("webhooks", help="run the webhook deliverer (long-running)")
    reconcile = commands.add_parser(
        "reconcile", help="alone: the daily scheduler; with --date: reconcile one day"
    )
    reconcile.add_argument("--date", help="UTC day YYYY-MM-DD (default: yesterday)")
    reconcile.add_argument("--json", action="store_true")
    dlq = commands.add_parser("dlq", help="dead-lettered jobs")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_commands.add_parser("list")
    listing.add_argument("--limit", type=int, default=100)
    replay = dlq_commands.add_parser("replay")
    replay.add_argument("job_ids", nargs="*")
    replay.add_argument("--all", action="store_true")
    dlq_commands.add_parser("sweep", help="record charge.dead_lettered for unrecorded ones")
    redeliver = commands.add_parser("redeliver", help="send an event's webhooks again")
    redeliver.add_argument("event_id")
    redeliver.add_argument("--endpoint")
    deliveries = commands.add_parser("deliveries", help="an event's webhook delivery log")
    deliveries.add_argument("event_id")
    args = parser.parse_args(args_in)

    configure_logging("workers", stream=sys.stderr, to_file=False)
    if args.command == "reconcile":
        day = (
            date.fromisoformat(args.date)
            if args.date
            else datetime.now(UTC).date() - timedelta(days=1)
        )
        return _reconcile_once(day, args.json)
    if args.command == "dlq":
        return _dlq(args, parser)
    if args.command in {"redeliver", "deliveries"}:
        return _webhook_command(args)
    parser.error(f"{args.command} runs as a long-running role: give it alone")
    return 2


def _dlq(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    role = build_job_worker(credentials=None, ca_file=None)
    try:
        jobs = role.platform.jobs
        if args.dlq_command == "list":
            for letter in jobs.dead_letters(args.limit):
                print(json.dumps(asdict(letter), sort_keys=True, default=str))
        elif args.dlq_command == "replay":
            if not args.job_ids and not args.all:
                parser.error("name job ids or pass --all")
            _audit("dlq_replay", None, {"jobs": args.job_ids or "all"})
            _print({"replayed": jobs.replay(None if args.all else args.job_ids)})
        elif args.dlq_command == "sweep":
            assert role.worker is not None
            _print({"recorded": role.worker.sweep_dead_letters()})
    finally:
        role.close()
    return 0


def _webhook_command(args: argparse.Namespace) -> int:
    config = WorkersConfig.from_env()
    process = ProcessSettings.from_env("webhooks", "noncde", 0)
    audit = (
        open_audit_log("noncde", "workers", lifecycle=False)
        if args.command == "redeliver"
        else None
    )
    role = build_webhooks(
        config, credentials=process.credentials(), ca_file=process.ca_file, audit=audit
    )
    try:
        dispatcher = role.dispatcher
        assert dispatcher is not None
        if args.command == "redeliver":
            count = dispatcher.redeliver(args.event_id, args.endpoint, actor=auditor_name())
            _print({"redelivering": count, "note": "the webhooks worker sends them now"})
            return 0 if count else 1
        out = []
        for delivery, attempts in dispatcher.log_of(args.event_id):
            out.append({**delivery_summary(delivery), "log": [asdict(a) for a in attempts]})
        _print(out)
        return 0
    finally:
        role.close()
        if audit is not None:
            audit.close()


if __name__ == "__main__":
    raise SystemExit(main())
