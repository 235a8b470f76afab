"""Several processes on one backend: queue workers process every job exactly once (acked) or at
least once (SIGKILLed mid-job), and two writers racing on one stream version never both win."""

from __future__ import annotations

import multiprocessing
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract.platform.support import sqlite_url
from tests.integration.platform import procs

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["sqlite", "postgres", "sqs"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """One backend per run: SQLite file, fresh PostgreSQL database, or SQS FIFO on moto (served
    one request at a time: see serial_moto.py)."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        make_db: Callable[[], str] = request.getfixturevalue("fresh_postgres_url")
        return procs.make_spec(make_db())
    if request.param == "sqs":
        request.applymarker(pytest.mark.aws)
        request.getfixturevalue("serial_aws")
        return procs.make_spec(sqlite_url(tmp_path), job_queue_url="sqs://jobs.fifo?create=1")
    return procs.make_spec(sqlite_url(tmp_path))


class Workers:
    """Worker processes writing what they process to one file each."""

    def __init__(self, spec: dict[str, Any], folder: Path, work_s: float, vt: float) -> None:
        self.spec, self.folder, self.work_s, self.vt = spec, folder, work_s, vt
        self.running: dict[str, Any] = {}
        self.started = 0

    def start(self, gated: bool = False) -> str:
        self.started += 1
        name = f"w{self.started}"
        gate = str(self.folder / "go") if gated else None
        process = SPAWN.Process(
            target=procs.queue_worker,
            args=(self.spec, name, str(self.folder / f"{name}.log"), self.work_s, self.vt, gate),
            daemon=True,
        )
        process.start()
        self.running[name] = process
        return name

    def open_gate_when_ready(self, timeout_s: float = 120) -> None:
        """Wait until every gated worker is ready, then let them all start leasing at once."""
        wait_until(
            lambda: len(list(self.folder.glob("w*.log.ready"))) >= self.started,
            timeout_s,
            "every worker ready",
        )
        (self.folder / "go").touch()

    def lines(self) -> list[tuple[str, int, str]]:
        found = []
        for path in self.folder.glob("w*.log"):
            for line in path.read_text().splitlines():
                job_id, attempts, worker = line.split()
                found.append((job_id, int(attempts), worker))
        return found

    def written_by(self, name: str) -> int:
        path = self.folder / f"{name}.log"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.kill()  # SIGKILL: no cleanup, no ack, no rollback by the process itself
        process.join(10)

    def stop_all(self) -> None:
        for process in self.running.values():
            process.terminate()
        for process in self.running.values():
            process.join(10)
        self.running.clear()


@pytest.fixture
def workers(spec: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def make(work_s: float, vt: float) -> Workers:
        folder = tmp_path / "out"
        folder.mkdir(exist_ok=True)
        made.append(Workers(spec, folder, work_s, vt))
        return made[-1]

    yield make
    for group in made:
        group.stop_all()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def enqueue(spec: dict[str, Any], count: int) -> set[str]:
    platform = procs.open_platform(spec)
    ids = {platform.jobs.enqueue("charge.authorize", {"i": i}) for i in range(count)}
    platform.close()
    assert len(ids) == count
    return ids


def drained(spec: dict[str, Any]) -> bool:
    platform = procs.open_platform(spec)
    counts = platform.jobs.counts()
    platform.close()
    return counts.ready + counts.in_flight + counts.delayed == 0


def test_four_workers_process_every_job_exactly_once(
    spec: dict[str, Any], workers: Callable[..., Workers]
) -> None:
    """4 processes leasing from one queue with acks: each job is processed once, none twice."""
    count = 100 if "job_queue_url" in spec else 400
    ids = enqueue(spec, count)
    group = workers(work_s=0.0, vt=120)
    for _ in range(4):
        group.start(gated=True)
    group.open_gate_when_ready()
    wait_until(lambda: len(group.lines()) >= count, 180, "all jobs processed")
    wait_until(lambda: drained(spec), 30, "the queue to drain")
    group.stop_all()
    lines = group.lines()
    per_job = Counter(job_id for job_id, _, _ in lines)
    assert set(per_job) == ids
    assert set(per_job.values()) == {1}
    assert {attempts for _, attempts, _ in lines} == {1}
    assert len({worker for _, _, worker in lines}) >= 2  # really concurrent


def test_killed_workers_lose_no_job(spec: dict[str, Any], workers: Callable[..., Workers]) -> None:
    """Workers SIGKILLed mid-job: every job is still processed (at least once), none dead."""
    count = 120 if "job_queue_url" in spec else 200
    ids = enqueue(spec, count)
    group = workers(work_s=0.2, vt=2)
    for _ in range(4):
        group.start()
    kills = 0
    deadline = time.monotonic() + 120
    while kills < 6 and time.monotonic() < deadline:
        if {job for job, _, _ in group.lines()} >= ids:
            break
        # Prefer a worker that is already working (a fresh one may still be starting).
        busy = [name for name in group.running if group.written_by(name)]
        victim = secrets.choice(busy or list(group.running))
        before = group.written_by(victim)
        # Kill while it is inside a leased batch: right after it recorded a job, before its ack.

        def victim_worked(v: str = victim, b: int = before) -> bool:
            return group.written_by(v) > b

        try:
            wait_until(victim_worked, 5, "the victim to work")
        except AssertionError:
            continue  # a fresh worker still starting, or nothing visible to lease right now
        group.kill(victim)
        kills += 1
        group.start()
    assert kills >= 3
    wait_until(lambda: {job for job, _, _ in group.lines()} >= ids, 180, "every job processed")
    wait_until(lambda: drained(spec), 60, "the queue to drain")
    group.stop_all()
    lines = group.lines()
    assert {job for job, _, _ in lines} == ids
    assert max(attempts for _, attempts, _ in lines) >= 2  # kills caused redeliveries
    platform = procs.open_platform(spec)
    assert platform.jobs.dead_letters() == []
    platform.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_writers_racing_on_one_version_one_wins(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two processes append to the same stream at the same version, 30 times: one wins each."""
    if backend == "postgres":
        request.applymarker(pytest.mark.postgres)
        db_url = request.getfixturevalue("fresh_postgres_url")()
    else:
        db_url = sqlite_url(tmp_path)
    spec = procs.make_spec(db_url)
    procs.open_platform(spec).close()  # schema before the race
    rounds = 30
    barrier = SPAWN.Barrier(2)
    results = SPAWN.Queue()
    racers = [
        SPAWN.Process(target=procs.racer, args=(spec, barrier, rounds, results, name))
        for name in ("a", "b")
    ]
    for process in racers:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * rounds)]
    for process in racers:
        process.join(30)
        assert process.exitcode == 0
    per_round: dict[int, list[str]] = {}
    for round_, _name, outcome in outcomes:
        per_round.setdefault(round_, []).append(outcome)
    assert all(sorted(v) == ["conflict", "won"] for v in per_round.values())
    platform = procs.open_platform(spec)
    for round_ in range(rounds):
        (event,) = platform.events.read_stream(f"charge-race{round_}")
        assert event.version == 1
    assert platform.events.head_position() == rounds
    platform.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_subscriber_never_skips_an_event_committed_late(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """3 processes append concurrently while a subscriber polls: it receives every position
    exactly once and in order (a position is never visible before a lower one commits)."""
    if backend == "postgres":
        request.applymarker(pytest.mark.postgres)
        db_url = request.getfixturevalue("fresh_postgres_url")()
    else:
        db_url = sqlite_url(tmp_path)
    spec = procs.make_spec(db_url)
    platform = procs.open_platform(spec)
    per_writer = 150
    writers = [
        SPAWN.Process(target=procs.stream_appender, args=(spec, f"w{n}", per_writer))
        for n in range(3)
    ]
    for process in writers:
        process.start()
    subscriber = platform.events.subscription("gapless")
    delivered: list[int] = []
    deadline = time.monotonic() + 120
    while len(delivered) < 3 * per_writer and time.monotonic() < deadline:
        batch = subscriber.fetch(limit=50)
        delivered.extend(e.position for e in batch)
        subscriber.commit()
    for process in writers:
        process.join(30)
        assert process.exitcode == 0
    assert delivered == list(range(1, 3 * per_writer + 1))
    for n in range(3):
        assert platform.events.stream_version(f"charge-w{n}") == per_writer
    platform.close()
