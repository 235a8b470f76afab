"""cde.gateway: the outbox relay: delivers queued token-only events to the non-CDE API.

CDE. At-least-once: an item leaves the outbox only after the API answered 2xx (the API stores
events idempotently by id). While the API is down the loop backs off exponentially (one probe
at a time, capped), so an outage loses nothing and floods nothing; when it comes back the
outbox drains oldest first. An item the API keeps refusing backs off on its own and, after
the give-up age, is kept as `dead` for an operator (logged as an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from cde.gateway.domain import RelayError, relay_backoff_s
from cde.gateway.ports import GatewayStore, PspEventSink
from fincore.logs import get_logger

Clock = Callable[[], float]
_log = get_logger("cde.gateway.relay")


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0
    give_up_after_s: float = 3 * 86400.0
    poll_s: float = 1.0
    batch: int = 50
    lease_s: float = 60.0
    keep_delivered_s: float = 7 * 86400.0
    keep_seen_s: float = 30 * 86400.0
    purge_every_s: float = 3600.0
    counts_every_s: float = 1.0  # the outbox gauges; counting per wake-up cost a query each


class OutboxRelay:
    """Drains the outbox into the API (`run_forever` as a background task)."""

    def __init__(
        self,
        *,
        store: GatewayStore,
        sink: PspEventSink,
        policy: RelayPolicy | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.sink = sink
        self.policy = policy or RelayPolicy()
        self.clock = clock
        self._wake = asyncio.Event()
        self._failures = 0  # consecutive deliveries that found the API unavailable
        self._paused_until = 0.0
        self._last_purge = 0.0
        self._last_count = float("-inf")
        self.counts: dict[str, int] = {"pending": 0, "delivered": 0, "dead": 0}
        self.alive = False

    def wake(self) -> None:
        """A new item was queued: deliver it now (unless the API is being backed off)."""
        self._wake.set()

    async def run_once(self) -> int:
        """Deliver what is due; the number delivered. Stops at the first unavailable answer."""
        now = self.clock()
        if now < self._paused_until:
            return 0
        policy = self.policy
        items = await self.store.claim_due(now, policy.batch, policy.lease_s)
        delivered = 0
        for index, item in enumerate(items):
            try:
                await self.sink.deliver(item.body)
            except RelayError as exc:
                now = self.clock()
                attempts = item.attempts + 1
                dead = now - item.created_at >= policy.give_up_after_s
                delay = relay_backoff_s(attempts, policy.retry_base_s, policy.retry_max_s)
                await self.store.mark_failed(item.id, attempts, now + delay, exc.reason, dead)
                if dead:
                    _log.error("relay_gave_up", event_id=item.event_id, attempts=attempts)
                else:
                    _log.warning(
                        "relay_failed",
                        event_id=item.event_id,
                        attempts=attempts,
                        status=exc.status,
                        reason=exc.reason,
                        retry_in_s=round(delay, 2),
                    )
                if exc.status is None or exc.status >= 500 or exc.status in (408, 429):
                    # The API is down (or overloaded): probe again later with one item, and
                    # hand the rest of this batch back untouched.
                    self._failures += 1
                    pause = relay_backoff_s(self._failures, policy.retry_base_s, policy.retry_max_s)
                    self._paused_until = now + pause
                    await self.store.release([i.id for i in items[index + 1 :]])
                    return delivered
                continue
            await self.store.mark_delivered(item.id, self.clock())
            delivered += 1
            self._failures = 0
            self._paused_until = 0.0
        return delivered

    async def run_forever(self) -> None:
        self.alive = True
        try:
            while True:
                try:
                    delivered = await self.run_once()
                    await self._housekeeping()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the loop must outlive store hiccups
                    _log.error("relay_loop_error", error_type=type(exc).__name__)
                    delivered = 0
                if delivered >= self.policy.batch:
                    continue  # more may be due right now
                timeout = self.policy.poll_s
                if self._paused_until:
                    timeout = max(0.01, min(timeout, self._paused_until - self.clock()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                self._wake.clear()
        finally:
            self.alive = False

    async def _housekeeping(self) -> None:
        now = self.clock()
        if now - self._last_count >= self.policy.counts_every_s:
            self._last_count = now
            self.counts = await self.store.outbox_counts()
        if now - self._last_purge >= self.policy.purge_every_s:
            self._last_purge = now
            removed = await self.store.purge(
                now - self.policy.keep_delivered_s, now - self.policy.keep_seen_s
            )
            if removed:
                _log.info("relay_purged", rows=removed)
