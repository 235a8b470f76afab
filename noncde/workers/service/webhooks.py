"""noncde.workers (non-CDE): merchant webhooks: the merchants' events, signed, delivered to
their endpoints with retries for up to 24 hours, every attempt logged, redeliverable by hand.

Two steps: the fan-out reads the event store after its stored position and writes one delivery
per (event, endpoint that wants it) together with the new position; the dispatcher leases due
deliveries and sends them concurrently. A slow or dead endpoint cannot hold up the others:
every attempt has a timeout, at most `per_endpoint` attempts of one endpoint are in flight, and
new deliveries are claimed as soon as any slot frees up (no batch waits for its slowest send).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from audit.domain import EventType as AuditEvent
from audit.domain import Outcome
from fincore.logs import get_logger
from noncde.api.domain import EVENT_CLASSES, event_object
from noncde.workers.domain.webhooks import (
    SIGNATURE_HEADER,
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryStatus,
    DirectoryUnavailable,
    RetrySchedule,
    signature_header,
)
from noncde.workers.ports import (
    AuditTrail,
    DeliveryStore,
    EndpointDirectory,
    EventFeed,
    WebhookSender,
)

Observer = Callable[[str, str, float], None]


def _ignore(_kind: str, _outcome: str, _seconds: float) -> None:
    return None


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    timeout_s: float = 10.0
    concurrency: int = 32
    per_endpoint: int = 4
    batch: int = 500
    poll_s: float = 0.5
    livemode: bool = False

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is ours: its attempt plus a margin."""
        return self.timeout_s * 2 + 30


