"""noncde.readmodels (non-CDE): the process entry point and the operators' commands.

Long-running roles (started by the runner; each serves /healthz, /readyz, /metrics and /lag on
loopback over plain HTTP):

    python -m noncde.readmodels.app projectionist    # PaymentDB
    python -m noncde.readmodels.app ledger           # LedgerDB

Commands (docs/operations.md):

    python -m noncde.readmodels.app lag
    python -m noncde.readmodels.app catch-up {payments|ledger}
    python -m noncde.readmodels.app rebuild {payments|ledger} [--into URL] [--until N | --to-head]
    python -m noncde.readmodels.app verify {payments|ledger}
    python -m noncde.readmodels.app digest {payments|ledger}
    python -m noncde.readmodels.app trial-balance [--at YYYY-MM-DD] [--json]
    python -m noncde.readmodels.app balance MERCHANT [--at YYYY-MM-DD] [--json]
    python -m noncde.readmodels.app reverse SEQ --reason TEXT
    python -m noncde.readmodels.app counts MERCHANT
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge

from audit.bootstrap import open_audit_log
from audit.config import auditor_name
from audit.domain import Actor, ActorType, Outcome
from audit.domain import EventType as AuditEvent
from fincore.card_guard import CardDataGuard
from fincore.logs import configure_logging, get_logger
from fincore.process import ProcessSettings, start_process
from fincore.settings import var_dir
from fincore.web import DEFAULT_MAX_BODY, create_service_app, serve
from noncde.readmodels.bootstrap import ReadModels, build_read_models, open_ledger, open_payments
from noncde.readmodels.domain.ledger import LedgerError
from noncde.readmodels.ports import Projection
from noncde.readmodels.service.projector import Projector, rebuild

ROLES = {"projectionist": ("payments", 8212), "ledger": ("ledger", 8213)}
KINDS = ("payments", "ledger")


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _projector(models: ReadModels, kind: str) -> Projector:
    return models.payment_projector if kind == "payments" else models.ledger_projector


def _serve(app: Any, settings: ProcessSettings, stop: threading.Event) -> None:
    """Serve health and metrics until SIGTERM/SIGINT. The signal handlers set `stop`:
    uvicorn re-raises the signal after its own shutdown, and with the default handler a
    SIGTERM would kill the process before the caller's graceful shutdown (finish or release
    the work in hand) could run."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # PCI DSS 3.2.1 (checklist A2): even a health endpoint of the non-CDE zone refuses card
    # data with a 400 (tests/security/test_card_data_noncde.py).
    app.add_middleware(CardDataGuard, max_body=DEFAULT_MAX_BODY)
    serve(app, host=settings.host, port=settings.port, tls=settings.tls())


# ---------------------------------------------------------------- long-running roles


def run_role(role: str) -> None:
    kind, default_port = ROLES[role]
    settings = start_process(role, "noncde", default_port)
    log = get_logger(role)
    models = build_read_models()
    projector = _projector(models, kind)
    limit = models.config.max_lag_events
    database = models.payments.db if kind == "payments" else models.ledger.db

    app = create_service_app(
        role,
        readiness={
            f"{kind}_db": database.ping,
            "event_store": models.platform.readiness.get("platform_db", lambda: True),
            "lag_within_limit": lambda: projector.lag().events <= limit,
        },
    )
    registry = app.state.metrics_registry
    labels = {"projection": kind}
    Gauge(
        "projection_position",
        "Last applied event-store position.",
        ["projection"],
        registry=registry,
    ).labels(**labels).set_function(lambda: projector.projection.position())
    Gauge(
        "projection_lag_events",
        "Events the projection trails the event store by.",
        ["projection"],
        registry=registry,
    ).labels(**labels).set_function(lambda: projector.lag().events)
    Gauge(
        "projection_lag_seconds",
        "Age of the oldest event not yet applied.",
        ["projection"],
        registry=registry,
    ).labels(**labels).set_function(lambda: projector.lag().seconds)
    Gauge(
        "projection_last_batch_seconds",
        "Duration of the last applied batch.",
        ["projection"],
        registry=registry,
    ).labels(**labels).set_function(lambda: projector.stats.last_batch_s)
    applied = Counter(
        "projection_events_applied",
        "Events applied by this process.",
        ["projection"],
        registry=registry,
    ).labels(**labels)
    failures = Counter(
        "projection_batch_failures",
        "Batches that failed and were retried.",
        ["projection"],
        registry=registry,
    ).labels(**labels)
    seen = {"applied": 0, "failures": 0}

    def sync_counters() -> None:
        applied.inc(projector.stats.applied - seen["applied"])
        failures.inc(projector.stats.failures - seen["failures"])
        seen["applied"], seen["failures"] = projector.stats.applied, projector.stats.failures

    @app.get("/lag", include_in_schema=False)
    async def lag() -> JSONResponse:
        sync_counters()
        found = projector.lag()
        return JSONResponse(
            {**found.to_dict(), "projection": kind, "within_limit": found.events <= limit},
            status_code=200,
        )

    stop = threading.Event()
    worker = threading.Thread(
        target=projector.run,
        args=(stop,),
        kwargs={"idle_s": models.config.poll_s},
        name=f"{kind}-projector",
        daemon=True,
    )
    worker.start()
    log.info("projector started", projection=kind, position=projector.projection.position())
    try:
        _serve(app, settings, stop)
    finally:
        # Graceful stop: the batch in progress commits (or rolls back) as one transaction.
        stop.set()
        worker.join(30)
        models.close()
        log.info("projector stopped", projection=kind)


