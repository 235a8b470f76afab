"""JobQueue contract: every adapter (memory, SQLite, PostgreSQL, SQS FIFO on moto) keeps it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from noncde.platform.adapters.memory import MemoryBackend, MemoryJobQueue
from noncde.platform.adapters.sql import SqlDatabase, SqlJobQueue
from noncde.platform.adapters.sqs import SqsJobQueue
from noncde.platform.domain import CardDataRefused, InvalidArgument, LeaseLost
from noncde.platform.ports import JobQueue
from tests.contract.platform.support import TEST_POLICY, FakeClock, RealClock, sqlite_url

PAN = "4242424242424242"
Clock = FakeClock | RealClock


class JobQueueContract:
    """The guarantees of `noncde.platform.ports.JobQueue` (max 3 attempts, ~1 s backoff)."""

    detects_lost_lease = True
    exact_counts = True

    def test_lease_hides_the_job_until_ack(self, queue: JobQueue) -> None:
        """A leased job is invisible to other workers; ack removes it for good."""
        job_id = queue.enqueue("charge.authorize", {"charge": "ch_1"})
        assert job_id.startswith("job_")
        (job,) = queue.lease("w1")
        assert (job.id, job.type, job.payload, job.attempts) == (
            job_id,
            "charge.authorize",
            {"charge": "ch_1"},
            1,
        )
        assert job.lease.worker_id == "w1"
        assert queue.lease("w2") == []
        queue.ack(job)
        assert queue.lease("w2") == []
        counts = queue.counts()
        assert (counts.ready, counts.in_flight, counts.dead) == (0, 0, 0)

    def test_lease_takes_at_most_n(self, queue: JobQueue) -> None:
        """lease(n) returns up to n distinct jobs."""
        for i in range(5):
            queue.enqueue("webhook.deliver", {"i": i})
        first = queue.lease("w1", n=3)
        rest = queue.lease("w2", n=10)
        assert len(first) == 3 and len(rest) == 2
        assert sorted(j.payload["i"] for j in first + rest) == [0, 1, 2, 3, 4]

    def test_expired_lease_is_delivered_again(self, queue: JobQueue, clock: Clock) -> None:
        """A worker that neither acks nor nacks loses the job when its visibility ends."""
        queue.enqueue("charge.authorize", {})
        queue.lease("w1", visibility_timeout_s=1)
        clock.advance(1.3)
        (again,) = queue.lease("w2", visibility_timeout_s=30)
        assert again.attempts == 2
        queue.ack(again)

    def test_ack_of_a_lost_lease_is_refused(self, queue: JobQueue, clock: Clock) -> None:
        """Once another worker holds the job, the first worker's ack raises LeaseLost."""
        if not self.detects_lost_lease:
            pytest.skip("SQS deletes with a stale receipt handle (documented)")
        queue.enqueue("charge.authorize", {})
        (stale,) = queue.lease("w1", visibility_timeout_s=1)
        clock.advance(1.3)
        (fresh,) = queue.lease("w2")
        with pytest.raises(LeaseLost):
            queue.ack(stale)
        queue.ack(fresh)
        with pytest.raises(LeaseLost):
            queue.ack(fresh)

    def test_extend_keeps_the_lease(self, queue: JobQueue, clock: Clock) -> None:
        """A heartbeat pushes the visibility timeout out."""
        queue.enqueue("report.build", {})
        (job,) = queue.lease("w1", visibility_timeout_s=1)
        job = queue.extend(job, 30)
        clock.advance(1.3)
        assert queue.lease("w2") == []
        queue.ack(job)

    def test_nack_retries_after_backoff(self, queue: JobQueue, clock: Clock) -> None:
        """A failed attempt comes back after the backoff, with its attempt count."""
        queue.enqueue("charge.capture", {})
        (job,) = queue.lease("w1")
        before = clock()
        outcome = queue.nack(job, "psp timeout")
        assert not outcome.dead_lettered
        assert outcome.retry_at is not None
        # equal jitter: between half and all of the 1 s base (SQS rounds up to whole seconds)
        assert before + 0.49 <= outcome.retry_at.timestamp() <= before + 2.1
        assert queue.lease("w1") == []
        clock.advance(2.1)
        (retry,) = queue.lease("w1")
        assert retry.attempts == 2
        queue.ack(retry)

    def test_dead_letter_after_max_attempts_with_last_error(
        self, queue: JobQueue, clock: Clock
    ) -> None:
        """After 3 failed attempts the job is dead-lettered with the last error."""
        job_id = queue.enqueue("charge.capture", {"charge": "ch_9"})
        for attempt in (1, 2, 3):
            clock.advance(2.1)
            (job,) = queue.lease("w1")
            assert job.attempts == attempt
            outcome = queue.nack(job, RuntimeError(f"failure {attempt}"))
        assert outcome.dead_lettered
        clock.advance(2.1)
        assert queue.lease("w1") == []
        (dead,) = queue.dead_letters()
        assert (dead.job_id, dead.type, dead.payload) == (
            job_id,
            "charge.capture",
            {"charge": "ch_9"},
        )
        assert dead.attempts == 3
        assert dead.last_error == "RuntimeError: failure 3"
        assert queue.counts().dead == 1

    def test_error_text_is_masked(self, queue: JobQueue, clock: Clock) -> None:
        """A card number in an error message is masked before it is stored."""
        queue.enqueue("charge.capture", {})
        for _ in range(3):
            clock.advance(2.1)
            (job,) = queue.lease("w1")
            queue.nack(job, f"declined {PAN}")
        (dead,) = queue.dead_letters()
        assert dead.last_error is not None
        assert PAN not in dead.last_error and "424242******4242" in dead.last_error

    def test_replay_puts_dead_letters_back(self, queue: JobQueue, clock: Clock) -> None:
        """Replay (all or by id) gives dead letters a fresh start on the queue."""
        ids = [queue.enqueue("webhook.deliver", {"i": i}) for i in range(2)]
        for _ in range(3):
            clock.advance(2.1)
            for job in queue.lease("w1", n=5):
                queue.nack(job, "endpoint down")
        assert {d.job_id for d in queue.dead_letters()} == set(ids)
        assert queue.replay([ids[1]]) == 1
        (back,) = queue.lease("w1")
        assert (back.id, back.attempts) == (ids[1], 1)
        queue.ack(back)
        assert [d.job_id for d in queue.dead_letters()] == [ids[0]]
        assert queue.replay() == 1
        assert queue.replay() == 0
        (last,) = queue.lease("w1")
        assert last.id == ids[0]
        queue.ack(last)

    def test_worker_that_always_dies_gets_the_job_dead_lettered(
        self, queue: JobQueue, clock: Clock
    ) -> None:
        """A poison job whose lease expires max_attempts times is dead-lettered, not retried."""
        job_id = queue.enqueue("charge.authorize", {})
        for _ in range(3):
            assert len(queue.lease("w1", visibility_timeout_s=1)) == 1
            clock.advance(1.3)
        assert queue.lease("w1") == []
        (dead,) = queue.dead_letters()
        assert dead.job_id == job_id
        assert dead.last_error is not None and "lease expired" in dead.last_error

    def test_delay(self, queue: JobQueue, clock: Clock) -> None:
        """A delayed job is not leased before its delay passes."""
        queue.enqueue("session.expire", {"session": "ps_1"}, delay_s=2)
        assert queue.lease("w1") == []
        clock.advance(2.3)
        (job,) = queue.lease("w1")
        assert job.payload == {"session": "ps_1"} and job.attempts == 1
        queue.ack(job)

    def test_dedup_id_enqueues_once(self, queue: JobQueue) -> None:
        """Two enqueues with the same dedup id yield one job with one id."""
        first = queue.enqueue("charge.authorize", {"n": 1}, dedup_id="charge:ch_1:authorize")
        second = queue.enqueue("charge.authorize", {"n": 2}, dedup_id="charge:ch_1:authorize")
        assert first == second
        jobs = queue.lease("w1", n=10)
        assert [j.payload for j in jobs] == [{"n": 1}]
        queue.ack(jobs[0])

    def test_card_data_is_refused(self, queue: JobQueue) -> None:
        """A payload with a card number (or a cvc field) is refused and nothing is enqueued."""
        with pytest.raises(CardDataRefused):
            queue.enqueue("charge.authorize", {"pan": PAN})
        with pytest.raises(CardDataRefused):
            queue.enqueue("charge.authorize", {"card": {"cvc": "123"}})
        assert queue.lease("w1") == []

    def test_bad_arguments_are_refused(self, queue: JobQueue) -> None:
        """Job types are lowercase names; delays stay within 0-12 h."""
        with pytest.raises(InvalidArgument):
            queue.enqueue("Charge Authorize", {})
        with pytest.raises(InvalidArgument):
            queue.enqueue("charge.authorize", {}, delay_s=-1)
        with pytest.raises(InvalidArgument):
            queue.enqueue("charge.authorize", {}, delay_s=13 * 3600)

    def test_counts(self, queue: JobQueue, clock: Clock) -> None:
        """Gauges count ready, leased, waiting and dead jobs."""
        for i in range(3):
            queue.enqueue("webhook.deliver", {"i": i})
        queue.lease("w1", n=1)
        (failing,) = queue.lease("w1", n=1)
        queue.nack(failing, "boom")
        counts = queue.counts()
        assert counts.ready + counts.in_flight + counts.delayed == 3
        assert counts.ready == 1
        if self.exact_counts:
            assert (counts.in_flight, counts.delayed, counts.dead) == (1, 1, 0)


