"""noncde.dashboard adapters, HTTP: the merchant API's staff commands (`/internal/v1/staff/*`)
over HTTPS with the dashboard's service identity (`X-FinCore-Service-Token`, audience `api`;
interfaces.md).

API errors become dashboard errors carrying the API's own message (Stripe-style error
objects never echo submitted values). No answer at all is `Unavailable`: the outcome is
unknown, and refunds may be sent again safely (Idempotency-Key = refund request id).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx

from fincore.identity import ServiceCredentials
from fincore.web import service_client
from noncde.dashboard.domain import (
    Conflict,
    InvalidInput,
    NotFound,
    RefundRequest,
    Unavailable,
)


class HttpApiCommands:
    def __init__(
        self,
        base_url: str,
        *,
        credentials: ServiceCredentials | None,
        ca_file: Path | None,
        timeout_s: float = 10.0,
        client: Any = None,
    ) -> None:
        # `client` lets a test hand in any httpx-style client (e.g. an in-process transport);
        # it must add the service token itself.
        self._client: Any = client or service_client(
            base_url,
            credentials=credentials,
            audience="api",
            ca_file=ca_file,
            timeout=timeout_s,
        )

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            answer = self._client.request(method, path, json=body, headers=headers)
        except (httpx.HTTPError, OSError) as exc:
            raise Unavailable(
                f"The merchant API did not answer ({type(exc).__name__}); try again."
            ) from None
        if answer.status_code < 300:
            return answer.json()
        try:
            error = answer.json().get("error", {})
        except ValueError:
            error = {}
        message = str(error.get("message") or "The merchant API refused the request.")[:300]
        status = answer.status_code
        if status == 404:
            raise NotFound(message)
        if status in (400, 402, 422):
            raise InvalidInput(message, field=error.get("param"))
        if status == 409:
            raise Conflict(message)
        if status in (401, 403):
            # A configuration problem (identity or allow-list), never the staff member's fault.
            raise Unavailable("The merchant API refused the dashboard's service identity.")
        raise Unavailable(f"The merchant API failed ({status}); try again.")

    def refund(self, request: RefundRequest, *, actor: str, request_id: str | None) -> str:
        body = {
            "actor": actor,
            "requested_by": request.requested_by,
            "merchant_id": request.merchant_id,
            "charge": request.charge_id,
            "amount": request.amount,
            "reason": request.category,
        }
        headers = {"Idempotency-Key": request.id}
        if request_id:
            headers["X-Request-Id"] = request_id
        created = self._call("POST", "/internal/v1/staff/refunds", body, headers)
        return str(created["id"])

    def merchants(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/internal/v1/staff/merchants")["data"]
        return found

    def merchant(self, merchant_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/internal/v1/staff/merchants/{merchant_id}")
        return found

    def rotate_key(
        self, key_id: str, *, overlap_hours: float, actor: str, request_id: str | None
    ) -> dict[str, Any]:
        issued: dict[str, Any] = self._call(
            "POST",
            f"/internal/v1/staff/keys/{key_id}/rotate",
            {"actor": actor, "overlap_hours": overlap_hours},
            _request(request_id),
        )
        return issued

    def revoke_key(
        self, key_id: str, *, reason: str, actor: str, request_id: str | None
    ) -> dict[str, Any]:
        revoked: dict[str, Any] = self._call(
            "POST",
            f"/internal/v1/staff/keys/{key_id}/revoke",
            {"actor": actor, "reason": reason},
            _request(request_id),
        )
        return revoked

    def set_raw_card(
        self,
        merchant_id: str,
        *,
        granted: bool,
        attestation_expires_on: date | None,
        reason: str,
        actor: str,
        request_id: str | None,
    ) -> dict[str, Any]:
        changed: dict[str, Any] = self._call(
            "POST",
            f"/internal/v1/staff/merchants/{merchant_id}/raw_card",
            {
                "actor": actor,
                "granted": granted,
                "attestation_expires_on": (
                    attestation_expires_on.isoformat() if attestation_expires_on else None
                ),
                "reason": reason,
            },
            _request(request_id),
        )
        return changed

    def close(self) -> None:
        self._client.close()


def _request(request_id: str | None) -> dict[str, str] | None:
    return {"X-Request-Id": request_id} if request_id else None
