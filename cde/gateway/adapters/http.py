"""cde.gateway: HTTPS clients of the gateway: the vault (`CardSource`) and the non-CDE API's
PSP-event endpoint (`PspEventSink`).

CDE. Every call runs over TLS 1.2+ against the FinCore CA, with the gateway's service token for
the callee (PCI DSS 4.2.1, 8.6); only the gateway identity may detokenize (7.2.5). The vault's
answer is turned into masked types at once and never logged; nothing here logs a body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx

from cde.gateway.domain import (
    CardDetails,
    CardSourceUnavailable,
    CardTokenNotFound,
    CardTokenRefused,
    InvalidRequest,
    RelayError,
)
from fincore.identity import ServiceCredentials
from fincore.sensitive import Cvc, Pan
from fincore.web import service_client

_PARAM = "payment_method[token]"


def _client(
    base_url: str,
    credentials: ServiceCredentials | None,
    audience: str,
    ca_file: Path | None,
    timeout_s: float,
) -> httpx.AsyncClient:
    client = service_client(
        base_url,
        credentials=credentials,
        audience=audience,
        ca_file=ca_file,
        asynchronous=True,
        timeout=timeout_s,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )
    return cast(httpx.AsyncClient, client)


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


class HttpCardSource:
    """`CardSource`: `POST /v1/tokens/{token}/detokenize` on the vault, as `gateway`."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: ServiceCredentials | None,
        ca_file: Path | None,
        timeout_s: float = 10.0,
    ) -> None:
        self._http = _client(base_url, credentials, "vault", ca_file, timeout_s)

    async def card_for(self, token: str, merchant_id: str) -> CardDetails:
        try:
            response = await self._http.post(
                f"/v1/tokens/{token}/detokenize", json={"merchant_id": merchant_id}
            )
        except httpx.HTTPError:
            raise CardSourceUnavailable(
                "The vault cannot be reached; nothing was charged.", code="vault_unavailable"
            ) from None
        status = response.status_code
        if status == 200:
            return self._card(response)
        code = _error_code(response)
        if status in (404, 410):
            raise CardTokenNotFound(
                "No card is stored under this token.", code=code or "token_not_found", param=_PARAM
            )
        if status == 403:
            raise CardTokenRefused(
                "The vault refused this token for this merchant.",
                code=code or "token_refused",
                param=_PARAM,
            )
        if status in (400, 422):
            raise InvalidRequest(
                "The vault refused the token request.", code=code or "token_invalid", param=_PARAM
            )
        raise CardSourceUnavailable(
            f"The vault answered {status}; nothing was charged.", code="vault_unavailable"
        )

    @staticmethod
    def _card(response: httpx.Response) -> CardDetails:
        # The clear values exist as plain str only while being wrapped (PCI DSS 3.4.1: from
        # here on they are `Pan`/`Cvc`, masked in any repr, log or error).
        try:
            body: Any = response.json()
            card = body["card"]
            cvc = body.get("cvc")
            return CardDetails(
                pan=Pan(str(card["number"])),
                exp_month=int(card["exp_month"]),
                exp_year=int(card["exp_year"]),
                cvc=Cvc(cvc) if isinstance(cvc, str) and cvc else None,
            )
        except (ValueError, KeyError, TypeError):
            raise CardSourceUnavailable(
                "The vault's answer was not understood; nothing was charged.",
                code="vault_unavailable",
            ) from None

    async def close(self) -> None:
        await self._http.aclose()


class HttpPspEventSink:
    """`PspEventSink`: `POST /internal/v1/psp-events` on the non-CDE API, as `gateway`."""

    PATH = "/internal/v1/psp-events"

    def __init__(
        self,
        base_url: str,
        *,
        credentials: ServiceCredentials | None,
        ca_file: Path | None,
        timeout_s: float = 10.0,
    ) -> None:
        self._http = _client(base_url, credentials, "api", ca_file, timeout_s)

    async def deliver(self, body: str) -> None:
        try:
            response = await self._http.post(
                self.PATH,
                content=body.encode("utf-8"),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise RelayError(f"no answer ({type(exc).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise RelayError(
                f"the API answered {response.status_code}", status=response.status_code
            )

    async def close(self) -> None:
        await self._http.aclose()
