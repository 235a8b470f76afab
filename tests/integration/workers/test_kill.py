"""Kill tests: job workers, the projectionist and the ledger writer are SIGKILLed at random
moments while charges, captures, cancels and refunds flow through a gateway that loses
answers. After restarts: every charge is terminal or dead-lettered with a reason, no PSP
payment was made twice, the ledger balances and matches the PSP, and PaymentDB and LedgerDB
equal a rebuild from zero."""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from fincore.netutil import free_port
from noncde.api.domain import ChargeStatus, EventType, RefundStatus, charge_stream
from noncde.platform.ports import Platform
from noncde.readmodels.bootstrap import open_ledger, open_payments
from noncde.readmodels.service.ledger import LedgerService
from noncde.readmodels.service.projector import Projector, rebuild
from tests.harness.procs import ServerProcess
from tests.integration.workers import harness
from tests.integration.workers.harness import MERCHANTS

TERMINAL = {ChargeStatus.SUCCEEDED, ChargeStatus.FAILED, ChargeStatus.CANCELED}
OUTCOMES = {
    EventType.CHARGE_AUTHORIZED,
    EventType.CHARGE_CAPTURED,
    EventType.CHARGE_FAILED,
    EventType.CHARGE_CANCELED,
    EventType.REFUND_SUCCEEDED,
    EventType.REFUND_FAILED,
}
FAULTS = {
    "unknown": 0.08,
    "slow": 0.03,
    "error_after": 0.05,
    "error_before": 0.05,
    "lookup_error": 0.1,
    "refund_pending": 0.1,
}


