"""The job worker against a recording TLS server that plays the gateway: outcomes, lost answers
resolved by status lookups before any retry, dead letters with reasons, several workers side
by side, graceful shutdown."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from noncde.api.domain import ChargeStatus, EventType, RefundStatus, charge_stream
from noncde.platform.ports import Platform
from noncde.workers.bootstrap import JobWorkerRole, build_job_worker
from noncde.workers.config import WorkersConfig
from noncde.workers.service.jobs import JobWorker
from tests.harness.procs import ServerProcess
from tests.integration.workers import harness
from tests.integration.workers.harness import MERCHANTS, FakeGateway, Pki

OUTCOMES = {
    EventType.CHARGE_AUTHORIZED,
    EventType.CHARGE_CAPTURED,
    EventType.CHARGE_FAILED,
    EventType.CHARGE_CANCELED,
}
TERMINAL = {ChargeStatus.SUCCEEDED, ChargeStatus.FAILED, ChargeStatus.CANCELED}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return harness.make_pki(tmp_path / "pki")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'platform.db'}"


@pytest.fixture
def platform(db_url: str) -> Iterator[Platform]:
    built = harness.open_platform(db_url)
    yield built
    built.close()


@pytest.fixture
def roles() -> Iterator[list[JobWorkerRole]]:
    built: list[JobWorkerRole] = []
    yield built
    for role in built:
        role.close()


def _amounts(start: int, count: int) -> list[int]:
    """Amounts the fake PSP does not decline (it declines multiples of 13)."""
    return [a for a in range(start, start + 2 * count) if a % 13][:count]


def _worker(
    pki: Pki, tmp_path: Path, gateway: FakeGateway, platform: Platform, roles: list[JobWorkerRole]
) -> JobWorker:
    env = harness.process_env(
        pki,
        tmp_path,
        name="worker",
        platform_url="sqlite:///unused",
        payments_url="sqlite:///p",
        ledger_url="sqlite:///l",
        gateway_url=gateway.url,
    )
    key, cert = pki.files("worker", "noncde")
    from fincore.identity import ServiceCredentials

    role = build_job_worker(
        WorkersConfig.from_env(env),
        env=env,
        credentials=ServiceCredentials.from_files(key, cert),
        ca_file=pki.ca,
        platform=platform,
    )
    roles.append(role)
    assert role.worker is not None
    return role.worker


def _drain(workers: list[JobWorker], platform: Platform, timeout_s: float = 90) -> None:
    """Run worker threads until the queue holds nothing but dead letters."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=w.run, args=(stop,), kwargs={"name": f"t{i}"}, daemon=True)
        for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            counts = platform.jobs.counts()
            if counts.ready == counts.in_flight == counts.delayed == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"queue did not drain: {platform.jobs.counts()}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


def _outcome_counts(platform: Platform, charge_id: str) -> Counter[str]:
    return Counter(
        e.type for e in platform.events.read_stream(charge_stream(charge_id)) if e.type in OUTCOMES
    )


def test_charges_reach_their_outcome_once(
    pki: Pki, tmp_path: Path, platform: Platform, roles: list[JobWorkerRole]
) -> None:
    """Auto-captured, declined, authorized-then-captured and authorized-then-canceled charges
    and partial refunds each end with exactly one outcome event matching the PSP's state."""
    with harness.fake_gateway(pki, tmp_path) as gateway:
        worker = _worker(pki, tmp_path, gateway, platform, roles)
        auto = [harness.request_charge(platform, MERCHANTS[0], a) for a in _amounts(1000, 6)]
        declined = harness.request_charge(platform, MERCHANTS[1], 13 * 100)
        manual = [
            harness.request_charge(platform, MERCHANTS[1], a, capture=False)
            for a in _amounts(2000, 4)
        ]
        _drain([worker], platform)
        assert harness.request_capture(platform, manual[0])
        assert harness.request_capture(platform, manual[1], 1500)
        assert harness.request_cancel(platform, manual[2])
        refunds = [harness.request_refund(platform, auto[0], 300)]
        _drain([worker], platform)
        state = gateway.state()

    for charge_id in auto:
        assert harness.charge(platform, charge_id).status is ChargeStatus.SUCCEEDED
        assert _outcome_counts(platform, charge_id) == {EventType.CHARGE_CAPTURED: 1}
    failed = harness.charge(platform, declined)
    assert failed.status is ChargeStatus.FAILED and failed.failure_code == "card_declined"
    assert harness.charge(platform, manual[0]).amount_captured == _amounts(2000, 4)[0]
    assert harness.charge(platform, manual[1]).amount_captured == 1500
    assert harness.charge(platform, manual[2]).status is ChargeStatus.CANCELED
    assert harness.charge(platform, manual[3]).status is ChargeStatus.REQUIRES_CAPTURE
    first = harness.charge(platform, auto[0])
    assert first.amount_refunded == 300 and first.refunds[0].status is RefundStatus.SUCCEEDED
    assert refunds[0] is not None and refunds[0] in state["refunds"]
    for charge_id in [*auto, *manual]:
        psp = state["payments"][charge_id]
        mine = harness.charge(platform, charge_id)
        assert mine.psp_reference == psp["psp_reference"]
        assert psp["payments_created"] == 1
    assert state["violations"] == []


