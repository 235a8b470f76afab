"""cde.gateway: the composition root: picks adapters from allow-listed URL schemes.

CDE. `build_gateway` wires the PSP adapter (the official stripe SDK: sandbox, localstripe or
Stripe by base URL), the vault client, the store (SQLite default, PostgreSQL, or memory), the
API client of the relay and the CDE audit log. Only this module imports `cde.gateway.adapters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.bootstrap import open_audit_log
from audit.domain import AuditUnavailable, EventType
from audit.service import AuditLog
from cde.gateway.config import GatewaySettings
from cde.gateway.ports import (
    AuditTrail,
    CardSource,
    GatewayStore,
    PaymentServiceProvider,
    PspEventSink,
)
from cde.gateway.service import Audited, GatewayService, OutboxRelay, WebhookIntake
from cde.gateway.service.relay import RelayPolicy
from fincore.identity import ServiceCredentials
from fincore.logs import get_logger
from fincore.settings import choose_adapter

Clock = Callable[[], float]
_log = get_logger("cde.gateway")


class GuardedAudit:
    """The audit log, plus whether its last write succeeded (for readiness)."""

    def __init__(self, log: AuditTrail, *, owned: AuditLog | None = None) -> None:
        self._log = log
        self._owned = owned
        self.available = True

    def record(self, event_type: EventType, **kwargs: Any) -> Any:
        try:
            result = self._log.record(event_type, **kwargs)
        except AuditUnavailable:
            self.available = False
            raise
        self.available = True
        return result

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()


def build_store(url: str) -> GatewayStore:
    """The gateway's store for `FINCORE_GATEWAY_DB_URL`."""

    def sql(chosen: str) -> GatewayStore:
        from cde.gateway.adapters.sql import SqlGatewayStore

        return SqlGatewayStore.from_url(chosen)

    def memory(_chosen: str) -> GatewayStore:
        from cde.gateway.adapters.memory import MemoryGatewayStore

        return MemoryGatewayStore()

    return choose_adapter(
        "FINCORE_GATEWAY_DB_URL", url, {"sqlite": sql, "postgresql": sql, "memory": memory}
    )


def build_psp(settings: GatewaySettings) -> PaymentServiceProvider:
    """The PSP adapter for `FINCORE_GATEWAY_PSP_URL` (https, or http on loopback)."""

    def stripe_sdk(url: str) -> PaymentServiceProvider:
        from cde.gateway.adapters.stripe import StripePaymentProvider

        return StripePaymentProvider(
            api_key=settings.psp_secret_key,
            webhook_secret=settings.psp_webhook_secret,
            api_base=url,
            connect_timeout_s=settings.psp_connect_timeout_s,
            read_timeout_s=settings.psp_read_timeout_s,
            webhook_tolerance_s=settings.webhook_tolerance_s,
        )

    return choose_adapter(
        "FINCORE_GATEWAY_PSP_URL", settings.psp_url, {"https": stripe_sdk, "http": stripe_sdk}
    )


@dataclass
class GatewayRuntime:
    """Everything the gateway runs on; `start()` starts the relay, `close()` releases all."""

    settings: GatewaySettings
    store: GatewayStore
    psp: PaymentServiceProvider
    cards: CardSource
    sink: PspEventSink
    audit: GuardedAudit
    service: GatewayService
    intake: WebhookIntake
    relay: OutboxRelay
    executor: ThreadPoolExecutor
    _relay_task: asyncio.Task[None] | None = field(default=None)

    async def start(self) -> None:
        if self.settings.relay_enabled and self._relay_task is None:
            self._relay_task = asyncio.create_task(self.relay.run_forever(), name="gateway-relay")
            self.relay.wake()

    def relay_running(self) -> bool:
        if not self.settings.relay_enabled:
            return True
        return self._relay_task is not None and not self._relay_task.done()

    async def close(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
            self._relay_task = None
        await self.cards.close()
        await self.sink.close()
        await self.store.close()
        self.executor.shutdown(wait=True)
        self.audit.close()


def build_gateway(
    settings: GatewaySettings,
    *,
    credentials: ServiceCredentials | None,
    ca_file: Path | None,
    component: str = "gateway",
    audit: AuditTrail | None = None,
    psp: PaymentServiceProvider | None = None,
    store: GatewayStore | None = None,
    clock: Clock = time.time,
) -> GatewayRuntime:
    """Wire the gateway from its settings (audit: the CDE log unless one is given)."""
    from cde.gateway.adapters.http import HttpCardSource, HttpPspEventSink

    # httpx and the stripe SDK log every request's URL at INFO; the gateway's access log
    # (route templates only) and its audit records already say what was called, and each
    # line costs CPU on the payment path.
    for noisy in ("httpx", "stripe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if audit is None:
        log = open_audit_log("cde", component)
        guarded = GuardedAudit(log, owned=log)
    else:
        guarded = GuardedAudit(audit)
    chosen_store = store if store is not None else build_store(settings.db_url)
    chosen_psp = psp if psp is not None else build_psp(settings)
    cards = HttpCardSource(
        settings.vault_url,
        credentials=credentials,
        ca_file=ca_file,
        timeout_s=settings.vault_timeout_s,
    )
    sink = HttpPspEventSink(
        settings.api_url,
        credentials=credentials,
        ca_file=ca_file,
        timeout_s=settings.relay_timeout_s,
    )
    executor = ThreadPoolExecutor(
        max_workers=settings.psp_threads, thread_name_prefix="gateway-psp"
    )
    audited = Audited(guarded, executor)
    service = GatewayService(
        psp=chosen_psp, cards=cards, store=chosen_store, audited=audited, clock=clock
    )
    relay = OutboxRelay(
        store=chosen_store,
        sink=sink,
        policy=RelayPolicy(
            retry_base_s=settings.relay_retry_base_s,
            retry_max_s=settings.relay_retry_max_s,
            give_up_after_s=settings.relay_give_up_after_s,
            poll_s=settings.relay_poll_s,
            batch=settings.relay_batch,
            lease_s=max(30.0, settings.relay_timeout_s * 3),
        ),
        clock=clock,
    )
    intake = WebhookIntake(
        psp=chosen_psp, store=chosen_store, audited=audited, on_queued=relay.wake, clock=clock
    )
    return GatewayRuntime(
        settings=settings,
        store=chosen_store,
        psp=chosen_psp,
        cards=cards,
        sink=sink,
        audit=guarded,
        service=service,
        intake=intake,
        relay=relay,
        executor=executor,
    )
