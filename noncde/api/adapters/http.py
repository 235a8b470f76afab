"""noncde.api adapters, HTTP: the CDE gateway's checkout sessions over HTTPS with the API's
service identity (interfaces.md "Gateway"; PCI DSS 4.2.1 TLS, 8.6 system accounts).

Errors are translated here: unreachable or 5xx → `DependencyUnavailable`; 4xx → the API's
`InvalidRequest` / `InvalidState`. No request or response body is logged.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx

from fincore.identity import ServiceCredentials
from fincore.web import service_client
from noncde.api.domain.errors import DependencyUnavailable, InvalidRequest, InvalidState
from noncde.api.domain.time import from_unix, parse_rfc3339, rfc3339
from noncde.api.ports import CheckoutSessionCreated, CheckoutSessionRequest


def _expires_at(value: object) -> datetime:
    """The gateway's `expires_at`: Unix seconds (what cde.gateway answers, docs/gateway.md)
    or an RFC 3339 string."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return from_unix(value)
    if isinstance(value, str):
        return parse_rfc3339(value)
    raise ValueError("expires_at is neither Unix seconds nor RFC 3339")


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and len(code) <= 64 else None


class HttpCheckoutGateway:
    """CheckoutGateway on the gateway's `POST /v1/checkout_sessions[/{id}/expire]`."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: ServiceCredentials | None,
        ca_file: Path | None,
        timeout_s: float = 10.0,
    ) -> None:
        self._http = cast(
            httpx.Client,
            service_client(
                base_url,
                credentials=credentials,
                audience="gateway",
                ca_file=ca_file,
                timeout=timeout_s,
            ),
        )

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise DependencyUnavailable(
                "The payment gateway cannot be reached; nothing was created. Retry later.",
                code="gateway_unavailable",
            ) from exc
        if response.status_code >= 500 or response.status_code in {401, 403}:
            # 401/403: our own identity was refused: a deployment fault, not the merchant's.
            raise DependencyUnavailable(
                "The payment gateway failed; nothing was created. Retry later.",
                code="gateway_error",
            )
        return response

    def create_checkout_session(self, request: CheckoutSessionRequest) -> CheckoutSessionCreated:
        response = self._post(
            "/v1/checkout_sessions",
            {
                "session_id": request.session_id,
                "merchant_id": request.merchant_id,
                "amount": request.amount,
                "currency": request.currency,
                "success_url": request.success_url,
                "cancel_url": request.cancel_url,
                "expires_at": rfc3339(request.expires_at),
            },
        )
        if response.status_code >= 400:
            raise InvalidRequest(
                "The payment gateway refused this payment session.",
                code=_error_code(response) or "payment_session_refused",
            )
        try:
            body = response.json()
            return CheckoutSessionCreated(
                psp_session_id=str(body["psp_session_id"]),
                url=str(body["url"]),
                expires_at=_expires_at(body["expires_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DependencyUnavailable(
                "The payment gateway answered nonsense; nothing was created.",
                code="gateway_error",
            ) from exc

    def expire_checkout_session(self, session_id: str) -> None:
        response = self._post(f"/v1/checkout_sessions/{session_id}/expire", {})
        if response.status_code == 404:
            return  # the PSP no longer knows it: nothing left to pay
        if response.status_code >= 400:
            raise InvalidState(
                "The payment session can no longer be expired (it may have been paid).",
                code=_error_code(response) or "payment_session_unexpected_state",
            )

    def close(self) -> None:
        self._http.close()
