"""cde.gateway: the use cases: payments (`GatewayService`), inbound PSP webhooks
(`WebhookIntake`) and the outbox relay to the non-CDE API (`OutboxRelay`)."""

from cde.gateway.service.common import Audited, Caller
from cde.gateway.service.payments import GatewayService
from cde.gateway.service.relay import OutboxRelay
from cde.gateway.service.webhooks import WebhookIntake, WebhookReceipt

__all__ = [
    "Audited",
    "Caller",
    "GatewayService",
    "OutboxRelay",
    "WebhookIntake",
    "WebhookReceipt",
]
