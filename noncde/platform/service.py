"""Non-CDE platform: use cases over the ports shared by every non-CDE process: hot-reloaded
rules, draining a subscription, and the background loop that runs relays and housekeeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from fincore.logs import get_logger
from noncde.platform.domain import RecordedEvent, RuleSet
from noncde.platform.ports import Platform, RulesStore, Subscription


class RulesCache:
    """The active rule set, re-read only when its version changed, checked at most every
    `check_interval_s` (the risk engine calls `current()` on every charge)."""

    def __init__(
        self,
        store: RulesStore,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._rules = store.active()
        self._checked = clock()

    def current(self) -> RuleSet:
        now = self._clock()
        if now - self._checked < self._interval:
            return self._rules
        with self._lock:
            if now - self._checked >= self._interval:
                if self._store.active_version() != self._rules.version:
                    self._rules = self._store.active()
                self._checked = now
        return self._rules


def drain_once(
    subscription: Subscription,
    handler: Callable[[Sequence[RecordedEvent]], None],
    limit: int = 500,
) -> int:
    """Fetch one batch, hand it to `handler`, then store the checkpoint. If the handler raises,
    nothing is committed and the batch is delivered again (at least once)."""
    events = subscription.fetch(limit)
    if not events:
        return 0
    try:
        handler(events)
    except BaseException:
        subscription.rewind()
        raise
    subscription.commit()
    return len(events)


def run_background(
    platform: Platform,
    stop: threading.Event,
    *,
    idle_sleep_s: float = 0.2,
    housekeeping_every_s: float = 300.0,
) -> None:
    """Run the relays until `stop` is set: publish as fast as rows come, sleep when idle, back
    off (up to 30 s) while a broker is failing. Housekeeping runs every few minutes."""
    log = get_logger("platform.background")
    failures = 0
    next_housekeeping = time.monotonic()
    while not stop.is_set():
        published = 0
        try:
            for relay in platform.relays:
                published += relay.run_once()
            failures = 0
        except Exception as exc:  # noqa: BLE001 - a relay failure must not end the loop
            failures += 1
            log.warning("relay failed; retrying", error=type(exc).__name__, failures=failures)
        if time.monotonic() >= next_housekeeping:
            for task in platform.housekeeping:
                try:
                    task()
                except Exception as exc:  # noqa: BLE001 - housekeeping is best effort
                    log.warning("housekeeping failed", error=type(exc).__name__)
            next_housekeeping = time.monotonic() + housekeeping_every_s
        if failures:
            stop.wait(min(30.0, idle_sleep_s * 2**failures))
        elif published == 0:
            stop.wait(idle_sleep_s)