# ---------------------------------------------------------------- commands


def _fresh_url(kind: str) -> str:
    folder = var_dir() / "noncde" / "rebuild"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"sqlite:///{folder / f'{kind}-{stamp}.db'}"


def _open_fresh(kind: str, url: str) -> Projection:
    if kind == "payments":
        return open_payments(url)
    return open_ledger(url)


def _audit_admin(action: str, details: dict[str, Any], reason: str | None = None) -> None:
    """Operator commands are administrative actions (PCI DSS 10.2.1.2): audited, and refused
    when the audit log cannot be written."""
    log = open_audit_log("noncde", "readmodels", lifecycle=False)
    try:
        log.record(
            AuditEvent.ADMIN_ACTION,
            actor=Actor(auditor_name(), ActorType.USER),
            outcome=Outcome.SUCCESS,
            resource="readmodels",
            details={"action": action, **details},
            reason=reason,
        )
    finally:
        log.close()


def _rebuild(models: ReadModels, kind: str, into: str | None, until: int | None) -> dict[str, Any]:
    live = models.payments if kind == "payments" else models.ledger
    url = into or _fresh_url(kind)
    fresh = _open_fresh(kind, url)
    try:
        result = rebuild(
            models.platform.events, fresh, until=until, batch_size=models.config.batch_size
        )
    finally:
        fresh.close()
    out: dict[str, Any] = {**result.to_dict(), "into": url.split("?", 1)[0]}
    if live.position() == result.position:
        out["identical_to_live"] = live.digest() == result.digest
    else:
        out["identical_to_live"] = None
        out["note"] = (
            f"the live {kind} database is at position {live.position()}, the rebuild at "
            f"{result.position}: compare with the projector stopped, or use --until"
        )
    return out


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in and args_in[0] in ROLES:
        run_role(args_in[0])
        return 0
    parser = argparse.ArgumentParser(prog="python -m noncde.readmodels.app")
    commands = parser.add_subparsers(dest="command", required=True)
    for role in ROLES:
        commands.add_parser(role, help=f"run the {role} (long-running)")
    commands.add_parser("lag", help="projection lag of PaymentDB and LedgerDB (JSON)")
    catch = commands.add_parser("catch-up", help="apply everything now, then exit")
    catch.add_argument("kind", choices=KINDS)
    build = commands.add_parser("rebuild", help="replay from zero into a fresh database")
    build.add_argument("kind", choices=KINDS)
    build.add_argument("--into", help="database URL of the fresh database (default: new SQLite)")
    where = build.add_mutually_exclusive_group()
    where.add_argument("--until", type=int, help="stop at this event-store position")
    where.add_argument("--to-head", action="store_true", help="replay everything there is")
    verify = commands.add_parser("verify", help="rebuild into a temporary database and compare")
    verify.add_argument("kind", choices=KINDS)
    digest = commands.add_parser("digest", help="content hash per table of the live database")
    digest.add_argument("kind", choices=KINDS)
    trial = commands.add_parser("trial-balance", help="debits and credits per account")
    trial.add_argument("--at", help="up to the end of this UTC day (YYYY-MM-DD)")
    trial.add_argument("--json", action="store_true")
    balance = commands.add_parser("balance", help="a merchant's balance at a date")
    balance.add_argument("merchant")
    balance.add_argument("--at", help="up to the end of this UTC day (YYYY-MM-DD)")
    balance.add_argument("--json", action="store_true")
    reverse = commands.add_parser("reverse", help="post the reversing transaction of SEQ")
    reverse.add_argument("seq", type=int)
    reverse.add_argument("--reason", required=True)
    counts = commands.add_parser("counts", help="a merchant's charges/refunds/sessions by status")
    counts.add_argument("merchant")
    args = parser.parse_args(args_in)

    configure_logging("readmodels", stream=sys.stderr, to_file=False)
    models = build_read_models()
    try:
        return _command(args, models)
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        models.close()