class WebhookDispatcher:
    """Fans events out to deliveries and sends them (see the module docstring)."""

    def __init__(
        self,
        feed: EventFeed,
        directory: EndpointDirectory,
        store: DeliveryStore,
        sender: WebhookSender,
        *,
        schedule: RetrySchedule | None = None,
        settings: WebhookSettings | None = None,
        audit: AuditTrail | None = None,
        observe: Observer = _ignore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.feed = feed
        self.directory = directory
        self.store = store
        self.sender = sender
        self.schedule = schedule or RetrySchedule()
        self.settings = settings or WebhookSettings()
        self.audit = audit
        self.observe = observe
        self.clock = clock
        self.log = get_logger("workers.webhooks")
        self.in_flight: dict[str, int] = {}

    # ------------------------------------------------------------ fan-out

    def fan_out_once(self) -> int:
        """Turn the next batch of events into deliveries; returns the events read (0: none).

        Only the published language's events of a merchant are delivered (internal streams,
        such as settlement fees, have no merchant and are skipped). If the directory cannot
        be read, nothing is written and the batch is read again next time.
        """
        position = self.store.position()
        events = self.feed.read_all(position + 1, self.settings.batch)
        if not events:
            return 0
        rows: list[dict[str, object]] = []
        now = self.clock()
        for event in events:
            if not event.merchant_id or event.type not in EVENT_CLASSES:
                continue
            endpoints = self.directory.endpoints(event.merchant_id)
            wanted = [e for e in endpoints if e.wants(event.type)]
            if not wanted:
                continue
            payload = json.dumps(
                event_object(event, self.settings.livemode), separators=(",", ":"), sort_keys=True
            )
            for endpoint in wanted:
                rows.append(
                    {
                        "event_id": event.id,
                        "event_position": event.position,
                        "endpoint_id": endpoint.id,
                        "merchant_id": event.merchant_id,
                        "event_type": event.type,
                        "payload": payload,
                        "next_attempt_at": now,
                    }
                )
        self.store.fan_out(rows, events[-1].position)
        return len(events)

    # ------------------------------------------------------------ delivery

    async def deliver(self, delivery: Delivery) -> AttemptResult:
        """One attempt for one delivery, logged, with the next attempt scheduled."""
        endpoint = await asyncio.to_thread(self.directory.endpoint, delivery.endpoint_id)
        now = self.clock()
        if endpoint is None or endpoint.disabled:
            result = AttemptResult.failed("the endpoint no longer exists or is disabled", 0.0)
            await asyncio.to_thread(self.store.record, delivery, result, now, None)
            self.observe("webhooks.delivery", "endpoint_gone", 0.0)
            return result
        payload = await asyncio.to_thread(self._payload, delivery)
        timestamp = int(now)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "FinCore-Webhooks/1.0",
            SIGNATURE_HEADER: signature_header(endpoint.secret.reveal(), timestamp, payload),
            "FinCore-Event-Id": delivery.event_id,
            "FinCore-Delivery": str(delivery.id),
            "FinCore-Attempt": str(delivery.attempts + 1),
        }
        result = await self.sender.send(endpoint.url, payload, headers, self.settings.timeout_s)
        done = self.clock()
        next_at = None
        if not result.ok:
            first = delivery.first_attempt_at or now
            next_at = self.schedule.next_attempt(first, delivery.attempts + 1, done)
        kept = await asyncio.to_thread(self.store.record, delivery, result, done, next_at)
        outcome = "delivered" if result.ok else ("retry" if next_at else "gave_up")
        self.observe("webhooks.delivery", outcome if kept else "lease_lost", result.duration_ms)
        return result

    def _payload(self, delivery: Delivery) -> bytes:
        return self.store.payload(delivery.id).encode("utf-8")

    async def run(self, stop: threading.Event) -> None:
        """Fan out and deliver until `stop` is set; then wait (up to the timeout) for the
        attempts in flight, so each ends logged."""
        tasks: set[asyncio.Task[AttemptResult]] = set()
        failures = 0
        while not stop.is_set():
            try:
                read = await asyncio.to_thread(self.fan_out_once)
                claimed = await self._claim(tasks)
                failures = 0
            except DirectoryUnavailable as exc:
                failures += 1
                self.log.warning("webhook endpoints unavailable", error=str(exc)[:200])
                read = claimed = 0
            except Exception as exc:  # noqa: BLE001 - the loop must survive a database hiccup
                failures += 1
                self.log.warning("webhook loop failed", error=type(exc).__name__)
                read = claimed = 0
            if failures:
                await asyncio.sleep(min(30.0, self.settings.poll_s * 2**failures))
            elif not read and not claimed:
                if tasks:
                    await asyncio.wait(tasks, timeout=self.settings.poll_s)
                else:
                    await asyncio.sleep(self.settings.poll_s)
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.timeout_s + 5)

    async def _claim(self, tasks: set[asyncio.Task[AttemptResult]]) -> int:
        free = self.settings.concurrency - len(tasks)
        if free <= 0:
            return 0
        full = [e for e, n in self.in_flight.items() if n >= self.settings.per_endpoint]
        due = await asyncio.to_thread(
            self.store.claim_due, self.clock(), free, self.settings.lease_s, full
        )
        started = 0
        for delivery in due:
            if self.in_flight.get(delivery.endpoint_id, 0) >= self.settings.per_endpoint:
                await asyncio.to_thread(self.store.release, delivery, self.clock())
                continue
            self.in_flight[delivery.endpoint_id] = self.in_flight.get(delivery.endpoint_id, 0) + 1
            task = asyncio.create_task(self._guarded(delivery))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            started += 1
        return started

    async def _guarded(self, delivery: Delivery) -> AttemptResult:
        try:
            return await self.deliver(delivery)
        except Exception as exc:  # noqa: BLE001 - one delivery's failure is logged, never fatal
            self.log.warning("delivery failed", delivery=delivery.id, error=type(exc).__name__)
            return AttemptResult.failed(type(exc).__name__, 0.0)
        finally:
            left = self.in_flight.get(delivery.endpoint_id, 1) - 1
            if left <= 0:
                self.in_flight.pop(delivery.endpoint_id, None)
            else:
                self.in_flight[delivery.endpoint_id] = left

    async def drain(self, *, max_rounds: int = 1000) -> int:
        """Fan out and deliver everything due now, waiting for each round (CLI and tests)."""
        sent = 0
        for _ in range(max_rounds):
            self.fan_out_once()
            due = self.store.claim_due(
                self.clock(), self.settings.concurrency, self.settings.lease_s, []
            )
            if not due:
                return sent
            tasks = {asyncio.create_task(self._guarded(d)) for d in due}
            await asyncio.wait(tasks)
            sent += len(due)
        return sent

    # ------------------------------------------------------------ operators

    def redeliver(self, event_id: str, endpoint_id: str | None, *, actor: str) -> int:
        """Start a new attempt series now for an event's deliveries (all its endpoints, or
        one). Audited as an administrative action before anything changes."""
        if self.audit is not None:
            self.audit.record(
                AuditEvent.ADMIN_ACTION,
                actor=actor,
                outcome=Outcome.SUCCESS,
                target=event_id,
                resource="webhooks",
                details={"action": "redeliver", "endpoint": endpoint_id},
            )
        return self.store.redeliver(event_id, endpoint_id, self.clock())

    def log_of(self, event_id: str) -> list[tuple[Delivery, list[Attempt]]]:
        return [(d, self.store.attempts(d.id)) for d in self.store.deliveries(event_id=event_id)]

    def counts(self) -> Mapping[str, int]:
        return self.store.counts()


def delivery_summary(delivery: Delivery) -> dict[str, object]:
    return {
        "delivery": delivery.id,
        "event": delivery.event_id,
        "type": delivery.event_type,
        "endpoint": delivery.endpoint_id,
        "status": str(delivery.status),
        "series": delivery.series,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at
        if delivery.status is DeliveryStatus.PENDING
        else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
    }
