"""psp_sandbox: delivery of queued webhooks, signed like Stripe's, retried with backoff.

Outside both zones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from fincore.logs import get_logger
from psp_sandbox.domain import (
    retry_delay,
    sign_payload,
)
from psp_sandbox.ports import (
    Delivery,
    SandboxStore,
    WebhookTransport,
    WebhookTransportError,
)


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0
    give_up_after_s: float = 3 * 86400.0
    concurrency: int = 4
    poll_s: float = 1.0


class WebhookDispatcher:
    """Delivers queued webhooks: signs each attempt with the current time (Stripe's scheme),
    counts any 2xx as acknowledged and retries anything else with exponential backoff until
    `give_up_after_s`. The queue is durable: deliveries pending at a crash resume on restart."""

    def __init__(
        self,
        store: SandboxStore,
        transport: WebhookTransport,
        options: DeliveryOptions,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._transport = transport
        self._options = options
        self._now = now
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self.log = get_logger("webhooks")

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        # Held (out-of-order) groups cannot complete after a restart: release them.
        for delivery in self._store.held_deliveries():
            self._store.set_delivery(delivery.id, state="pending", next_attempt_at=self._now())
        try:
            while True:
                free = self._options.concurrency - len(self._inflight)
                if free > 0:
                    for delivery in self._store.due_deliveries(
                        self._now(), free, list(self._inflight)
                    ):
                        task = asyncio.create_task(self._attempt(delivery))
                        self._inflight[delivery.id] = task
                        task.add_done_callback(self._finisher(delivery.id))
                next_due = self._store.next_due()
                wait = self._options.poll_s
                if next_due is not None:
                    wait = max(0.0, min(wait, next_due - self._now()))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.005))
        finally:
            for task in self._inflight.values():
                task.cancel()

    def _finisher(self, delivery_id: int) -> Callable[[asyncio.Task[None]], None]:
        def finished(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(delivery_id, None)
            self._wake.set()

        return finished

    async def _attempt(self, delivery: Delivery) -> None:
        at = self._now()
        timestamp = int(at)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "FinCore-PSP-Sandbox/1.0 (Stripe-compatible webhooks)",
            "Stripe-Signature": sign_payload(delivery.secret, timestamp, delivery.payload),
        }
        status: int | None = None
        error: str | None = None
        try:
            status = await self._transport.post(delivery.url, delivery.payload, headers)
        except WebhookTransportError as exc:
            error = str(exc)[:200]
        except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt, never a crash
            error = type(exc).__name__
        delivered = status is not None and 200 <= status < 300
        attempts = delivery.attempts + 1
        give_up = not delivered and at - delivery.created >= self._options.give_up_after_s
        next_at = None
        if not delivered and not give_up:
            next_at = at + retry_delay(
                attempts, self._options.retry_base_s, self._options.retry_max_s
            )
        self._store.record_attempt(
            delivery.id,
            at=at,
            status=status,
            error=error,
            delivered=delivered,
            next_attempt_at=next_at,
            give_up=give_up,
        )
        self.log.info(
            "webhook_attempt",
            event_id=delivery.event_id,
            endpoint=delivery.endpoint_id,
            attempt=attempts,
            status=status,
            error=error,
            delivered=delivered,
        )