class TestMemoryJobQueue(JobQueueContract):
    @pytest.fixture
    def clock(self, fake_clock: FakeClock) -> Clock:
        return fake_clock

    @pytest.fixture
    def queue(self, clock: FakeClock) -> JobQueue:
        return MemoryJobQueue(MemoryBackend(clock=clock), TEST_POLICY)


class TestSqliteJobQueue(JobQueueContract):
    @pytest.fixture
    def clock(self, fake_clock: FakeClock) -> Clock:
        return fake_clock

    @pytest.fixture
    def queue(self, tmp_path: Path, clock: FakeClock) -> Iterator[JobQueue]:
        db = SqlDatabase(sqlite_url(tmp_path))
        db.init_schema()
        yield SqlJobQueue(db, TEST_POLICY, clock)
        db.dispose()

    def test_dedup_window_expires(self, queue: JobQueue, clock: FakeClock) -> None:
        """After the 24 h dedup window the same dedup id enqueues again."""
        first = queue.enqueue("report.build", {}, dedup_id="daily")
        (job,) = queue.lease("w1")
        queue.ack(job)
        assert queue.enqueue("report.build", {}, dedup_id="daily") == first
        assert queue.lease("w1") == []
        clock.advance(24 * 3600 + 1)
        assert queue.enqueue("report.build", {}, dedup_id="daily") == first
        assert len(queue.lease("w1")) == 1


