"""psp_sandbox: the composition root: picks adapters from allow-listed URL schemes.

Outside both zones. Builds the store (SQLite), clock, settlement sink, webhook transport and the
use cases, and owns the background tasks: webhook delivery, session expiry, the daily settlement
job and (when FINCORE_SANDBOX_SFTP_PORT is set) the read-only SFTP server for settlement files.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fincore.logs import get_logger
from fincore.settings import choose_adapter
from psp_sandbox.adapters import sftp
from psp_sandbox.adapters.clock import OffsetClock
from psp_sandbox.adapters.files import CsvSettlementSink
from psp_sandbox.adapters.http import HttpxWebhookTransport
from psp_sandbox.adapters.sqlite import SqliteSandboxStore
from psp_sandbox.config import SandboxSettings
from psp_sandbox.domain import FeeModel
from psp_sandbox.ports import SandboxStore, WebhookEndpoint
from psp_sandbox.service import (
    DeliveryOptions,
    FaultInjector,
    Idempotency,
    Sandbox,
    SandboxOptions,
    WebhookDispatcher,
)

log = get_logger("psp_sandbox")


def build_store(settings: SandboxSettings) -> SandboxStore:
    store: SandboxStore = choose_adapter(
        "FINCORE_SANDBOX_DATABASE_URL",
        settings.database_url,
        {"sqlite": SqliteSandboxStore.from_url},
    )
    return store


def build_sandbox(
    settings: SandboxSettings, store: SandboxStore, *, register_endpoints: bool = True
) -> Sandbox:
    credentials = settings.credentials
    sandbox = Sandbox(
        store=store,
        clock=OffsetClock(),
        sink=CsvSettlementSink(settings.settlements_dir),
        options=SandboxOptions(
            public_url=settings.public_url,
            api_version=settings.api_version,
            fingerprint_key=credentials.fingerprint_key.reveal().encode(),
            fee=FeeModel(settings.fee_bps, settings.fee_fixed),
            min_session_ttl_s=settings.session_min_ttl_s,
            default_session_ttl_s=settings.session_ttl_s,
            max_session_ttl_s=max(86400, settings.session_ttl_s),
        ),
        faults=FaultInjector(),
    )
    if not register_endpoints:
        return sandbox
    sandbox.set_endpoints(
        "config",
        [
            WebhookEndpoint(
                id=f"we_config_{index}",
                url=url,
                secret=credentials.webhook_secret.reveal(),
                events=settings.webhook_events,
                source="config",
            )
            for index, url in enumerate(settings.webhook_urls)
        ],
    )
    return sandbox


@dataclass
class Runtime:
    """Everything one sandbox process runs."""

    settings: SandboxSettings
    store: SandboxStore
    sandbox: Sandbox
    idempotency: Idempotency
    dispatcher: WebhookDispatcher
    transport: HttpxWebhookTransport
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.dispatcher.run(), name="webhooks"))
        self.tasks.append(
            asyncio.create_task(
                _every(1.0, self.sandbox.expire_due_sessions, "session_expiry"), name="expiry"
            )
        )
        self.tasks.append(
            asyncio.create_task(
                _every(3600.0, self.idempotency.purge, "idempotency_purge"), name="purge"
            )
        )
        if self.settings.settlement_job:
            self.tasks.append(
                asyncio.create_task(
                    _every(
                        self.settings.settlement_interval_s,
                        self.sandbox.write_missing_settlements,
                        "settlement_job",
                    ),
                    name="settlements",
                )
            )
        if self.settings.sftp_port:
            self.tasks.append(asyncio.create_task(self._sftp(), name="sftp"))

    async def _sftp(self) -> None:
        host_key, _client_key, authorized = sftp.ensure_keys(self.settings.sftp_keys_dir)
        self.settings.settlements_dir.mkdir(parents=True, exist_ok=True)
        await sftp.serve(
            self.settings.settlements_dir, self.settings.sftp_port, host_key, authorized, "fincore"
        )

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        await self.transport.aclose()
        self.store.close()


async def _every(interval_s: float, job: Callable[[], object], name: str) -> None:
    while True:
        try:
            result = job()
            if isinstance(result, Awaitable):
                await result
        except Exception as exc:  # noqa: BLE001 - a failing round is logged, the loop goes on
            log.error("background_job_failed", job=name, error_type=type(exc).__name__)
        await asyncio.sleep(interval_s)


def build_runtime(settings: SandboxSettings) -> Runtime:
    store = build_store(settings)
    sandbox = build_sandbox(settings, store)
    transport = HttpxWebhookTransport(
        timeout_s=settings.webhook_timeout_s, ca_file=settings.ca_file
    )
    dispatcher = WebhookDispatcher(
        store,
        transport,
        DeliveryOptions(
            retry_base_s=settings.webhook_retry_base_s,
            retry_max_s=settings.webhook_retry_max_s,
            give_up_after_s=settings.webhook_give_up_after_s,
            concurrency=settings.webhook_concurrency,
        ),
    )
    sandbox.on_enqueued = dispatcher.wake
    return Runtime(
        settings=settings,
        store=store,
        sandbox=sandbox,
        idempotency=Idempotency(store, 86400),
        dispatcher=dispatcher,
        transport=transport,
    )
