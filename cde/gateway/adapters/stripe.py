"""cde.gateway: the PSP adapter on the official `stripe` SDK (one `StripeClient` instance).

CDE. Serves real Stripe, the FinCore PSP sandbox and localstripe: only the base URL differs.
Explicit connect/read timeouts and `max_network_retries=0` (the gateway decides retries, with the
same Idempotency-Key). A timeout or lost connection is `unknown`, never guessed. Card data is
revealed only in the one `payment_methods.create` call that sends it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import stripe
from stripe.params import (
    PaymentIntentCaptureParams,
    PaymentIntentCreateParams,
    PaymentMethodCreateParamsCard,
    RefundCreateParams,
)
from stripe.params.checkout import SessionCreateParams

from cde.gateway.domain import (
    MAX_UNIX_TIME,
    AuthorizationRequest,
    CardDetails,
    CardRejected,
    CheckoutRequest,
    CheckoutSession,
    CheckoutStatus,
    PaymentOutcome,
    PaymentStatus,
    PspAuthenticationError,
    PspEvent,
    PspIdempotencyError,
    PspPaymentMethod,
    PspRateLimited,
    PspRequestError,
    PspUnavailable,
    RefundOutcome,
    RefundStatus,
    WebhookVerificationError,
)
from fincore.cards import contains_card_number
from fincore.sensitive import SecretKey
from fincore.settings import SettingsError

Json = dict[str, Any]
DEFAULT_TOLERANCE_S = 300
_REFERENCE = re.compile(r"^[A-Za-z0-9_\-:.]{1,200}$")
_PI_STATUS = {
    "succeeded": PaymentStatus.succeeded,
    "requires_capture": PaymentStatus.requires_capture,
    "canceled": PaymentStatus.canceled,
}
_REFUND_STATUS = {status.value: status for status in RefundStatus}


def _refuse_sdk_body_logging() -> None:
    # PCI DSS 3.3.1 / 10.3: at debug level the SDK prints every request body (card number and
    # CVC included) to stderr, around our redacting logger. Refuse to run that way, and keep the
    # SDK's own logger above DEBUG whatever the root level is.
    if os.environ.get("STRIPE_LOG", "").lower() in {"debug", "info"} or stripe.log in {
        "debug",
        "info",
    }:
        raise SettingsError("STRIPE_LOG must not be set in the CDE: the SDK would log card data")
    sdk_logger = logging.getLogger("stripe")
    if sdk_logger.getEffectiveLevel() < logging.INFO:
        sdk_logger.setLevel(logging.INFO)


def _as_dict(obj: Any) -> Json:
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    if isinstance(obj, dict):
        return obj
    return {}


def _error_body(exc: stripe.StripeError) -> Json:
    body = exc.json_body
    return _as_dict(body.get("error")) if isinstance(body, dict) else {}


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _when(value: Any) -> datetime | None:
    # A time the PSP sends is data like any other: one outside what a datetime holds is
    # treated as absent, never as a crash (found by tests/security fuzzing: a 500).
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UNIX_TIME:
        return datetime.fromtimestamp(value, UTC)
    return None


def _id_of(value: Any) -> str | None:
    """An id field, whether the PSP sent the id or (expanded) the object."""
    if isinstance(value, dict):
        return _str_or_none(value.get("id"))
    return _str_or_none(value)


def _reference_of(metadata: Any) -> str | None:
    return _str_or_none(metadata.get("reference")) if isinstance(metadata, dict) else None


def _decline_code(error: Json) -> str | None:
    """Stripe's decline code; a bare `card_declined` (as localstripe sends) is Stripe's
    generic decline."""
    code = _str_or_none(error.get("decline_code"))
    if code:
        return code
    if error.get("code") == "card_declined":
        return "generic_decline"
    return _str_or_none(error.get("code"))


def outcome_from_payment_intent(pi: Json) -> PaymentOutcome:
    """A PaymentIntent (JSON) as a `PaymentOutcome`."""
    status = str(pi.get("status") or "")
    error = pi.get("last_payment_error") or {}
    if status in _PI_STATUS:
        mapped = _PI_STATUS[status]
    elif status == "requires_payment_method" and error:
        mapped = PaymentStatus.failed
    else:
        # requires_confirmation / requires_action / processing, or a PaymentIntent never
        # confirmed: not a final answer, so not guessed.
        mapped = PaymentStatus.unknown
    failed = mapped is PaymentStatus.failed
    return PaymentOutcome(
        status=mapped,
        psp_reference=_str_or_none(pi.get("id")),
        reference=_reference_of(pi.get("metadata")),
        amount=_int_or_none(pi.get("amount")),
        currency=_str_or_none(pi.get("currency")),
        amount_received=_int_or_none(pi.get("amount_received")),
        amount_capturable=_int_or_none(pi.get("amount_capturable")),
        decline_code=_decline_code(error) if failed else None,
        failure_code=_str_or_none(error.get("code")) if failed else None,
        failure_message=_str_or_none(error.get("message")) if failed else None,
        psp_status=status or None,
        payment_method=_id_of(pi.get("payment_method")),
    )


def outcome_from_charge(charge: Json) -> PaymentOutcome:
    """A Charge (JSON, from `charge.*` events) as the outcome of its PaymentIntent."""
    status = charge.get("status")
    if status == "failed":
        mapped = PaymentStatus.failed
    elif status == "succeeded":
        mapped = (
            PaymentStatus.succeeded if charge.get("captured") else (PaymentStatus.requires_capture)
        )
    else:
        mapped = PaymentStatus.unknown
    outcome = charge.get("outcome") or {}
    failed = mapped is PaymentStatus.failed
    return PaymentOutcome(
        status=mapped,
        psp_reference=_str_or_none(charge.get("payment_intent")),
        reference=_reference_of(charge.get("metadata")),
        amount=_int_or_none(charge.get("amount")),
        currency=_str_or_none(charge.get("currency")),
        amount_received=_int_or_none(charge.get("amount_captured")),
        amount_refunded=_int_or_none(charge.get("amount_refunded")),
        decline_code=_str_or_none(outcome.get("reason")) if failed else None,
        failure_code=_str_or_none(charge.get("failure_code")) if failed else None,
        failure_message=_str_or_none(charge.get("failure_message")) if failed else None,
        psp_status=_str_or_none(status),
        payment_method=_id_of(charge.get("payment_method")),
    )


def refund_outcome(refund: Json) -> RefundOutcome:
    return RefundOutcome(
        status=_REFUND_STATUS.get(str(refund.get("status")), RefundStatus.unknown),
        psp_reference=_str_or_none(refund.get("id")),
        payment_reference=_str_or_none(refund.get("payment_intent")),
        amount=_int_or_none(refund.get("amount")),
        currency=_str_or_none(refund.get("currency")),
        reference=_reference_of(refund.get("metadata")),
        failure_code=_str_or_none(refund.get("failure_reason")),
    )


def payment_method_display(pm: Json) -> PspPaymentMethod:
    """A PaymentMethod (JSON) as its token and display data; nothing else is read."""
    details = _as_dict(pm.get("card"))
    return PspPaymentMethod(
        psp_reference=str(pm["id"]),
        brand=_str_or_none(details.get("brand")),
        last4=_str_or_none(details.get("last4")),
        exp_month=_int_or_none(details.get("exp_month")),
        exp_year=_int_or_none(details.get("exp_year")),
    )


def checkout_session(session: Json) -> CheckoutSession:
    try:
        status = CheckoutStatus(str(session.get("status")))
    except ValueError:
        status = CheckoutStatus.open
    return CheckoutSession(
        psp_reference=str(session.get("id")),
        url=_str_or_none(session.get("url")),
        status=status,
        payment_status=str(session.get("payment_status") or "unpaid"),
        amount=_int_or_none(session.get("amount_total")),
        currency=_str_or_none(session.get("currency")),
        expires_at=_when(session.get("expires_at")),
        reference=_str_or_none(session.get("client_reference_id"))
        or _reference_of(session.get("metadata")),
        payment_reference=_str_or_none(session.get("payment_intent")),
    )


class StripePaymentProvider:
    """`PaymentServiceProvider` on the official stripe SDK through one `StripeClient`."""

    def __init__(
        self,
        *,
        api_key: SecretKey,
        webhook_secret: SecretKey,
        api_base: str = "https://api.stripe.com",
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 20.0,
        webhook_tolerance_s: int = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _refuse_sdk_body_logging()
        if not api_base.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            # PCI DSS 4.2.1: card data crosses the network only over TLS (plain HTTP is allowed
            # to loopback, for the sandbox and localstripe on this machine).
            raise SettingsError("the PSP base URL must be https:// (http only on loopback)")
        self._webhook_secret = webhook_secret
        self._tolerance_s = webhook_tolerance_s
        self._clock = clock
        self._client = stripe.StripeClient(
            api_key.reveal(),
            base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=(connect_timeout_s, read_timeout_s)),
        )

    # ------------------------------------------------------------------ errors

    @staticmethod
    def _raise(exc: stripe.StripeError) -> NoReturn:
        """Translate an SDK error at the adapter edge (no card data, no key in the message)."""
        message = exc.user_message or "The PSP refused the request."
        code = exc.code
        if isinstance(exc, stripe.IdempotencyError):
            raise PspIdempotencyError(message, code=code) from None
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            raise PspAuthenticationError("The PSP refused our API key.", code=code) from None
        if isinstance(exc, stripe.RateLimitError):
            raise PspRateLimited(message, code=code) from None
        if isinstance(exc, stripe.CardError):
            error = _error_body(exc)
            raise CardRejected(message, code=code, decline_code=_decline_code(error)) from None
        if isinstance(exc, stripe.InvalidRequestError):
            raise PspRequestError(
                message, code=code, param=exc.param, http_status=exc.http_status
            ) from None
        raise PspUnavailable(
            "The PSP gave no usable answer.", code=code or type(exc).__name__
        ) from None

    @staticmethod
    def _unknown(exc: stripe.StripeError) -> bool:
        """True when the request's effect is unknown: no answer, or a 5xx."""
        if isinstance(exc, stripe.APIConnectionError):
            return True
        status = exc.http_status
        return isinstance(exc, stripe.APIError) and (status is None or status >= 500)

    def _payment_call(
        self, call: Callable[[], Any], psp_reference: str | None, reference: str | None
    ) -> PaymentOutcome:
        try:
            return outcome_from_payment_intent(_as_dict(call()))
        except stripe.CardError as exc:
            error = _error_body(exc)
            pi = _as_dict(error.get("payment_intent"))
            return PaymentOutcome(
                status=PaymentStatus.failed,
                psp_reference=_str_or_none(pi.get("id")) or psp_reference,
                reference=_reference_of(pi.get("metadata")) or reference,
                amount=_int_or_none(pi.get("amount")),
                currency=_str_or_none(pi.get("currency")),
                decline_code=_decline_code(error) or "generic_decline",
                failure_code=exc.code,
                failure_message=exc.user_message or "Your card was declined.",
                psp_status=_str_or_none(pi.get("status")),
            )
        except stripe.StripeError as exc:
            if self._unknown(exc):
                return PaymentOutcome(
                    status=PaymentStatus.unknown,
                    psp_reference=psp_reference,
                    reference=reference,
                    failure_code=type(exc).__name__,
                )
            self._raise(exc)

    # ------------------------------------------------------------------ port

    def create_payment_method(
        self, card: CardDetails, *, idempotency_key: str | None = None
    ) -> PspPaymentMethod:
        card_params: PaymentMethodCreateParamsCard = {
            "number": card.pan.reveal(),
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
        }
        if card.cvc is not None:
            card_params["cvc"] = card.cvc.reveal()
        try:
            pm = self._client.v1.payment_methods.create(
                params={"type": "card", "card": card_params},
                options={"idempotency_key": idempotency_key} if idempotency_key else None,
            )
        except stripe.StripeError as exc:
            self._raise(exc)
        finally:
            # The revealed values go no further than this call.
            del card_params
        return payment_method_display(_as_dict(pm))

    def retrieve_payment_method(self, psp_reference: str) -> PspPaymentMethod:
        try:
            pm = self._client.v1.payment_methods.retrieve(psp_reference)
        except stripe.StripeError as exc:
            self._raise(exc)
        return payment_method_display(_as_dict(pm))

    def authorize(self, request: AuthorizationRequest, *, idempotency_key: str) -> PaymentOutcome:
        params: PaymentIntentCreateParams = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "payment_method": request.payment_method,
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
            "metadata": {"reference": request.reference},
        }
        if request.description:
            params["description"] = request.description
        return self._payment_call(
            lambda: self._client.v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key}
            ),
            None,
            request.reference,
        )

    def capture(
        self, psp_reference: str, *, amount: int | None = None, idempotency_key: str
    ) -> PaymentOutcome:
        params: PaymentIntentCaptureParams = {}
        if amount is not None:
            params["amount_to_capture"] = amount
        return self._payment_call(
            lambda: self._client.v1.payment_intents.capture(
                psp_reference, params=params, options={"idempotency_key": idempotency_key}
            ),
            psp_reference,
            None,
        )

    def cancel(self, psp_reference: str, *, idempotency_key: str) -> PaymentOutcome:
        return self._payment_call(
            lambda: self._client.v1.payment_intents.cancel(
                psp_reference, options={"idempotency_key": idempotency_key}
            ),
            psp_reference,
            None,
        )

    def refund(
        self,
        psp_reference: str,
        *,
        amount: int | None = None,
        reference: str | None = None,
        idempotency_key: str,
    ) -> RefundOutcome:
        params: RefundCreateParams = {"payment_intent": psp_reference}
        if amount is not None:
            params["amount"] = amount
        if reference is not None:
            params["metadata"] = {"reference": reference}
        try:
            refund = self._client.v1.refunds.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            if self._unknown(exc):
                return RefundOutcome(
                    status=RefundStatus.unknown,
                    psp_reference=None,
                    payment_reference=psp_reference,
                    amount=amount,
                    reference=reference,
                    failure_code=type(exc).__name__,
                )
            self._raise(exc)
        return refund_outcome(_as_dict(refund))

    def create_checkout_session(
        self, request: CheckoutRequest, *, idempotency_key: str
    ) -> CheckoutSession:
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": request.amount,
                        "product_data": {"name": request.description},
                    },
                    "quantity": 1,
                }
            ],
            "success_url": request.success_url,
            "client_reference_id": request.reference,
            "metadata": {"reference": request.reference},
            "payment_intent_data": {
                "metadata": {"reference": request.reference},
                "capture_method": "automatic" if request.capture else "manual",
            },
        }
        if request.cancel_url:
            params["cancel_url"] = request.cancel_url
        if request.expires_at is not None:
            # Rounded down: the PSP's 24-hour maximum counts from its own (later) clock; the
            # API leaves a minute of slack at the 30-minute minimum for the other end.
            params["expires_at"] = int(request.expires_at.timestamp())
        if request.customer_email:
            params["customer_email"] = request.customer_email
        try:
            session = self._client.v1.checkout.sessions.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            self._raise(exc)
        return checkout_session(_as_dict(session))

    def expire_checkout_session(
        self, psp_reference: str, *, idempotency_key: str
    ) -> CheckoutSession:
        try:
            session = self._client.v1.checkout.sessions.expire(
                psp_reference, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            self._raise(exc)
        return checkout_session(_as_dict(session))

    def retrieve(self, psp_reference: str) -> PaymentOutcome:
        try:
            pi = self._client.v1.payment_intents.retrieve(psp_reference)
        except stripe.StripeError as exc:
            self._raise(exc)
        return outcome_from_payment_intent(_as_dict(pi))

    def retrieve_by_reference(self, reference: str) -> PaymentOutcome | None:
        if not _REFERENCE.match(reference):
            # Our references are ids; anything else could break out of the search query.
            raise PspRequestError("The reference is not a valid id.", param="reference")
        try:
            found = self._client.v1.payment_intents.search(
                params={"query": f"metadata['reference']:'{reference}'", "limit": 20}
            )
        except stripe.StripeError as exc:
            self._raise(exc)
        outcomes = [outcome_from_payment_intent(_as_dict(pi)) for pi in found.data]
        if not outcomes:
            return None
        # Several PaymentIntents for one reference only exist after retries with different
        # keys: the one that moved money wins, else the newest (the PSP lists newest first).
        for outcome in outcomes:
            if outcome.status in (PaymentStatus.succeeded, PaymentStatus.requires_capture):
                return outcome
        return outcomes[0]

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> PspEvent:
        if not signature_header:
            raise WebhookVerificationError("missing Stripe-Signature header", code="missing")
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature_header, self._webhook_secret.reveal(), self._tolerance_s
            )
        except stripe.SignatureVerificationError as exc:
            reason = (
                "timestamp outside tolerance" if "tolerance" in str(exc) else ("signature mismatch")
            )
            raise WebhookVerificationError(reason, code="signature") from None
        except (ValueError, UnicodeDecodeError):
            raise WebhookVerificationError("malformed payload", code="malformed") from None
        # The SDK rejects only old timestamps; a signature from the future is as suspect
        # (replay window games with a skewed clock).
        timestamp = re.search(r"(?:^|,)t=([0-9]{1,12})(?:,|$)", signature_header)
        if timestamp is None or int(timestamp.group(1)) > self._clock() + self._tolerance_s:
            raise WebhookVerificationError("timestamp outside tolerance", code="signature")
        try:
            event = json.loads(payload)
        except ValueError:
            raise WebhookVerificationError("malformed payload", code="malformed") from None
        if not isinstance(event, dict) or event.get("object") != "event":
            raise WebhookVerificationError("not an event", code="malformed")
        event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
        obj = (
            (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
        )
        if not (
            isinstance(event_id, str)
            and isinstance(event_type, str)
            and isinstance(created, int)
            and 0 <= created <= MAX_UNIX_TIME
            and isinstance(obj, dict)
        ):
            raise WebhookVerificationError("not an event", code="malformed")
        if contains_card_number(event_id) or contains_card_number(event_type):
            # The id and type are stored as they come (dedup record, audit): a card-like number
            # there is refused like any malformed event (it was stored in the clear before;
            # tests/security, PCI DSS 3.5.1).
            raise WebhookVerificationError("not an event", code="malformed")
        return normalize_event(event_id, event_type, created, obj)


def normalize_event(
    event_id: str, event_type: str, created: int, obj: Mapping[str, Any]
) -> PspEvent:
    """The token-only view of an event: ids, amounts, statuses, codes; no card details."""
    data = dict(obj)
    kind = data.get("object")
    payment = refund = session = None
    if kind == "payment_intent":
        payment = outcome_from_payment_intent(data)
    elif kind == "charge":
        payment = outcome_from_charge(data)
    elif kind == "refund":
        refund = refund_outcome(data)
    elif kind == "checkout.session":
        session = checkout_session(data)
    return PspEvent(
        id=event_id,
        type=event_type,
        created=datetime.fromtimestamp(created, UTC),
        payment=payment,
        refund=refund,
        checkout_session=session,
    )