def test_lost_answers_are_resolved_before_any_retry(
    pki: Pki, tmp_path: Path, platform: Platform, roles: list[JobWorkerRole]
) -> None:
    """With answers lost (unknown, too slow, 503 after acting) and status lookups failing, every
    charge still ends with one outcome and no authorization is ever sent again without a
    status lookup first (the server would have paid twice)."""
    faults = {
        "unknown": 0.25,
        "slow": 0.1,
        "error_after": 0.15,
        "error_before": 0.1,
        "lookup_error": 0.2,
        "refund_pending": 0.3,
    }
    with harness.fake_gateway(pki, tmp_path, faults, slow_s=1.5) as gateway:
        workers = [_worker(pki, tmp_path, gateway, platform, roles) for _ in range(3)]
        charges = [
            harness.request_charge(platform, MERCHANTS[i % 2], 500 + i, capture=i % 3 != 0)
            for i in range(40)
        ]
        _drain(workers, platform, timeout_s=120)
        for charge_id in charges:
            current = harness.charge(platform, charge_id)
            if current.status is ChargeStatus.REQUIRES_CAPTURE:
                harness.request_capture(platform, charge_id)
            elif current.status is ChargeStatus.SUCCEEDED:
                harness.request_refund(platform, charge_id, 100)
        _drain(workers, platform, timeout_s=120)
        state = gateway.state()

    assert state["violations"] == []
    dead = {d.payload["charge_id"] for d in platform.jobs.dead_letters()}
    for charge_id in charges:
        current = harness.charge(platform, charge_id)
        outcomes = _outcome_counts(platform, charge_id)
        assert all(n == 1 for n in outcomes.values()), (charge_id, outcomes)
        if charge_id in dead:
            assert current.dead_letter and current.dead_letter["reason"]
            continue
        assert current.status in TERMINAL, (charge_id, current.status)
        assert state["payments"][charge_id]["payments_created"] == 1
        assert current.psp_reference == state["payments"][charge_id]["psp_reference"]
        for refund in current.refunds:
            assert refund.status is RefundStatus.SUCCEEDED
            assert state["refunds"][refund.id]["status"] == "succeeded"
    # Faults were really exercised: lookups happened.
    assert state["ops"].get("status", 0) > 0


def test_exhausted_job_is_dead_lettered_with_reason_and_replayable(
    pki: Pki, tmp_path: Path, platform: Platform, roles: list[JobWorkerRole]
) -> None:
    """A charge the gateway can never process is dead-lettered after the last attempt with
    its reason, a charge.dead_lettered event names the job, and a replay tries again."""
    with harness.fake_gateway(pki, tmp_path) as gateway:
        worker = _worker(pki, tmp_path, gateway, platform, roles)
        charge_id = harness.request_charge(platform, MERCHANTS[0], 700, token="tok_deadCardAlways")
        _drain([worker], platform)
        letters = platform.jobs.dead_letters()
        assert [letter.payload["charge_id"] for letter in letters] == [charge_id]
        assert letters[0].attempts == 4
        assert "503" in (letters[0].last_error or "")
        current = harness.charge(platform, charge_id)
        assert current.status is ChargeStatus.PROCESSING
        assert current.dead_letter is not None
        assert current.dead_letter["job_id"] == letters[0].job_id
        assert current.dead_letter["operation"] == "authorize"
        assert "503" in current.dead_letter["reason"]
        assert platform.jobs.replay([letters[0].job_id]) == 1
        assert platform.jobs.counts().ready == 1
        requests_before = gateway.state()["ops"]["authorize"]
        _drain([worker], platform)
        assert gateway.state()["ops"]["authorize"] > requests_before
        assert len(platform.jobs.dead_letters()) == 1


