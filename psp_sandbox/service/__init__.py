"""psp_sandbox: the use cases of the PSP stand-in; talks to ports only.

Outside both zones. `Sandbox` implements the Stripe subset FinCore uses with Stripe's objects,
state machine and errors; `Idempotency` replays responses like Stripe's Idempotency-Key;
`FaultInjector` holds the chaos plan; `WebhookDispatcher` delivers signed events from the durable
queue with backoff until a 2xx.
"""

from psp_sandbox.service.faults import ApiFaults, FaultInjector
from psp_sandbox.service.idempotency import Idempotency
from psp_sandbox.service.psp import (
    CURRENT_REQUEST,
    RequestInfo,
    Sandbox,
    SandboxOptions,
    SessionClosed,
    format_amount,
)
from psp_sandbox.service.webhooks import DeliveryOptions, WebhookDispatcher

__all__ = [
    "CURRENT_REQUEST",
    "ApiFaults",
    "DeliveryOptions",
    "FaultInjector",
    "Idempotency",
    "RequestInfo",
    "Sandbox",
    "SandboxOptions",
    "SessionClosed",
    "WebhookDispatcher",
    "format_amount",
]
