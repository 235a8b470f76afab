"""noncde.api (non-CDE): the projector that keeps the API's payment read model up to date.

It reads the event store's global feed from the read model's own position and applies it in
batches. It runs in a background thread of every API process (the read model's position lock
makes concurrent projectors safe) and is woken right after the API commits a write, so a list
normally shows a new object within milliseconds; the poll interval bounds the lag for events
written by other processes (the job worker, the relay of PSP events).
"""

from __future__ import annotations

import threading

from fincore.logs import get_logger
from noncde.api.ports import PaymentProjection
from noncde.platform.ports import EventReader


class Projector:
    """Applies the event store's feed to the payment read model."""

    def __init__(
        self,
        events: EventReader,
        projection: PaymentProjection,
        *,
        batch: int = 500,
        poll_s: float = 0.2,
        gather_s: float = 0.02,
    ) -> None:
        self.events = events
        self.projection = projection
        self.batch = batch
        self.poll_s = poll_s
        # After a wake-up, wait this long so that a burst of writes is applied as one batch
        # (one read-model transaction instead of one per request, under load).
        self.gather_s = gather_s
        self._wake = threading.Event()
        self._log = get_logger("api.projector")

    def run_once(self) -> int:
        """Apply everything committed so far; returns how many events were new here."""
        applied = 0
        while True:
            position = self.projection.position()
            events = self.events.read_all(position + 1, self.batch)
            if not events:
                return applied
            applied += self.projection.apply(events)
            if len(events) < self.batch:
                return applied

    def lag(self) -> int:
        """Events committed to the store and not yet applied here."""
        return max(0, self.events.head_position() - self.projection.position())

    def poke(self) -> None:
        """Wake the background loop now (called after every committed write)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """The background loop: until `stop` is set."""
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            if self.gather_s:
                stop.wait(self.gather_s)
            try:
                self.run_once()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a failing batch is retried, never fatal
                failures += 1
                self._log.warning("projection failed; retrying", error=type(exc).__name__)
            self._wake.wait(min(30.0, self.poll_s * 2**failures) if failures else self.poll_s)

    def stop(self, stop: threading.Event) -> None:
        stop.set()
        self._wake.set()
