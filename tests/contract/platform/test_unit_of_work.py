"""UnitOfWork contract: events, jobs and the idempotency record commit together or not at all,
on every backend combination the bootstrap can build (SQL alone, SQL with the SQS outbox, the
Kinesis feed or Redis idempotency, and memory)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import (
    CardDataRefused,
    ConcurrencyConflict,
    NewEvent,
    ReservationStatus,
    StoredResponse,
    UnitOfWorkClosed,
)
from noncde.platform.ports import Platform
from tests.contract.platform.support import TEST_POLICY, sqlite_url

RESPONSE = StoredResponse(201, {"id": "ch_1", "status": "processing"})


def deliver(platform: Platform) -> None:
    """Run every relay once (publishes the outbox and the event feed; no-op on plain SQL)."""
    for relay in platform.relays:
        relay.run_once()


def charge(platform: Platform, key: str, stream: str) -> ReservationStatus:
    """What the API does for one charge: reserve, 2 events, 1 job, complete, commit."""
    with platform.unit_of_work() as uow:
        reservation = uow.idempotency.reserve("mer_1", key, "fp-1")
        if reservation.status is not ReservationStatus.NEW:
            return reservation.status
        uow.events.append(
            stream,
            [
                NewEvent("charge.requested", {"amount": 1000}, merchant_id="mer_1"),
                NewEvent("charge.risk_assessed", {"score": 3}, merchant_id="mer_1"),
            ],
            expected_version=0,
        )
        uow.jobs.enqueue("charge.authorize", {"charge": stream})
        uow.idempotency.complete(reservation, RESPONSE)
        uow.commit()
    return ReservationStatus.NEW


def leased_all(platform: Platform) -> list[str]:
    deliver(platform)
    jobs = platform.jobs.lease("checker", n=50)
    for job in jobs:
        platform.jobs.ack(job)
    return [str(job.payload.get("charge")) for job in jobs]


class UnitOfWorkContract:
    """The guarantees of `noncde.platform.ports.UnitOfWork`."""

    def test_commit_makes_everything_visible_together(self, platform: Platform) -> None:
        """After commit: both events, the job and the finished idempotency record exist."""
        assert charge(platform, "key-1", "charge-ch_1") is ReservationStatus.NEW
        events = platform.events.read_stream("charge-ch_1")
        assert [e.type for e in events] == ["charge.requested", "charge.risk_assessed"]
        assert leased_all(platform) == ["charge-ch_1"]
        replay = platform.idempotency.reserve("mer_1", "key-1", "fp-1")
        assert replay.status is ReservationStatus.FINISHED and replay.response == RESPONSE

    def test_exception_rolls_everything_back(self, platform: Platform) -> None:
        """An exception before commit leaves no event, no job and a free idempotency key."""

        def crash_before_commit() -> None:
            with platform.unit_of_work() as uow:
                reservation = uow.idempotency.reserve("mer_1", "key-2", "fp-1")
                uow.events.append("charge-ch_2", [NewEvent("charge.requested", {})], 0)
                uow.jobs.enqueue("charge.authorize", {"charge": "charge-ch_2"})
                uow.idempotency.complete(reservation, RESPONSE)
                raise RuntimeError("risk engine crashed")

        with pytest.raises(RuntimeError):
            crash_before_commit()
        assert platform.events.head_position() == 0
        assert leased_all(platform) == []
        assert platform.idempotency.reserve("mer_1", "key-2", "fp-1").status is (
            ReservationStatus.NEW
        )

    def test_leaving_without_commit_rolls_back(self, platform: Platform) -> None:
        """Commit is explicit: a block that ends without it writes nothing."""
        with platform.unit_of_work() as uow:
            uow.events.append("charge-ch_3", [NewEvent("charge.requested", {})], 0)
            uow.jobs.enqueue("charge.authorize", {"charge": "charge-ch_3"})
        assert platform.events.stream_version("charge-ch_3") == 0
        assert leased_all(platform) == []

    def test_conflict_rolls_back_the_reservation_and_the_job(self, platform: Platform) -> None:
        """A ConcurrencyConflict inside the unit undoes its other writes."""
        platform.events.append("charge-ch_4", [NewEvent("charge.requested", {})], 0)

        def append_stale() -> None:
            with platform.unit_of_work() as uow:
                uow.idempotency.reserve("mer_1", "key-4", "fp-1")
                uow.jobs.enqueue("charge.authorize", {"charge": "charge-ch_4"})
                uow.events.append("charge-ch_4", [NewEvent("charge.requested", {})], 0)

        with pytest.raises(ConcurrencyConflict):
            append_stale()
        assert leased_all(platform) == []
        assert platform.idempotency.reserve("mer_1", "key-4", "fp-1").status is (
            ReservationStatus.NEW
        )
        assert platform.events.stream_version("charge-ch_4") == 1

    def test_card_data_in_a_job_rolls_back_the_events(self, platform: Platform) -> None:
        """A refused job payload takes the already appended events down with it."""

        def enqueue_card() -> None:
            with platform.unit_of_work() as uow:
                uow.events.append("charge-ch_5", [NewEvent("charge.requested", {})], 0)
                uow.jobs.enqueue("charge.authorize", {"pan": "4242424242424242"})

        with pytest.raises(CardDataRefused):
            enqueue_card()
        assert platform.events.head_position() == 0

    def test_repeated_request_replays_instead_of_charging_again(self, platform: Platform) -> None:
        """The same idempotency key a second time finds the finished record and writes nothing."""
        assert charge(platform, "key-6", "charge-ch_6") is ReservationStatus.NEW
        assert charge(platform, "key-6", "charge-ch_6b") is ReservationStatus.FINISHED
        assert platform.events.stream_version("charge-ch_6b") == 0
        assert leased_all(platform) == ["charge-ch_6"]

    def test_concurrent_duplicates_charge_once(self, platform: Platform) -> None:
        """Six threads sending the same request at once create exactly one charge."""
        barrier = threading.Barrier(6)
        outcomes: list[ReservationStatus] = []

        def send(index: int) -> None:
            barrier.wait()
            outcomes.append(charge(platform, "key-7", f"charge-ch_7_{index}"))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes.count(ReservationStatus.NEW) == 1
        assert set(outcomes) <= {
            ReservationStatus.NEW,
            ReservationStatus.FINISHED,
            ReservationStatus.IN_FLIGHT,
        }
        assert len({e.stream for e in platform.events.read_all()}) == 1
        assert len(leased_all(platform)) == 1

    def test_unit_of_work_is_only_usable_inside_with(self, platform: Platform) -> None:
        """Writing through a unit that is not open is an error, not a silent autocommit."""
        uow = platform.unit_of_work()
        with pytest.raises(UnitOfWorkClosed):
            uow.events.append("charge-ch_8", [NewEvent("charge.requested", {})], 0)
        with uow:
            uow.commit()
        with pytest.raises(UnitOfWorkClosed):
            uow.jobs.enqueue("charge.authorize", {})


def _build(db_url: str, **urls: str) -> Iterator[Platform]:
    platform = build_platform(PlatformConfig.for_database(db_url, retry=TEST_POLICY, **urls))
    yield platform
    platform.close()


class TestMemoryUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    def platform(self) -> Iterator[Platform]:
        yield from _build("memory://")


class TestSqliteUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    def platform(self, tmp_path: Path) -> Iterator[Platform]:
        yield from _build(sqlite_url(tmp_path))


@pytest.mark.postgres
class TestPostgresUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    def platform(self, fresh_postgres_url: Callable[[], str]) -> Iterator[Platform]:
        yield from _build(fresh_postgres_url())


@pytest.mark.redis
class TestSqliteRedisUnitOfWork(UnitOfWorkContract):
    """Idempotency in Redis, events and jobs in SQLite."""

    @pytest.fixture
    def platform(self, tmp_path: Path, redis_url: str) -> Iterator[Platform]:
        yield from _build(sqlite_url(tmp_path), idempotency_url=redis_url)


@pytest.mark.aws
class TestSqliteSqsOutboxUnitOfWork(UnitOfWorkContract):
    """Jobs go to the outbox table in the transaction; the relay publishes them to SQS."""

    @pytest.fixture
    def platform(self, tmp_path: Path, aws: object) -> Iterator[Platform]:
        yield from _build(sqlite_url(tmp_path), job_queue_url="sqs://fincore-jobs.fifo?create=1")

    def test_jobs_reach_sqs_only_through_the_relay_and_once(self, platform: Platform) -> None:
        """Nothing is on SQS before the relay runs; running it twice publishes once."""
        charge(platform, "key-9", "charge-ch_9")
        assert platform.jobs.lease("w1") == []
        deliver(platform)
        deliver(platform)
        assert leased_all(platform) == ["charge-ch_9"]


@pytest.mark.aws
@pytest.mark.postgres
class TestPostgresAwsRedisUnitOfWork(UnitOfWorkContract):
    """The production shape: PostgreSQL, jobs via SQS, events fanned out on Kinesis, Redis."""

    @pytest.fixture
    def platform(
        self, fresh_postgres_url: Callable[[], str], aws: object, redis_url: str
    ) -> Iterator[Platform]:
        yield from _build(
            fresh_postgres_url(),
            job_queue_url="sqs://fincore-jobs.fifo?create=1",
            event_store_url="kinesis://fincore-events?create=1",
            idempotency_url=redis_url,
        )

    def test_events_fan_out_on_kinesis(self, platform: Platform) -> None:
        """Committed events reach a Kinesis subscriber after the relay runs."""
        charge(platform, "key-10", "charge-ch_10")
        subscriber = platform.events.subscription("webhooks")
        assert subscriber.fetch() == []
        deliver(platform)
        assert [e.type for e in subscriber.fetch()] == [
            "charge.requested",
            "charge.risk_assessed",
        ]
