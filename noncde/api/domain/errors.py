"""noncde.api (non-CDE), published language: the API's error family.

Every error maps to one HTTP status and a Stripe-style error object
`{"error": {"type", "code", "message", "param"}}`. Messages never contain a submitted value
(it may be card data; PCI DSS 3.3.1). Status use:

- 400 invalid request (bad or unknown parameter, card data sent to the non-CDE API),
  and `idempotency_error` for a key reused with other parameters;
- 401 no or invalid API key / service identity; 403 authenticated but not allowed;
- 402 the charge failed (`card_error`: `risk_blocked`, `card_declined`);
- 404 no such object for this merchant;
- 409 the same idempotency key is still being processed (retry later);
- 422 a well-formed request the object's current state cannot accept (capture a charge that
  is not `requires_capture`, refund more than was captured, expire a completed session);
- 429 rate limit; 503 a dependency (the gateway) is unavailable, nothing was recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PaymentApiError(Exception):
    """Base of the API's errors: an HTTP status plus a Stripe-style error object."""

    status: int = 400
    type: str = "invalid_request_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


class InvalidRequest(PaymentApiError):
    """400: a missing, unknown or invalid parameter (`param` names it)."""

    default_code = "parameter_invalid"


class CardDataNotAllowed(InvalidRequest):
    """400: card data (a card-like number or a card field name) reached the non-CDE API.

    PCI DSS checklist A2 / S1 "CHD received via an unintended channel": refused before
    anything is logged or stored; raw cards belong on the CDE card ingress.
    """

    default_code = "card_data_not_allowed"


class IdempotencyKeyReused(PaymentApiError):
    """400: the idempotency key was first used with different parameters."""

    type = "idempotency_error"
    default_code = "idempotency_key_reused"


class IdempotencyKeyInFlight(PaymentApiError):
    """409: a request with this idempotency key is still being processed."""

    status = 409
    type = "idempotency_error"
    default_code = "idempotency_key_in_use"


class Unauthenticated(PaymentApiError):
    """401: no, malformed, unknown, expired or revoked API key."""

    status = 401
    type = "authentication_error"
    default_code = "api_key_invalid"


class PermissionDenied(PaymentApiError):
    """403: the caller is known but may not do this (publishable key, raw card data...)."""

    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class ResourceMissing(PaymentApiError):
    """404: no such object for this merchant (another merchant's id is missing too)."""

    status = 404
    default_code = "resource_missing"


class InvalidState(PaymentApiError):
    """422: the object's current state does not allow this request."""

    status = 422
    default_code = "invalid_state"


class CardError(PaymentApiError):
    """402: the charge was created and failed (`risk_blocked`, `card_declined`...).

    `extra` carries `charge` (its id) like Stripe's card errors.
    """

    status = 402
    type = "card_error"
    default_code = "card_declined"


class RateLimited(PaymentApiError):
    """429: too many requests for this API key; retry after `Retry-After` seconds."""

    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit"


class DependencyUnavailable(PaymentApiError):
    """503: a dependency (the gateway) could not be reached; nothing was recorded."""

    status = 503
    type = "api_error"
    default_code = "service_unavailable"
