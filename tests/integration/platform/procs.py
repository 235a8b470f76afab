"""Process bodies for the platform's multi-process tests (started with multiprocessing "spawn",
so each is a fresh interpreter with its own connections, like a real worker)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import ConcurrencyConflict, NewEvent, RetryPolicy, StoredResponse
from noncde.platform.ports import Platform

Spec = Mapping[str, Any]


def make_spec(db_url: str, **urls: str) -> dict[str, Any]:
    return {"db_url": db_url, **urls}


def open_platform(spec: Spec, *, max_attempts: int = 10) -> Platform:
    policy = RetryPolicy(max_attempts=max_attempts, backoff_base_s=0.2, backoff_cap_s=0.5)
    return build_platform(PlatformConfig.for_database(retry=policy, **spec))


def _record(path: str, line: str) -> None:
    """Append one line; O_APPEND keeps concurrent writers' lines whole. Reaches the kernel
    before the caller acks, so it survives a SIGKILL of this process."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def queue_worker(
    spec: Spec, worker_id: str, out_path: str, work_s: float, vt: float, gate: str | None = None
) -> None:
    """Lease, record "<job id> <attempt>", work, ack; forever (the test stops or kills it).

    With `gate`, say "ready" (a marker file) and wait for the gate file before leasing, so a
    test can start every worker before any of them takes a job."""
    platform = open_platform(spec)
    if gate is not None:
        Path(out_path + ".ready").touch()
        while not Path(gate).exists():
            time.sleep(0.01)
    while True:
        jobs = platform.jobs.lease(worker_id, n=5, visibility_timeout_s=vt)
        if not jobs:
            time.sleep(0.02)
            continue
        for job in jobs:
            _record(out_path, f"{job.id} {job.attempts} {worker_id}\n")
            if work_s:
                time.sleep(work_s)
            platform.jobs.ack(job)


def racer(spec: Spec, barrier: Any, rounds: int, results: Any, name: str) -> None:
    """For each round: meet the other racer, then append to the same stream at version 1."""
    platform = open_platform(spec)
    for round_ in range(rounds):
        stream = f"charge-race{round_}"
        seen = platform.events.stream_version(stream)
        barrier.wait()
        try:
            platform.events.append(
                stream, [NewEvent("charge.captured", {"by": name})], expected_version=seen
            )
            results.put((round_, name, "won"))
        except ConcurrencyConflict:
            results.put((round_, name, "conflict"))
    platform.close()


def charge_writer(spec: Spec, first: int, count: int) -> None:
    """Write `count` charges as the API would (one unit of work each), then exit."""
    platform = open_platform(spec)
    for index in range(first, first + count):
        stream = f"charge-ch{index}"
        with platform.unit_of_work() as uow:
            reservation = uow.idempotency.reserve("mer_1", f"key-{index}", "fp")
            uow.events.append(
                stream,
                [
                    NewEvent("charge.requested", {"i": index}, merchant_id="mer_1"),
                    NewEvent("charge.risk_assessed", {"i": index}, merchant_id="mer_1"),
                ],
                expected_version=0,
            )
            uow.jobs.enqueue("charge.authorize", {"charge": stream})
            uow.idempotency.complete(reservation, StoredResponse(201, {"id": stream}))
            uow.commit()
    platform.close()


def crashing_relay(spec: Spec) -> None:
    """Run the relays, but die by SIGKILL right after the first successful publish: after the
    broker has the messages, before the relay has recorded that it sent them."""
    platform = open_platform(spec)

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    for relay in platform.relays:
        if hasattr(relay, "publish"):  # OutboxRelay: wrap its publisher
            real_publish = relay.publish

            def publish_then_die(messages: Any, real: Any = real_publish) -> Any:
                accepted = real(messages)
                die()
                return accepted

            relay.publish = publish_then_die
        else:  # KinesisEventRelay: wrap its put
            real_put = relay._put  # type: ignore[attr-defined]

            def put_then_die(bucket: int, data: bytes, real: Any = real_put) -> None:
                real(bucket, data)
                die()

            relay._put = put_then_die  # type: ignore[attr-defined]
    while True:
        for relay in platform.relays:
            relay.run_once()
        time.sleep(0.05)


def relay_forever(spec: Spec) -> None:
    """A normal relay process (the test kills it at random moments)."""
    platform = open_platform(spec)
    while True:
        published = sum(relay.run_once(limit=20) for relay in platform.relays)
        if not published:
            time.sleep(0.02)


def stream_appender(spec: Spec, name: str, count: int) -> None:
    """Append `count` single events to this process's own stream, each in its own transaction."""
    platform = open_platform(spec)
    for index in range(count):
        platform.events.append(
            f"charge-{name}", [NewEvent("charge.requested", {"i": index})], expected_version=index
        )
    platform.close()
