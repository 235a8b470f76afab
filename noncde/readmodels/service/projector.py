"""noncde.readmodels (non-CDE): the projector: feeds a projection (PaymentDB, LedgerDB) from the
event store in batches, reports its lag, and rebuilds a projection from zero.

At least once, exactly once in effect: each batch is read from the projection's own stored
position and applied in one transaction with the new position, so a crash (SIGKILL) at any
point replays at most the uncommitted batch, which the projection then applies once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fincore.logs import get_logger
from noncde.platform.ports import EventReader
from noncde.readmodels.ports import Projection

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Lag:
    """How far a projection trails the event store."""

    position: int
    head: int
    events: int
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "position": self.position,
            "head": self.head,
            "lag_events": self.events,
            "lag_seconds": round(self.seconds, 3),
        }


@dataclass
class ProjectorStats:
    """Counters for metrics (this process only)."""

    applied: int = 0
    batches: int = 0
    failures: int = 0
    last_batch_s: float = 0.0


class Projector:
    """Catches one projection up with the event store, `batch_size` events per transaction."""

    def __init__(
        self,
        events: EventReader,
        projection: Projection,
        *,
        batch_size: int = 1000,
        clock: Clock = time.time,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.events = events
        self.projection = projection
        self.batch_size = batch_size
        self.clock = clock
        self.stats = ProjectorStats()
        self._log = get_logger(f"readmodels.{projection.name}")

    def step(self, until: int | None = None) -> int:
        """Apply one batch after the projection's position; returns the events read (0: caught
        up, or `until` reached)."""
        position = self.projection.position()
        limit = self.batch_size
        if until is not None:
            limit = min(limit, until - position)
            if limit <= 0:
                return 0
        batch = self.events.read_all(position + 1, limit)
        if not batch:
            return 0
        started = time.perf_counter()
        applied = self.projection.apply(batch)
        self.stats.last_batch_s = time.perf_counter() - started
        self.stats.applied += applied
        self.stats.batches += 1
        return len(batch)

    def catch_up(self, until: int | None = None) -> int:
        """Apply batches until caught up (or at `until`); returns the events read."""
        total = 0
        while True:
            read = self.step(until)
            if read == 0:
                return total
            total += read

    def lag(self) -> Lag:
        position = self.projection.position()
        head = self.events.head_position()
        seconds = 0.0
        if head > position:
            oldest = self.events.read_all(position + 1, 1)
            if oldest:
                seconds = max(0.0, self.clock() - oldest[0].recorded_at.timestamp())
        return Lag(position, head, max(0, head - position), seconds)

    def run(
        self, stop: threading.Event, *, idle_s: float = 0.2, max_backoff_s: float = 30.0
    ) -> None:
        """Project until `stop` is set: batch after batch while behind, poll every `idle_s`
        when caught up, back off (up to `max_backoff_s`) while a database is failing."""
        failures = 0
        while not stop.is_set():
            try:
                read = self.step()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a failing batch is retried, never fatal
                failures += 1
                self.stats.failures += 1
                self._log.warning(
                    "projection batch failed; retrying",
                    error=type(exc).__name__,
                    detail=str(exc)[:300],
                    failures=failures,
                )
                stop.wait(min(max_backoff_s, idle_s * 2**failures))
                continue
            if read == 0:
                stop.wait(idle_s)


@dataclass(frozen=True, slots=True)
class RebuildResult:
    projection: str
    position: int
    events: int
    seconds: float
    digest: dict[str, str]
    finished_at: str

    def to_dict(self) -> dict[str, object]:
        return {
            "projection": self.projection,
            "position": self.position,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
            "digest": self.digest,
            "finished_at": self.finished_at,
        }


def rebuild(
    events: EventReader,
    fresh: Projection,
    *,
    until: int | None = None,
    batch_size: int = 1000,
) -> RebuildResult:
    """Replay the event store from position 1 (up to `until`) into `fresh`, an empty
    projection in a new database. Refuses a projection that already holds events."""
    if fresh.position() != 0:
        raise ValueError("rebuild needs an empty projection (a fresh database)")
    projector = Projector(events, fresh, batch_size=batch_size)
    started = time.perf_counter()
    read = projector.catch_up(until)
    elapsed = time.perf_counter() - started
    return RebuildResult(
        projection=fresh.name,
        position=fresh.position(),
        events=read,
        seconds=elapsed,
        digest=fresh.digest(),
        finished_at=datetime.now(UTC).isoformat(),
    )
