"""The long-running roles as the runner starts them (`python -m … <role>`): health, readiness,
metrics and status endpoints on loopback, their work done, a clean stop on SIGTERM, and the
operators' DLQ commands (audited)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fincore.pan_sweep import Sweeper
from noncde.platform.ports import Platform
from tests.harness.procs import ServerProcess
from tests.integration.workers import harness
from tests.integration.workers.harness import MERCHANTS

SECRET = "whsec_RolesRolesRolesRolesRoles"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    built = harness.open_platform(f"sqlite:///{tmp_path / 'platform.db'}")
    yield built
    built.close()


def _start(args: list[str], env: dict[str, str], log: Path) -> tuple[ServerProcess, str]:
    proc = ServerProcess(
        [sys.executable, "-m", *args], name=args[-1], log_path=log, env=env, cwd=harness.ROOT
    )
    url = f"http://127.0.0.1:{env['FINCORE_PORT']}"
    proc.wait_until(lambda: httpx.get(url + "/healthz", timeout=1).status_code == 200)
    return proc, url


def _env(tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    pki = harness.make_pki(tmp_path / "pki")
    return harness.process_env(
        pki,
        tmp_path,
        name=name,
        platform_url=f"sqlite:///{tmp_path / 'platform.db'}",
        payments_url=f"sqlite:///{tmp_path / 'payments.db'}",
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        extra=extra,
    )


def _stop_cleanly(proc: ServerProcess) -> None:
    proc.process.send_signal(signal.SIGTERM)
    proc.process.wait(30)
    proc.stop()  # closes its log
    assert proc.process.returncode == 0, proc.log_tail()


def test_projectionist_and_ledger_roles_report_lag_and_stop_cleanly(
    tmp_path: Path, platform: Platform
) -> None:
    """Both projectors catch up, expose their lag (/lag, /metrics, /readyz) and stop on
    SIGTERM with exit code 0."""
    for n in range(12):
        harness.request_charge(platform, MERCHANTS[n % 2], 1000 + n)
    for role in ("projectionist", "ledger"):
        proc, url = _start(
            ["noncde.readmodels.app", role], _env(tmp_path, role), tmp_path / f"{role}.out"
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and httpx.get(url + "/lag").json()["lag_events"]:
                time.sleep(0.1)
            lag = httpx.get(url + "/lag").json()
            assert lag["lag_events"] == 0 and lag["position"] == platform.events.head_position()
            assert httpx.get(url + "/readyz").json()["checks"]["lag_within_limit"] is True
            metrics = httpx.get(url + "/metrics").text
            assert "projection_lag_events" in metrics and "projection_position" in metrics
        finally:
            _stop_cleanly(proc)


def test_webhooks_role_delivers_and_reconcile_role_runs_its_schedule(
    tmp_path: Path, platform: Platform
) -> None:
    """The webhooks process delivers a merchant's events (signed) from the event store; the
    reconciler process writes the reports of the days due and shows its status."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {"body": json.loads(body), "signature": self.headers["FinCore-Signature"]}
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "id": "we_RolesRolesRole1",
                        "merchant_id": MERCHANTS[0],
                        "url": f"http://127.0.0.1:{server.server_address[1]}/hook",
                        "enabled_events": ["charge.requested"],
                        "secret": SECRET,
                    }
                ]
            }
        )
    )
    os.chmod(endpoints, 0o600)
    charge_id = harness.request_charge(platform, MERCHANTS[0], 1234)
    harness.request_charge(platform, MERCHANTS[1], 999)
    env = _env(
        tmp_path,
        "webhooks",
        FINCORE_WORKERS_WEBHOOK_ENDPOINTS=f"file://{endpoints}",
        FINCORE_WORKERS_WEBHOOKS_DB_URL=f"sqlite:///{tmp_path / 'webhooks.db'}",
    )
    proc, url = _start(["noncde.workers.app", "webhooks"], env, tmp_path / "webhooks.out")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not received:
            time.sleep(0.1)
        assert [r["body"]["data"]["object"]["charge_id"] for r in received] == [charge_id]
        assert received[0]["signature"].startswith("t=")
        assert 'webhook_deliveries{status="delivered"} 1.0' in httpx.get(url + "/metrics").text
    finally:
        _stop_cleanly(proc)
        server.shutdown()
        server.server_close()

    settlements = tmp_path / "settlements"
    settlements.mkdir()
    env = _env(
        tmp_path,
        "reconciler",
        FINCORE_WORKERS_SETTLEMENT_URL=f"file://{settlements}",
        FINCORE_WORKERS_RECONCILE_AT="00:00",
        FINCORE_WORKERS_RECONCILE_CATCH_UP_DAYS="2",
        FINCORE_WORKERS_RECONCILE_CHECK_S="0.2",
    )
    proc, url = _start(["noncde.workers.app", "reconcile"], env, tmp_path / "reconcile.out")
    try:
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        report = (
            Path(env["FINCORE_VAR_DIR"]) / "reconciliation" / yesterday.isoformat() / "report.json"
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not report.exists():
            time.sleep(0.1)
        assert json.loads(report.read_text())["clean"] is True
        status = httpx.get(url + "/status").json()
        assert status["due"] == [] and yesterday.isoformat() in status["last_run"]["days"]
    finally:
        _stop_cleanly(proc)
    sweeper = Sweeper(canaries=["4242424242424242"])
    sweeper.target(f"sqlite:///{tmp_path / 'webhooks.db'}")
    sweeper.target(str(Path(env["FINCORE_VAR_DIR"])))
    assert sweeper.findings == [] and sweeper.result.errors == []


def test_dlq_commands_list_replay_and_audit(tmp_path: Path, platform: Platform) -> None:
    """`dlq list` shows a dead letter with its reason; `dlq replay` (audited, with the
    operator's name) puts it back on the queue."""
    harness.request_charge(platform, MERCHANTS[0], 500)
    for _ in range(6):
        jobs = platform.jobs.lease("test", visibility_timeout_s=5)
        if not jobs:
            break
        platform.jobs.nack(jobs[0], "gateway answered 503 (psp_unavailable)")
        time.sleep(1.1)
    env = _env(tmp_path, "worker", FINCORE_AUDIT_ACTOR="ops-dave")
    listed = subprocess.run(
        [sys.executable, "-m", "noncde.workers.app", "dlq", "list"],
        env=env,
        capture_output=True,
        text=True,
        cwd=harness.ROOT,
        check=True,
    )
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["last_error"] == "gateway answered 503 (psp_unavailable)"
    replayed = subprocess.run(
        [sys.executable, "-m", "noncde.workers.app", "dlq", "replay", letter["job_id"]],
        env=env,
        capture_output=True,
        text=True,
        cwd=harness.ROOT,
        check=True,
    )
    assert json.loads(replayed.stdout) == {"replayed": 1}
    assert platform.jobs.counts().ready == 1
    audited = [
        line
        for p in (Path(env["FINCORE_VAR_DIR"]) / "audit").rglob("*")
        if p.is_file()
        for line in p.read_text(errors="replace").splitlines()
        if "dlq_replay" in line
    ]
    assert len(audited) == 1 and "ops-dave" in audited[0]
