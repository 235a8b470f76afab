"""Crashes between "write" and "publish": the relay killed after the broker took the messages
but before it recorded that; the relay killed at random; the API killed mid-transaction. Nothing
is lost and nothing is duplicated as consumers see it."""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from noncde.platform.domain import RecordedEvent, ReservationStatus
from noncde.platform.ports import Platform
from tests.contract.platform.support import sqlite_url
from tests.integration.platform import procs

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["sqlite+sqs", "postgres+sqs", "sqlite+kinesis", "postgres+kinesis"])
def relayed(request: pytest.FixtureRequest, tmp_path: Path, aws: object) -> dict[str, Any]:
    """A platform whose jobs (SQS) or event feed (Kinesis) goes through a relay."""
    database, broker = request.param.split("+")
    if database == "postgres":
        request.applymarker(pytest.mark.postgres)
        db_url = request.getfixturevalue("fresh_postgres_url")()
    else:
        db_url = sqlite_url(tmp_path)
    request.applymarker(pytest.mark.aws)
    if broker == "sqs":
        return procs.make_spec(db_url, job_queue_url="sqs://jobs.fifo?create=1")
    return procs.make_spec(
        db_url, event_store_url="kinesis://events?create=1&shards=2&partitions=3"
    )


def drain_relays(platform: Platform) -> None:
    while sum(relay.run_once() for relay in platform.relays):
        pass


def consumed(spec: dict[str, Any], platform: Platform) -> list[str]:
    """What a downstream consumer sees: job payloads from SQS, or event positions from Kinesis."""
    if "job_queue_url" in spec:
        seen = []
        while jobs := platform.jobs.lease("consumer", n=10):
            for job in jobs:
                seen.append(str(job.payload["charge"]))
                platform.jobs.ack(job)
        return seen
    subscriber = platform.events.subscription("consumer")
    positions: list[str] = []
    while events := subscriber.fetch(limit=25):
        positions.extend(str(e.position) for e in events)
        subscriber.commit()
    return positions


def expected(spec: dict[str, Any], charges: int) -> list[str]:
    if "job_queue_url" in spec:
        return [f"charge-ch{i}" for i in range(charges)]
    return [str(p) for p in range(1, 2 * charges + 1)]


def assert_exactly_once(spec: dict[str, Any], charges: int) -> None:
    platform = procs.open_platform(spec)
    drain_relays(platform)
    seen = consumed(spec, platform)
    platform.close()
    duplicates = [item for item, n in Counter(seen).items() if n > 1]
    assert duplicates == []
    assert sorted(seen) == sorted(expected(spec, charges))


def test_relay_killed_after_publishing_loses_and_duplicates_nothing(
    relayed: dict[str, Any],
) -> None:
    """SIGKILL right after the broker accepted a batch, before the relay recorded it: the
    restarted relay publishes it again and the consumer still sees every item exactly once."""
    procs.charge_writer(relayed, 0, 30)
    relay = SPAWN.Process(target=procs.crashing_relay, args=(relayed,))
    relay.start()
    relay.join(60)
    assert relay.exitcode == -signal.SIGKILL
    platform = procs.open_platform(relayed)
    # the crash really left published rows unrecorded
    pending = sum(r.pending() for r in platform.relays)  # type: ignore[attr-defined]
    assert pending == (30 if "job_queue_url" in relayed else 60)
    platform.close()
    assert_exactly_once(relayed, 30)


def test_relay_killed_at_random_while_charges_arrive(relayed: dict[str, Any]) -> None:
    """The relay is killed 5 times at random moments while a writer adds charges."""
    procs.open_platform(relayed).close()
    writer = SPAWN.Process(target=procs.charge_writer, args=(relayed, 0, 60))
    writer.start()
    for _ in range(5):
        relay = SPAWN.Process(target=procs.relay_forever, args=(relayed,))
        relay.start()
        time.sleep(random.uniform(0.8, 2.0))
        relay.kill()
        relay.join(10)
    writer.join(120)
    assert writer.exitcode == 0
    assert_exactly_once(relayed, 60)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_api_killed_mid_transaction_leaves_no_half_charge(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SIGKILL of a process writing charges: every charge is whole (2 events, its job, its
    idempotency record) or absent."""
    if backend == "postgres":
        request.applymarker(pytest.mark.postgres)
        db_url = request.getfixturevalue("fresh_postgres_url")()
    else:
        db_url = sqlite_url(tmp_path)
    spec = procs.make_spec(db_url)
    procs.open_platform(spec).close()
    total = 5000
    writer = SPAWN.Process(target=procs.charge_writer, args=(spec, 0, total))
    writer.start()
    platform = procs.open_platform(spec)
    deadline = time.monotonic() + 60
    while platform.events.head_position() < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.kill()
    writer.join(10)
    assert writer.exitcode == -signal.SIGKILL
    events: list[RecordedEvent] = []
    while page := platform.events.read_all(len(events) + 1, limit=500):
        events.extend(page)
    per_stream = Counter(e.stream for e in events)
    assert per_stream and set(per_stream.values()) == {2}
    assert len(per_stream) < total  # it really died mid-way
    jobs = Counter(str(job.payload["charge"]) for job in platform.jobs.lease("audit", n=total))
    assert jobs == Counter(dict.fromkeys(per_stream, 1))
    for index in range(len(per_stream) + 3):
        status = platform.idempotency.reserve("mer_1", f"key-{index}", "fp").status
        committed = f"charge-ch{index}" in per_stream
        assert status is (ReservationStatus.FINISHED if committed else ReservationStatus.NEW)
    platform.close()