def test_dead_letter_sweep_records_jobs_the_queue_gave_up_on(
    pki: Pki, tmp_path: Path, platform: Platform, roles: list[JobWorkerRole]
) -> None:
    """A job whose worker died on every attempt is dead-lettered by the queue itself; the sweep
    appends its charge.dead_lettered event once."""
    with harness.fake_gateway(pki, tmp_path) as gateway:
        worker = _worker(pki, tmp_path, gateway, platform, roles)
        charge_id = harness.request_charge(platform, MERCHANTS[0], 800)
        for _ in range(5):  # lease and "die" (never ack/nack) until the queue gives up
            jobs = platform.jobs.lease("dying", n=1, visibility_timeout_s=0.05)
            time.sleep(0.1)
            if not jobs:
                break
        assert len(platform.jobs.dead_letters()) == 1
        assert worker.sweep_dead_letters() == 1
        assert worker.sweep_dead_letters() == 0
    events = platform.events.read_stream(charge_stream(charge_id))
    assert [e.type for e in events].count(EventType.CHARGE_DEAD_LETTERED) == 1
    assert "lease expired" in events[-1].data["reason"]


def test_worker_processes_side_by_side_and_graceful_stop(
    pki: Pki, tmp_path: Path, platform: Platform, db_url: str, roles: list[JobWorkerRole]
) -> None:
    """Three `noncde.workers.app jobs` processes share the queue: every charge gets exactly one
    outcome; SIGTERM stops a worker promptly without leaving a job leased."""
    with harness.fake_gateway(pki, tmp_path, {"slow": 0.05, "unknown": 0.1}, slow_s=1.2) as gateway:
        procs = []
        for n in range(3):
            env = harness.process_env(
                pki,
                tmp_path / f"w{n}",
                name="worker",
                platform_url=db_url,
                payments_url=f"sqlite:///{tmp_path / 'p.db'}",
                ledger_url=f"sqlite:///{tmp_path / 'l.db'}",
                gateway_url=gateway.url,
            )
            proc = ServerProcess(
                [sys.executable, "-m", "noncde.workers.app", "jobs"],
                name=f"worker{n}",
                log_path=tmp_path / f"worker{n}.out",
                env=env,
                cwd=harness.ROOT,
            )
            port = env["FINCORE_PORT"]
            proc.wait_until(
                lambda p=port: httpx.get(f"http://127.0.0.1:{p}/readyz").status_code == 200
            )
            procs.append((proc, port))
        try:
            charges = [
                harness.request_charge(platform, MERCHANTS[i % 2], 300 + i) for i in range(60)
            ]
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                counts = platform.jobs.counts()
                if counts.ready == counts.in_flight == counts.delayed == 0:
                    break
                time.sleep(0.2)
            metrics = httpx.get(f"http://127.0.0.1:{procs[0][1]}/metrics").text
            assert "worker_jobs_total" in metrics
            # Graceful stop under load: a burst, then SIGTERM to one worker.
            more = [harness.request_charge(platform, MERCHANTS[0], 5000 + i) for i in range(20)]
            victim = procs[0][0]
            victim.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            victim.process.wait(15)
            assert time.monotonic() - started < 15
            assert victim.process.returncode == 0, victim.log_tail()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                counts = platform.jobs.counts()
                if counts.ready == counts.in_flight == counts.delayed == 0:
                    break
                time.sleep(0.2)
        finally:
            for proc, _ in procs:
                proc.stop()
        state = gateway.state()
    assert state["violations"] == []
    for charge_id in [*charges, *more]:
        current = harness.charge(platform, charge_id)
        assert current.status in TERMINAL, (charge_id, current.status)
        assert all(n == 1 for n in _outcome_counts(platform, charge_id).values())
        assert state["payments"][charge_id]["payments_created"] == 1