def _command(args: argparse.Namespace, models: ReadModels) -> int:
    if args.command == "lag":
        _print({k: _projector(models, k).lag().to_dict() for k in KINDS})
    elif args.command == "catch-up":
        _print({"applied": _projector(models, args.kind).catch_up()})
    elif args.command == "digest":
        live = models.payments if args.kind == "payments" else models.ledger
        _print({"position": live.position(), "digest": live.digest()})
    elif args.command == "rebuild":
        live = models.payments if args.kind == "payments" else models.ledger
        until = None if args.to_head else (args.until if args.until else live.position())
        _audit_admin("rebuild", {"projection": args.kind, "until": until})
        _print(_rebuild(models, args.kind, args.into, until))
    elif args.command == "verify":
        live = models.payments if args.kind == "payments" else models.ledger
        with tempfile.TemporaryDirectory(prefix="fincore-verify-") as folder:
            url = f"sqlite:///{Path(folder) / 'fresh.db'}"
            out = _rebuild(models, args.kind, url, live.position())
        _print(out)
        return 0 if out.get("identical_to_live") else 1
    elif args.command == "trial-balance":
        trial = models.ledger_service.trial_balance(_day(args.at))
        if args.json:
            _print(trial.to_dict())
        else:
            print(render_trial_balance(trial.to_dict()))
        return 0 if trial.balanced else 1
    elif args.command == "balance":
        found = models.ledger_service.merchant_balance(args.merchant, _day(args.at))
        rows = [b.to_dict() for b in found]
        if args.json:
            _print({"merchant_id": args.merchant, "at": args.at, "balances": rows})
        else:
            print(render_balances(args.merchant, args.at, rows))
    elif args.command == "reverse":
        log = open_audit_log("noncde", "readmodels", lifecycle=False)
        try:
            models.ledger_service.audit = log
            position = models.ledger_service.request_reversal(
                args.seq, reason=args.reason, actor=auditor_name()
            )
        finally:
            log.close()
        posted = models.ledger_service.catch_up()
        _print({"reversal_requested_at_position": position, "posted_events": posted})
    elif args.command == "counts":
        _print(models.payments.counts(args.merchant))
    return 0


def render_trial_balance(trial: dict[str, Any]) -> str:
    lines = [
        f"Trial balance {'at ' + trial['at'] if trial['at'] else '(all time)'}: "
        f"{trial['transactions']} transactions",
        f"{'account':<48} {'cur':<4} {'debits':>14} {'credits':>14} {'balance':>14}",
    ]
    for row in trial["accounts"]:
        lines.append(
            f"{row['account']:<48} {row['currency']:<4} {row['debits']:>14} "
            f"{row['credits']:>14} {row['balance']:>14}"
        )
    for currency, totals in trial["totals"].items():
        lines.append(
            f"{'TOTAL':<48} {currency:<4} {totals['debits']:>14} {totals['credits']:>14} "
            f"{totals['debits'] - totals['credits']:>14}"
        )
    lines.append("BALANCED" if trial["balanced"] else "NOT BALANCED")
    return "\n".join(lines)


def render_balances(merchant: str, at: str | None, rows: list[dict[str, Any]]) -> str:
    lines = [f"Balance of {merchant} {'at end of ' + at if at else 'now'} (minor units)"]
    lines.append(f"{'cur':<4} {'captured':>12} {'refunded':>12} {'fees':>12} {'net':>12}")
    for row in rows:
        lines.append(
            f"{row['currency']:<4} {row['captured']:>12} {row['refunded']:>12} "
            f"{row['fees']:>12} {row['net']:>12}"
        )
    if not rows:
        lines.append("(no postings)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