@pytest.mark.postgres
class TestPostgresJobQueue(JobQueueContract):
    @pytest.fixture
    def clock(self, fake_clock: FakeClock) -> Clock:
        return fake_clock

    @pytest.fixture
    def queue(self, fresh_postgres_url: Callable[[], str], clock: FakeClock) -> Iterator[JobQueue]:
        db = SqlDatabase(fresh_postgres_url())
        db.init_schema()
        yield SqlJobQueue(db, TEST_POLICY, clock)
        db.dispose()


@pytest.mark.aws
class TestSqsJobQueue(JobQueueContract):
    """SQS FIFO on moto in server mode, in real time."""

    detects_lost_lease = False
    exact_counts = False

    @pytest.fixture
    def clock(self) -> Clock:
        return RealClock()

    @pytest.fixture
    def queue(self, aws: object) -> JobQueue:
        return SqsJobQueue.from_url("sqs://fincore-jobs.fifo?create=1", TEST_POLICY)

    def test_existing_queue_is_found_with_its_dlq(self, queue: JobQueue) -> None:
        """Without create=1 the adapter finds the queue and its DLQ from the redrive policy."""
        assert isinstance(queue, SqsJobQueue)
        found = SqsJobQueue.from_url("sqs://fincore-jobs.fifo")
        assert (found.queue_url, found.dlq_url) == (queue.queue_url, queue.dlq_url)

    def test_redrive_policy_is_the_backstop(self, queue: JobQueue) -> None:
        """The queue carries a redrive policy to its DLQ (max_attempts + 2 receives)."""
        assert isinstance(queue, SqsJobQueue)
        attributes = queue.client.get_queue_attributes(
            QueueUrl=queue.queue_url, AttributeNames=["RedrivePolicy", "FifoQueue"]
        )["Attributes"]
        assert attributes["FifoQueue"] == "true"
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == TEST_POLICY.max_attempts + 2
        assert redrive["deadLetterTargetArn"].endswith(":fincore-jobs-dlq.fifo")


def test_nack_outcome_times_are_timezone_aware() -> None:
    """Times returned by the queue are aware UTC datetimes (never naive)."""
    clock = FakeClock()
    queue = MemoryJobQueue(MemoryBackend(clock=clock), TEST_POLICY)
    queue.enqueue("charge.authorize", {})
    (job,) = queue.lease("w1")
    outcome = queue.nack(job, "x")
    assert outcome.retry_at is not None and outcome.retry_at.utcoffset() == timedelta(0)
