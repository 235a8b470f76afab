"""cde.gateway: the Protocols for everything outside the gateway's use cases.

CDE. `PaymentServiceProvider` is the PSP (Stripe or a Stripe-compatible sandbox); `CardSource`
the vault; `GatewayStore` the gateway's own records and webhook outbox; `PspEventSink` the
non-CDE API that relayed events go to; `AuditTrail` the CDE audit log. The gateway decides
retries: an adapter never retries on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from audit.domain import Actor, EventType, Outcome
from cde.gateway.domain import (
    AuthorizationRequest,
    CardDetails,
    CheckoutRequest,
    CheckoutSession,
    PaymentOutcome,
    PaymentRecord,
    PspEvent,
    PspPaymentMethod,
    RefundOutcome,
    RefundRecord,
    RelayItem,
    SessionRecord,
)


class PaymentServiceProvider(Protocol):
    """The PSP. Blocking calls with explicit timeouts (run them in a worker thread from async
    code). Guarantees, for every implementation:

    - Writes take the caller's `idempotency_key` and send it to the PSP, so a retried call with
      the same key never moves money twice (derive it from our charge id and the operation).
    - A timeout, a lost connection or a 5xx is never guessed: money-moving calls return status
      `unknown` (resolve it with `retrieve`/`retrieve_by_reference`, or retry with the same key);
      other calls raise `PspUnavailable`.
    - A decline is an outcome (`failed`, with Stripe's `decline_code` and a payer-fit message),
      not an exception. Refusals of the request itself raise `PspRequestError` (nothing was
      done), key problems `PspAuthenticationError`, key reuse `PspIdempotencyError`.
    - Card data is revealed only inside the one SDK call that sends it; nothing returned holds
      card data.
    """

    def create_payment_method(
        self, card: CardDetails, *, idempotency_key: str | None = None
    ) -> PspPaymentMethod:
        """Tokenize a card at the PSP (`pm_…`). Raises `CardRejected` for a number, expiry or
        CVC the PSP will not take."""

    def authorize(self, request: AuthorizationRequest, *, idempotency_key: str) -> PaymentOutcome:
        """Create and confirm a payment: `succeeded` (captured), `requires_capture`
        (`capture=False`), `failed` (declined) or `unknown`."""

    def capture(
        self, psp_reference: str, *, amount: int | None = None, idempotency_key: str
    ) -> PaymentOutcome:
        """Capture an authorization, fully or `amount` of it (the rest is released)."""

    def cancel(self, psp_reference: str, *, idempotency_key: str) -> PaymentOutcome:
        """Release an authorization that was not captured."""

    def refund(
        self,
        psp_reference: str,
        *,
        amount: int | None = None,
        reference: str | None = None,
        idempotency_key: str,
    ) -> RefundOutcome:
        """Refund a captured payment, fully or `amount` of it. Over-refunds raise
        `PspRequestError` (code `amount_too_large` or `charge_already_refunded`)."""

    def create_checkout_session(
        self, request: CheckoutRequest, *, idempotency_key: str
    ) -> CheckoutSession:
        """A hosted payment page; the payer is sent to `CheckoutSession.url`."""

    def expire_checkout_session(
        self, psp_reference: str, *, idempotency_key: str
    ) -> CheckoutSession:
        """Expire an open session (`cs_…`) so it can no longer be paid. A complete session
        raises `PspRequestError`."""

    def retrieve(self, psp_reference: str) -> PaymentOutcome:
        """The current state of one payment by the PSP's id (`pi_…`)."""

    def retrieve_payment_method(self, psp_reference: str) -> PspPaymentMethod:
        """A payment method's token and display data (brand, last4, expiry); never more."""

    def retrieve_by_reference(self, reference: str) -> PaymentOutcome | None:
        """The payment carrying our reference (metadata), or None if the PSP has none.
        On real Stripe this uses search, which may lag new payments by up to a minute."""

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> PspEvent:
        """Verify a webhook (signature and timestamp tolerance) and normalize it. Raises
        `WebhookVerificationError` for anything that is not a genuine, fresh PSP event."""


class CardSource(Protocol):
    """The vault, asked for one card for one PSP call (async).

    Guarantees: the card comes back only in masked types (`Pan`, `Cvc`) and is never logged
    or stored by the adapter; the vault deletes the CVC on this read, so a second read of the
    same token has `cvc=None` (PCI DSS 3.3.1). Raises `CardTokenNotFound` (no such token, or
    destroyed), `CardTokenRefused` (another merchant's token, or this caller may not
    detokenize) and `CardSourceUnavailable` (the vault cannot answer; nothing was read).
    """

    async def card_for(self, token: str, merchant_id: str) -> CardDetails:
        """The card behind `token`, for `merchant_id` only."""

    async def close(self) -> None: ...


class GatewayStore(Protocol):
    """The gateway's durable records (payments, refunds, checkout sessions) and its webhook
    inbox/outbox. Holds no card data. Every method is atomic on its own; `accept_event` writes
    the dedup record and the outbox row in one transaction, so an accepted event is never lost
    and never relayed twice by one claim. Raises the backend's errors unchanged (the caller
    answers 5xx and the PSP or the worker retries)."""

    async def claim_payment(self, record: PaymentRecord) -> tuple[PaymentRecord, bool]:
        """Insert `record` unless its charge id exists; return the stored record and whether
        it was inserted now."""

    async def save_payment(self, record: PaymentRecord) -> None:
        """Overwrite the stored record of `record.charge_id`."""

    async def payment(self, charge_id: str) -> PaymentRecord | None: ...

    async def payment_by_psp_reference(self, psp_reference: str) -> PaymentRecord | None: ...

    async def claim_refund(self, record: RefundRecord) -> tuple[RefundRecord, bool]: ...

    async def save_refund(self, record: RefundRecord) -> None: ...

    async def refund(self, refund_id: str) -> RefundRecord | None: ...

    async def refund_by_psp_reference(self, psp_reference: str) -> RefundRecord | None: ...

    async def claim_session(self, record: SessionRecord) -> tuple[SessionRecord, bool]: ...

    async def save_session(self, record: SessionRecord) -> None: ...

    async def session(self, session_id: str) -> SessionRecord | None: ...

    async def session_by_psp_reference(self, psp_reference: str) -> SessionRecord | None:
        """The session whose PSP session id (cs_…) or paid PaymentIntent (pi_…) this is."""

    async def event_seen(self, psp_event_id: str) -> bool:
        """True when this PSP event id was accepted before (a cheap pre-check)."""

    async def accept_event(
        self, psp_event_id: str, event_type: str, now: float, relay: tuple[str, str] | None
    ) -> bool:
        """Record a PSP event id as received and, with `relay=(event_id, body)`, queue the body
        in the outbox, in one transaction. False (and nothing written) when the PSP event id
        was received before: duplicates are dropped here."""

    async def claim_due(self, now: float, limit: int, lease_s: float) -> list[RelayItem]:
        """Up to `limit` undelivered outbox items due at `now`, oldest first, leased for
        `lease_s` seconds so that another relay loop does not send them meanwhile."""

    async def release(self, item_ids: list[int]) -> None:
        """End the lease of items claimed but not attempted (due again at once)."""

    async def mark_delivered(self, item_id: int, now: float) -> None: ...

    async def mark_failed(
        self, item_id: int, attempts: int, next_attempt_at: float, error: str, dead: bool
    ) -> None:
        """Record a failed delivery: retry at `next_attempt_at`, or never (`dead`)."""

    async def requeue_dead(self, now: float) -> int:
        """Make every `dead` item pending again (attempts reset), for an operator; the count."""

    async def outbox_counts(self) -> dict[str, int]:
        """Outbox items by state: `pending`, `delivered`, `dead`."""

    async def purge(self, delivered_before: float, seen_before: float) -> int:
        """Delete delivered outbox items and webhook dedup records older than the cut-offs."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class PspEventSink(Protocol):
    """The non-CDE API's internal endpoint for normalized PSP events (async).

    `deliver` returns once the API answered 2xx (it stored the event, idempotently by event
    id); anything else raises `RelayError` and the outbox retries later with the same body.
    """

    async def deliver(self, body: str) -> None: ...

    async def close(self) -> None: ...


class AuditTrail(Protocol):
    """The CDE audit log (`audit.service.AuditLog` or a guard around it). `record` is blocking
    and raises `AuditUnavailable` when nothing could be written (the caller fails closed)."""

    def record(
        self,
        event_type: EventType,
        *,
        actor: Actor | str,
        outcome: Outcome,
        target: str | None = None,
        resource: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        origin_ip: str | None = None,
        reason: str | None = None,
    ) -> Any: ...
