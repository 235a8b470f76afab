"""Non-CDE platform: the ports of the durable backbone (event store, job queue, idempotency store,
rules store, unit of work, relay) and the guarantees every adapter must keep.

Every adapter passes one contract suite per port (tests/contract/platform). Every write refuses
card data with `CardDataRefused` before anything is stored; infrastructure failures surface as
`BackendUnavailable` or the driver's own error, never as a silent success.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

from noncde.platform.domain import (
    JSON,
    DeadLetter,
    Job,
    NackOutcome,
    NewEvent,
    QueueCounts,
    RecordedEvent,
    Reservation,
    RuleSet,
    StoredResponse,
)

# ---------------------------------------------------------------- events


class EventWriter(Protocol):
    def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> list[RecordedEvent]:
        """Append `events` to `stream` atomically, all or none.

        `expected_version` is the stream's current version as the caller last saw it: 0 means
        "the stream must not exist yet", None means "any" (no check). On a mismatch, or when a
        concurrent writer appended first, raises `ConcurrencyConflict` and writes nothing.
        Versions continue from the stream's version + 1; global positions are assigned in
        commit order, strictly increasing and gap-free (a reader that saw position p has seen
        every position below p). Raises `CardDataRefused`/`InvalidArgument` before any I/O.
        """
        ...


class EventReader(Protocol):
    def read_stream(
        self, stream: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events with version >= `from_version`, in version order ([] if none)."""
        ...

    def read_all(
        self, from_position: int = 1, limit: int = 500, *, merchant_id: str | None = None
    ) -> list[RecordedEvent]:
        """Up to `limit` committed events with position >= `from_position`, in position order;
        only one merchant's when `merchant_id` is given. Page with the last position + 1."""
        ...

    def stream_version(self, stream: str) -> int:
        """The stream's current version; 0 when it does not exist."""
        ...

    def head_position(self) -> int:
        """The highest committed global position; 0 when the store is empty."""
        ...


class Subscription(Protocol):
    """A named reader of the global feed with a stored checkpoint: delivery is at least once.

    `fetch` returns events after everything fetched so far (starting from the stored
    checkpoint); `commit` stores the checkpoint at the end of what was fetched. After a crash
    (or `rewind`) delivery resumes at the stored checkpoint, so uncommitted events come again;
    consumers dedup by event id or position. Order: SQL and memory deliver in global position
    order; the Kinesis feed delivers each event stream in version order (global order only
    with one partition), and never delivers a relay duplicate.
    """

    name: str

    def fetch(self, limit: int = 500) -> list[RecordedEvent]: ...

    def commit(self) -> None: ...

    def rewind(self) -> None:
        """Forget what was fetched but not committed; the next fetch starts at the checkpoint."""
        ...


class EventStore(EventWriter, EventReader, Protocol):
    """The source of truth: append-only streams with optimistic concurrency, one global feed.

    Events are immutable once appended; nothing updates or deletes them.
    """

    def subscription(self, name: str) -> Subscription:
        """The named subscriber's handle (its checkpoint persists across processes)."""
        ...


# ---------------------------------------------------------------- jobs


class JobWriter(Protocol):
    def enqueue(
        self,
        job_type: str,
        payload: JSON,
        *,
        delay_s: float = 0.0,
        dedup_id: str | None = None,
    ) -> str:
        """Add a job, visible to `lease` after `delay_s` (0-43200 s); returns its id (`job_…`).

        With `dedup_id`, the id is derived from it and a second enqueue with the same dedup id
        while the first is remembered (at least 5 minutes: SQS FIFO's window; 24 h on SQL and
        memory) adds nothing and returns the same id. Refuses card data (`CardDataRefused`).
        """
        ...


