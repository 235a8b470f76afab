"""cde.gateway: the Protocols for everything outside the gateway's use cases.

CDE. `PaymentServiceProvider` is the PSP (Stripe or a Stripe-compatible sandbox). The
gateway decides retries: an adapter never retries on its own.
"""

from __future__ import annotations

from typing import Protocol

from cde.gateway.domain import (
    AuthorizationRequest,
    CardDetails,
    CheckoutRequest,
    CheckoutSession,
    PaymentOutcome,
    PspEvent,
    PspPaymentMethod,
    RefundOutcome,
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

    def retrieve(self, psp_reference: str) -> PaymentOutcome:
        """The current state of one payment by the PSP's id (`pi_…`)."""

    def retrieve_by_reference(self, reference: str) -> PaymentOutcome | None:
        """The payment carrying our reference (metadata), or None if the PSP has none.
        On real Stripe this uses search, which may lag new payments by up to a minute."""

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> PspEvent:
        """Verify a webhook (signature and timestamp tolerance) and normalize it. Raises
        `WebhookVerificationError` for anything that is not a genuine, fresh PSP event."""
