"""cde.gateway: inbound PSP webhooks: verify, drop duplicates, normalize, queue for the API.

CDE. A webhook is trusted only after its signature and timestamp (300 s tolerance) check out;
every failure is audited (PCI DSS 10.2.1.4). A PSP event id is accepted once: the dedup record
and the outbox row are written in one transaction, so a redelivery (or a replay inside the
tolerance window) is dropped, and audited, and an API outage loses nothing. What is queued is
a normalized, token-only event built from an allow-list of fields, with anything card-like
removed (PCI DSS 3.2.1): the raw PSP object never leaves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from audit.domain import ActorType, EventType, Outcome
from cde.gateway.domain import (
    REFERENCE_PATTERNS,
    CheckoutStatus,
    Operation,
    PaymentStatus,
    PspEvent,
    RelayLinks,
    WebhookVerificationError,
    relay_event,
)
from cde.gateway.ports import GatewayStore, PaymentServiceProvider
from cde.gateway.service.common import Audited, Caller
from fincore.logs import get_logger

Clock = Callable[[], float]
_log = get_logger("cde.gateway.webhooks")
GATEWAY = Caller("gateway")


@dataclass(frozen=True, slots=True)
class WebhookReceipt:
    """What became of one delivery: `duplicate` (seen before, dropped) and `relayed` (queued
    for the API; False for event types the API does not need or that are not ours)."""

    psp_event_id: str
    duplicate: bool
    relayed: bool


def _ours(kind: str, value: str | None) -> str | None:
    return value if value is not None and REFERENCE_PATTERNS[kind].match(value) else None


class WebhookIntake:
    """Receives PSP webhooks for the gateway's `POST /v1/psp/webhooks`."""

    def __init__(
        self,
        *,
        psp: PaymentServiceProvider,
        store: GatewayStore,
        audited: Audited,
        on_queued: Callable[[], None] = lambda: None,
        clock: Clock = time.time,
    ) -> None:
        self.psp = psp
        self.store = store
        self.audited = audited
        self.on_queued = on_queued
        self.clock = clock

    async def receive(
        self, payload: bytes, signature: str | None, origin_ip: str | None, request_id: str | None
    ) -> WebhookReceipt:
        """Verify and accept one delivery. Raises `WebhookVerificationError` (audited; answer
        4xx, never trust the body), `PspError` when a checkout event could not be completed
        with the PSP's data (answer 5xx: the PSP redelivers) and the store's errors."""
        try:
            event = self.psp.parse_webhook(payload, signature)
        except WebhookVerificationError as exc:
            sender = Caller(
                "unknown", request_id=request_id, origin_ip=origin_ip, kind=ActorType.ANONYMOUS
            )
            await self.audited.arecord(
                EventType.WEBHOOK_VERIFICATION_FAILURE,
                sender,
                Outcome.FAILURE,
                target=None,
                resource="psp.webhook",
                reason=exc.code or "invalid",
                details={"problem": exc.message},
            )
            raise
        if await self.store.event_seen(event.id):
            # A replay (or a redelivery) of an event already accepted: nothing is applied, the
            # 200 stops the PSP's retries, and the refused delivery is audited like a failed
            # verification (PCI DSS 10.2.1.4; tests/security: replayed webhooks).
            await self.audited.arecord(
                EventType.WEBHOOK_VERIFICATION_FAILURE,
                Caller("psp", request_id=request_id, origin_ip=origin_ip),
                Outcome.FAILURE,
                target=None,
                resource="psp.webhook",
                reason="duplicate_event",
                details={"psp_event_id": event.id[:100]},
            )
            return WebhookReceipt(event.id, duplicate=True, relayed=False)
        caller = replace(GATEWAY, request_id=request_id)
        links = await self._links(event, caller)
        await self._apply(event, links)
        body = relay_event(event, links) if self._ours(links) else None
        relay = None
        if body is not None:
            relay = (str(body["id"]), json.dumps(body, sort_keys=True, separators=(",", ":")))
        accepted = await self.store.accept_event(event.id, event.type, self.clock(), relay)
        if accepted and relay is not None:
            self.on_queued()
        return WebhookReceipt(event.id, duplicate=not accepted, relayed=accepted and bool(relay))

    @staticmethod
    def _ours(links: RelayLinks) -> bool:
        # Only events about our own references reach the API (a PSP account may serve others).
        return bool(links.charge_id or links.session_id or links.refund_id)

    async def _links(self, event: PspEvent, caller: Caller) -> RelayLinks:
        store = self.store
        if event.payment is not None:
            payment = event.payment
            charge_id = session_id = None
            charge = _ours("charge_id", payment.reference)
            if charge is not None and await store.payment(charge) is not None:
                charge_id = charge
            session = _ours("session_id", payment.reference)
            if session is not None and await store.session(session) is not None:
                session_id = session
            if charge_id is None and payment.psp_reference:
                linked = await store.payment_by_psp_reference(payment.psp_reference)
                charge_id = linked.charge_id if linked else None
            return RelayLinks(charge_id=charge_id, session_id=session_id)
        if event.refund is not None:
            refund = event.refund
            refund_id = _ours("refund_id", refund.reference)
            record = await store.refund(refund_id) if refund_id else None
            if record is None and refund.psp_reference:
                record = await store.refund_by_psp_reference(refund.psp_reference)
            charge_id = record.charge_id if record else None
            if charge_id is None and refund.payment_reference:
                paid = await store.payment_by_psp_reference(refund.payment_reference)
                charge_id = paid.charge_id if paid else None
            return RelayLinks(
                charge_id=charge_id, refund_id=record.refund_id if record else refund_id
            )
        if event.checkout_session is not None:
            checkout = event.checkout_session
            session_id = _ours("session_id", checkout.reference)
            known = await store.session(session_id) if session_id else None
            if known is None:
                known = await store.session_by_psp_reference(checkout.psp_reference)
            if known is None:
                return RelayLinks()
            pi = checkout.payment_reference
            if event.type != "checkout.session.completed" or pi is None:
                return RelayLinks(session_id=known.session_id)
            # The API records the payment from this event: it needs the PSP token and display
            # data of the card used (never more), and whether the money was taken.
            intent = await self.audited.psp_call(
                Operation.retrieve,
                known.session_id,
                caller,
                lambda: self.psp.retrieve(pi),
                merchant_id=known.merchant_id,
                details={"lookup": "retrieve"},
            )
            method = None
            pm = intent.payment_method
            if pm is not None:
                method = await self.audited.psp_call(
                    Operation.retrieve_payment_method,
                    known.session_id,
                    caller,
                    lambda: self.psp.retrieve_payment_method(pm),
                    merchant_id=known.merchant_id,
                )
            status = intent.status if intent.status is not PaymentStatus.unknown else None
            return RelayLinks(
                session_id=known.session_id, payment_method=method, payment_status=status
            )
        return RelayLinks()

    async def _apply(self, event: PspEvent, links: RelayLinks) -> None:
        """Keep the gateway's session records current (complete and expired are final)."""
        session = event.checkout_session
        if session is None or links.session_id is None:
            return
        if session.status not in (CheckoutStatus.complete, CheckoutStatus.expired):
            return
        record = await self.store.session(links.session_id)
        if record is None or record.status is not CheckoutStatus.open:
            return
        await self.store.save_session(
            replace(
                record,
                status=session.status,
                payment_reference=session.payment_reference or record.payment_reference,
                updated_at=self.clock(),
            )
        )
        _log.info("checkout_session_updated", session_id=record.session_id, status=session.status)