class JobQueue(JobWriter, Protocol):
    """At-least-once jobs with leases, retries with backoff and dead letters.

    A leased job is invisible to other workers until its visibility timeout ends; if the
    worker neither acks nor nacks by then (it crashed), the job is leased again. Every
    delivery counts as an attempt; after `max_attempts` the job is dead-lettered with its last
    error instead of being delivered again. Handlers must be idempotent (dedup by job id).
    """

    def lease(self, worker_id: str, n: int = 1, visibility_timeout_s: float = 30.0) -> list[Job]:
        """Up to `n` due jobs, each leased to `worker_id` for `visibility_timeout_s`; [] if none.
        Does not wait for jobs to arrive."""
        ...

    def ack(self, job: Job) -> None:
        """The job is done: remove it. Raises `LeaseLost` when the lease was lost (SQL and
        memory detect a lease that expired and was taken by another worker; SQS cannot, and
        deletes the message)."""
        ...

    def nack(self, job: Job, error: str | BaseException) -> NackOutcome:
        """The attempt failed: retry after exponential backoff with jitter, or, when the attempts
        are exhausted, dead-letter it with `error` (card numbers masked). Raises `LeaseLost`."""
        ...

    def extend(self, job: Job, visibility_timeout_s: float) -> Job:
        """Keep the lease for another `visibility_timeout_s` from now (a heartbeat)."""
        ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Dead-lettered jobs, newest first where the backend knows the time."""
        ...

    def replay(self, job_ids: Sequence[str] | None = None) -> int:
        """Put dead letters (all, or those listed) back on the queue with a fresh attempt
        count; returns how many were replayed."""
        ...

    def counts(self) -> QueueCounts:
        """Approximate gauges for metrics (exact on SQL and memory)."""
        ...


# ---------------------------------------------------------------- idempotency


class IdempotencyWriter(Protocol):
    def reserve(self, merchant_id: str, key: str, fingerprint: str) -> Reservation:
        """Claim `key` for `merchant_id`.

        NEW: the caller owns the key (use `complete` or `release` with the returned
        reservation). IN_FLIGHT: another request with the same fingerprint holds it.
        FINISHED: it completed; `response` is the stored response to replay. MISMATCH: the
        key was used with a different request fingerprint. An in-flight claim whose lock TTL
        ran out, and a finished record past its retention (>= 24 h), count as absent.
        Inside a SQL unit of work a concurrent reserve of the same key waits for the first
        transaction and then sees its outcome instead of IN_FLIGHT.
        """
        ...

    def complete(self, reservation: Reservation, response: StoredResponse) -> None:
        """Store the final response for replay; raises `ReservationLost` if the claim was lost."""
        ...


class IdempotencyStore(IdempotencyWriter, Protocol):
    """Idempotency keys per merchant, kept at least 24 h after completion."""

    def release(self, reservation: Reservation) -> None:
        """Give the key up after a failure that changed nothing, so a retry runs again.
        A no-op if the claim was already lost."""
        ...

    def purge_expired(self) -> int:
        """Delete expired records; returns how many (Redis expires them by itself: 0)."""
        ...


# ---------------------------------------------------------------- rules


class RulesStore(Protocol):
    """Versioned risk rules: one active version, replaced atomically, cheap to poll."""

    def active(self) -> RuleSet:
        """The active (latest published) rule set; `RuleSet.empty()` before any publish."""
        ...

    def active_version(self) -> int:
        """The active version only: a cheap "has it changed" check for hot reload."""
        ...

    def publish(self, rules: Sequence[JSON], *, expected_version: int | None = None) -> RuleSet:
        """Publish `rules` as version active + 1, atomically: readers see the old or the new
        set, never a mix. With `expected_version`, raises `ConcurrencyConflict` when another
        publish came first. Refuses card data."""
        ...

    def get(self, version: int) -> RuleSet | None:
        """A published version (for audits and rollbacks), or None."""
        ...


# ---------------------------------------------------------------- unit of work, relays


class UnitOfWork(Protocol):
    """One atomic transaction over events, jobs and idempotency records.

    Used as `with platform.unit_of_work() as uow: ...; uow.commit()`. Leaving the block
    without `commit()` (or on an exception) rolls everything back. On the SQL backends all
    writes are in one database transaction. When jobs go to SQS or events fan out through
    Kinesis, the rows land in the same transaction (outbox table, event table) and a relay
    publishes them after commit, exactly once as consumers see it. With Redis idempotency the
    reservation is taken before the transaction, completed after commit and released on
    rollback (see docs/platform.md for the crash window this leaves).
    """

    @property
    def events(self) -> EventWriter: ...

    @property
    def jobs(self) -> JobWriter: ...

    @property
    def idempotency(self) -> IdempotencyWriter: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Relay(Protocol):
    """Publishes committed rows (outbox jobs, events) to SQS/Kinesis after commit.

    `run_once` publishes what is due and returns how many rows it published. A crash between
    publishing and recording that it published repeats the publish on the next run; the
    duplicate is dropped before any consumer sees it (SQS FIFO deduplication id = job id;
    Kinesis consumers drop positions they have passed).
    """

    name: str

    def run_once(self, limit: int = 500) -> int: ...


# ---------------------------------------------------------------- the bundle


@dataclass
class Platform:
    """The ports a non-CDE process gets from `noncde.platform.bootstrap.build_platform`."""

    events: EventStore
    jobs: JobQueue
    idempotency: IdempotencyStore
    rules: RulesStore
    unit_of_work: Callable[[], UnitOfWork]
    relays: tuple[Relay, ...] = ()
    # Periodic clean-ups (expired idempotency records, dedup records); each returns a count.
    housekeeping: tuple[Callable[[], int], ...] = ()
    readiness: Mapping[str, Callable[[], bool]] = field(default_factory=dict)
    closers: tuple[Callable[[], None], ...] = ()

    def close(self) -> None:
        for close in self.closers:
            close()