@dataclass
class Member:
    name: str
    args: list[str]
    env: dict[str, str]
    workdir: Path
    process: ServerProcess | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        env = dict(self.env, FINCORE_PORT=str(free_port()))
        self.process = ServerProcess(
            [sys.executable, "-m", *self.args],
            name=self.name,
            log_path=self.workdir / f"{self.name}.{self.starts}.out",
            env=env,
            cwd=harness.ROOT,
        )
        port = env["FINCORE_PORT"]
        self.process.wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
            timeout_s=60,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class Fleet:
    members: list[Member] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)

    def chaos(self, stop: threading.Event, rng: random.Random, gap_s: tuple[float, float]) -> None:
        """SIGKILL a member every few moments and start it again: in rounds, each member once
        per round in a random order, so every kind of process dies."""
        order: list[Member] = []
        while not stop.wait(rng.uniform(*gap_s) if self.kills else 0.5):
            if not order:
                order = rng.sample(self.members, len(self.members))
            victim = order.pop()
            victim.kill()
            self.kills[victim.name] += 1
            time.sleep(rng.uniform(0.05, 0.6))
            victim.start()

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _drive(platform: Platform, charges: int, rng: random.Random, seconds: float) -> list[str]:
    """Create charges over about `seconds` and, as they progress, captures, cancels and
    partial refunds."""
    started = time.monotonic()
    created: list[str] = []
    followed: set[str] = set()
    refunded: Counter[str] = Counter()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        due = charges if seconds <= 0 else int(charges * (time.monotonic() - started) / seconds) + 1
        if len(created) < charges:
            for _ in range(max(0, min(due, charges) - len(created))):
                amount = rng.randint(300, 9_000)
                dead = rng.random() < 0.02
                created.append(
                    harness.request_charge(
                        platform,
                        MERCHANTS[len(created) % 2],
                        amount,
                        currency=("usd", "eur")[len(created) % 2],
                        capture=rng.random() < 0.7,
                        token="tok_deadForever" + str(len(created)) if dead else None,
                    )
                )
        busy = unfollowed = False
        for charge_id in created:
            current = harness.charge(platform, charge_id)
            if current.status is ChargeStatus.REQUIRES_CAPTURE and charge_id not in followed:
                # Followed once a capture or cancel is on the stream; a request that lost a
                # race with a worker's append (a version conflict) asks again on the next pass.
                if rng.random() < 0.75:
                    requested = harness.request_capture(
                        platform, charge_id, current.amount - rng.randint(0, 200)
                    )
                else:
                    requested = harness.request_cancel(platform, charge_id)
                if requested or current.capture_requested or current.cancel_requested:
                    followed.add(charge_id)
                else:
                    unfollowed = True
            elif current.status is ChargeStatus.SUCCEEDED and refunded[charge_id] < 2:
                if rng.random() < 0.6:
                    amount = max(1, current.amount_refundable // 3)
                    if harness.request_refund(platform, charge_id, amount):
                        refunded[charge_id] += 1
                else:
                    refunded[charge_id] = 2
            if (
                current.status is ChargeStatus.PROCESSING
                or current.status is ChargeStatus.REQUIRES_CAPTURE
            ):
                busy = True
        if len(created) >= charges and not busy:
            return created
        if len(created) >= charges and not unfollowed:
            # Only dead letters or slow jobs left: stop following once the queue is empty.
            counts = platform.jobs.counts()
            if counts.ready == counts.in_flight == counts.delayed == 0:
                return created
        time.sleep(0.05)
    return created


def run_kill_test(
    tmp_path: Path, urls: Callable[[str], str], charges: int, seed: int, seconds: float
) -> None:
    print(f"kill test seed={seed} charges={charges}")  # shown on failure, to replay
    rng = random.Random(seed)
    pki = harness.make_pki(tmp_path / "pki")
    platform_url, payments_url, ledger_url = urls("platform"), urls("payments"), urls("ledger")
    platform = harness.open_platform(platform_url, max_attempts=6)
    fleet = Fleet()
    with harness.fake_gateway(pki, tmp_path, FAULTS, slow_s=1.3) as gateway:
        common = {
            "platform_url": platform_url,
            "payments_url": payments_url,
            "ledger_url": ledger_url,
            "gateway_url": gateway.url,
            "max_attempts": 6,
            "extra": {"FINCORE_WORKERS_DLQ_SWEEP_S": "1", "FINCORE_READMODELS_BATCH_SIZE": "50"},
        }
        for name, args in (
            ("worker-a", ["noncde.workers.app", "jobs"]),
            ("worker-b", ["noncde.workers.app", "jobs"]),
            ("projectionist", ["noncde.readmodels.app", "projectionist"]),
            ("ledger", ["noncde.readmodels.app", "ledger"]),
        ):
            identity = "worker" if name.startswith("worker") else name
            env = harness.process_env(pki, tmp_path / name, name=identity, **common)  # type: ignore[arg-type]
            member = Member(name, args, env, tmp_path)
            member.start()
            fleet.members.append(member)
        stop = threading.Event()
        chaos = threading.Thread(target=fleet.chaos, args=(stop, rng, (0.3, 1.2)), daemon=True)
        chaos.start()
        try:
            created = _drive(platform, charges, rng, seconds)
            # Every kind of process must have died at least once while work was in flight.
            _wait(lambda: set(fleet.kills) == {m.name for m in fleet.members}, 90, "a kill round")
            stop.set()
            chaos.join(60)
            gateway.set_faults()  # the outage is over: what is left can finish
            _wait(
                lambda: (lambda c: c.ready == c.in_flight == c.delayed == 0)(
                    platform.jobs.counts()
                ),
                240,
                "the queue to drain",
            )
            # Let the dead-letter sweep record the last dead letters, the projectors catch up.
            time.sleep(2.5)
            payments, ledger = open_payments(payments_url), open_ledger(ledger_url)
            head = platform.events.head_position()
            _wait(
                lambda: payments.position() == ledger.position() == platform.events.head_position(),
                120,
                "the projections to catch up",
            )
            assert head <= payments.position()
        finally:
            stop.set()
            fleet.stop()
        state = gateway.state()

    print(
        f"kills={dict(fleet.kills)} ops={state['ops']} "
        f"dead_letters={len(platform.jobs.dead_letters(10_000))}"
    )
    assert set(fleet.kills) == {m.name for m in fleet.members}, fleet.kills
    # 1. Every charge terminal, or dead-lettered with a reason.
    dead_jobs = {d.job_id: d for d in platform.jobs.dead_letters(10_000)}
    dead_charges = {d.payload["charge_id"] for d in dead_jobs.values()}
    assert len(created) == charges
    for charge_id in created:
        current = harness.charge(platform, charge_id)
        events = platform.events.read_stream(charge_stream(charge_id))
        outcomes = Counter(e.type for e in events if e.type in OUTCOMES)
        # No job completed twice: each outcome once per charge (refunds: once per refund).
        assert (
            outcomes[EventType.CHARGE_CAPTURED] <= 1 and outcomes[EventType.CHARGE_AUTHORIZED] <= 1
        )
        assert outcomes[EventType.CHARGE_FAILED] + outcomes[EventType.CHARGE_CANCELED] <= 1
        refund_outcomes = Counter(
            e.data["refund_id"]
            for e in events
            if e.type in (EventType.REFUND_SUCCEEDED, EventType.REFUND_FAILED)
        )
        assert all(n == 1 for n in refund_outcomes.values()), refund_outcomes
        if charge_id in dead_charges:
            assert current.dead_letter and current.dead_letter["reason"], charge_id
            assert current.dead_letter["job_id"] in dead_jobs
            continue
        assert current.status in TERMINAL, (charge_id, current.status)
        assert all(r.status is not RefundStatus.PENDING for r in current.refunds), charge_id
    # 2. No PSP payment duplicated, and every recorded outcome is the PSP's.
    assert state["violations"] == []
    for charge_id, psp in state["payments"].items():
        assert psp["payments_created"] == 1, charge_id
        current = harness.charge(platform, charge_id)
        if charge_id in dead_charges:
            continue
        if psp["status"] == "succeeded":
            assert current.amount_captured == psp["amount_received"], charge_id
            assert current.amount_refunded == sum(
                r["amount"]
                for r in state["refunds"].values()
                if r["charge_id"] == charge_id and r["status"] == "succeeded"
            )
        assert current.status.value == psp["status"], charge_id
    # 3. The ledger balances and holds exactly the PSP's captured and refunded money.
    projector = Projector(platform.events, ledger)
    service = LedgerService(platform.events, ledger, projector)
    trial = service.trial_balance()
    assert trial.balanced and ledger.unbalanced_transactions() == []
    clearing = {a.currency: a.balance for a in trial.accounts if a.account == "psp:clearing"}
    expected: Counter[str] = Counter()
    for charge_id, psp in state["payments"].items():
        if psp["status"] == "succeeded" and charge_id not in dead_charges:
            expected[psp["currency"]] += psp["amount_received"] - sum(
                r["amount"]
                for r in state["refunds"].values()
                if r["charge_id"] == charge_id and r["status"] == "succeeded"
            )
    assert {c: v for c, v in clearing.items() if v} == {c: v for c, v in expected.items() if v}
    # 4. PaymentDB and LedgerDB equal a rebuild from zero.
    fresh_payments = open_payments(urls("payments_rebuilt"))
    fresh_ledger = open_ledger(urls("ledger_rebuilt"))
    try:
        assert rebuild(platform.events, fresh_payments).digest == payments.digest()
        assert rebuild(platform.events, fresh_ledger).digest == ledger.digest()
    finally:
        for db in (fresh_payments, fresh_ledger, payments, ledger):
            db.close()
        platform.close()


def test_kill_workers_projectionist_and_ledger_short(tmp_path: Path) -> None:
    """Short form (SQLite, 60 charges): SIGKILLs at random moments lose and duplicate
    nothing."""
    run_kill_test(tmp_path, lambda name: f"sqlite:///{tmp_path / name}.db", 60, seed=11, seconds=20)


@pytest.mark.slow
def test_kill_500_charges_sqlite(tmp_path: Path) -> None:
    """500 charges with refunds on SQLite, workers, projectionist and ledger killed throughout."""
    run_kill_test(
        tmp_path,
        lambda name: f"sqlite:///{tmp_path / name}.db",
        500,
        seed=int.from_bytes(os.urandom(2), "big"),
        seconds=60,
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_500_charges_postgres(tmp_path: Path, fresh_postgres_url: Callable[[], str]) -> None:
    """500 charges with refunds on PostgreSQL, workers, projectionist and ledger killed
    throughout."""
    made: dict[str, str] = {}

    def url(name: str) -> str:
        if name not in made:
            made[name] = fresh_postgres_url()
        return made[name]

    run_kill_test(
        tmp_path,
        url,
        500,
        seed=int.from_bytes(os.urandom(2), "big"),
        seconds=60,
    )
