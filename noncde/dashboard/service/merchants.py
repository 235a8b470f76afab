"""noncde.dashboard (non-CDE): administrators' changes to merchants, sent through the merchant
API's staff commands (the API audits each change under the administrator's name as well).

Each change is also recorded in the dashboard's own audit trail (PCI DSS 10.2.1.2, 10.2.1.5):
key rotation and revocation, the raw_card_data capability (`admin.raw_card_api_enable` /
`_disable`: it lets a merchant send card data into the CDE), and webhook redelivery. A newly
issued key is returned to the one page that shows it and is never stored or logged here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from audit.domain import EventType, Outcome
from noncde.dashboard.domain import InvalidInput, NotFound, StaffUser, Unavailable
from noncde.dashboard.ports import ApiCommands, AuditTrail, DeliveryRow, WebhookLog
from noncde.dashboard.service.context import Origin, staff_actor

RESOURCE = "dashboard.merchant"


class MerchantAdmin:
    def __init__(
        self, commands: ApiCommands, audit: AuditTrail, webhooks: WebhookLog | None = None
    ) -> None:
        self.commands = commands
        self.audit = audit
        self.webhooks = webhooks

    def _record(
        self,
        event: EventType,
        user: StaffUser,
        merchant_id: str,
        origin: Origin,
        details: dict[str, Any],
        reason: str | None = None,
    ) -> None:
        self.audit.record(
            event,
            actor=staff_actor(user.username),
            outcome=Outcome.SUCCESS,
            target=merchant_id,
            resource=RESOURCE,
            details=details,
            reason=reason,
            request_id=origin.request_id,
            origin_ip=origin.ip,
        )

    def _owned_key(self, merchant_id: str, key_id: str) -> None:
        keys = {k["id"] for k in self.commands.merchant(merchant_id).get("keys", [])}
        if key_id not in keys:
            raise InvalidInput("That key does not belong to this merchant.", field="key")

    def rotate_key(
        self,
        user: StaffUser,
        merchant_id: str,
        key_id: str,
        *,
        overlap_hours: float,
        origin: Origin,
    ) -> dict[str, Any]:
        """A new key for `key_id` (which keeps working for the overlap); the answer holds the
        new value for the one page that shows it."""
        if not 0 <= overlap_hours <= 720:
            raise InvalidInput("The overlap is 0 to 720 hours.", field="overlap_hours")
        self._owned_key(merchant_id, key_id)
        issued = self.commands.rotate_key(
            key_id, overlap_hours=overlap_hours, actor=user.username, request_id=origin.request_id
        )
        new_key = issued.get("new_key", {})
        self._record(
            EventType.API_KEY_ROTATE,
            user,
            merchant_id,
            origin,
            {"key_id": key_id, "new_key_id": new_key.get("id"), "overlap_hours": overlap_hours},
        )
        return issued

    def revoke_key(
        self, user: StaffUser, merchant_id: str, key_id: str, *, reason: str, origin: Origin
    ) -> dict[str, Any]:
        self._owned_key(merchant_id, key_id)
        text = reason.strip()[:200] or "revoked by staff"
        revoked = self.commands.revoke_key(
            key_id, reason=text, actor=user.username, request_id=origin.request_id
        )
        self._record(
            EventType.API_KEY_REVOKE, user, merchant_id, origin, {"key_id": key_id}, reason=text
        )
        return revoked

    def set_raw_card(
        self,
        user: StaffUser,
        merchant_id: str,
        *,
        granted: bool,
        attestation_expires_on: date | None,
        reason: str,
        origin: Origin,
    ) -> dict[str, Any]:
        """Grant (with the PCI attestation's expiry) or revoke raw_card_data."""
        if granted and attestation_expires_on is None:
            raise InvalidInput(
                "Granting raw_card_data needs the attestation's expiry date.",
                field="attestation_expires_on",
            )
        text = reason.strip()[:200]
        if not text:
            raise InvalidInput("Give the reason (e.g. the attestation reference).", field="reason")
        result = self.commands.set_raw_card(
            merchant_id,
            granted=granted,
            attestation_expires_on=attestation_expires_on,
            reason=text,
            actor=user.username,
            request_id=origin.request_id,
        )
        self._record(
            EventType.RAW_CARD_API_ENABLE if granted else EventType.RAW_CARD_API_DISABLE,
            user,
            merchant_id,
            origin,
            {
                "attestation_expires_on": (
                    attestation_expires_on.isoformat() if attestation_expires_on else None
                )
            },
            reason=text,
        )
        return result

    def deliveries(self, merchant_id: str, endpoint_ids: list[str]) -> list[DeliveryRow]:
        if self.webhooks is None or not endpoint_ids:
            return []
        return self.webhooks.deliveries(endpoint_ids)

    def redeliver(
        self, user: StaffUser, merchant_id: str, delivery_id: int, *, origin: Origin
    ) -> int:
        """Send one of the merchant's deliveries again (a new attempt series, now)."""
        if self.webhooks is None:
            raise Unavailable("The webhook log is not connected to this dashboard.")
        endpoints = [e["id"] for e in self.commands.merchant(merchant_id)["webhook_endpoints"]]
        delivery = next(
            (d for d in self.webhooks.deliveries(endpoints, limit=1000) if d.id == delivery_id),
            None,
        )
        if delivery is None:
            raise NotFound("No such delivery for this merchant.")
        count = self.webhooks.redeliver(delivery.event_id, delivery.endpoint_id)
        self._record(
            EventType.MERCHANT_CONFIG_CHANGE,
            user,
            merchant_id,
            origin,
            {
                "action": "webhook_redeliver",
                "delivery_id": delivery.id,
                "event_id": delivery.event_id,
                "endpoint_id": delivery.endpoint_id,
                "restarted": count,
            },
        )
        return count
