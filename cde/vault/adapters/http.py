"""cde.vault (CDE): the ingress's HTTPS clients: the vault, the merchant directory, the API.

Every call runs over TLS (the FinCore CA) with the ingress's service token for the callee
(PCI DSS 4.2.1, 8.6). Errors come back as the vault's domain errors; a callee that cannot be
reached is `UpstreamUnavailable`. Nothing here logs a request or response body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import httpx

from cde.vault.domain import (
    Attestation,
    CardDisplay,
    InvalidCard,
    InvalidRequest,
    MerchantAuthorization,
    MerchantUnauthenticated,
    NotPermitted,
    RateLimited,
    RawCardDataNotPermitted,
    UpstreamUnavailable,
    VaultError,
)
from cde.vault.ports import ApiAnswer
from fincore.identity import ServiceCredentials
from fincore.sensitive import SecretKey
from fincore.web import service_client

_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def _client(
    base_url: str, credentials: ServiceCredentials | None, audience: str, ca_file: Path | None
) -> httpx.AsyncClient:
    client = service_client(
        base_url,
        credentials=credentials,
        audience=audience,
        ca_file=ca_file,
        asynchronous=True,
        timeout=10.0,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )
    return cast(httpx.AsyncClient, client)


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        return error if isinstance(error, dict) else {}
    except ValueError:
        return {}


def _vault_error(response: httpx.Response) -> VaultError:
    error = _error(response)
    message = str(error.get("message") or "The vault refused the card.")
    code = error.get("code")
    param = error.get("param")
    code = code if isinstance(code, str) else None
    param = param if isinstance(param, str) else None
    if response.status_code == 422:
        return InvalidCard(message, code=code, param=param)
    if response.status_code == 400:
        return InvalidRequest(message, code=code, param=param)
    if response.status_code == 429:
        try:
            retry = float(response.headers.get("Retry-After", "1"))
        except ValueError:
            retry = 1.0
        return RateLimited(message, retry_after_s=retry)
    if response.status_code == 403 and code == "raw_card_data_not_permitted":
        return RawCardDataNotPermitted(message, code=code)
    if response.status_code == 403:
        return NotPermitted(message, code=code)
    return UpstreamUnavailable(f"The vault answered {response.status_code}.")


class HttpCardVault:
    """`CardVault`: the vault over HTTPS with the ingress identity."""

    def __init__(
        self, base_url: str, *, credentials: ServiceCredentials | None, ca_file: Path | None
    ) -> None:
        self._http = _client(base_url, credentials, "vault", ca_file)

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable("The vault cannot be reached.") from exc

    async def attestation(self, merchant_id: str) -> Attestation | None:
        response = await self._send("GET", f"/v1/attestations/{merchant_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _vault_error(response)
        body = response.json()
        return Attestation(
            merchant_id=str(body["merchant_id"]),
            expires_on=date.fromisoformat(body["expires_on"]),
            recorded_at=datetime.fromisoformat(body["recorded_at"]),
        )

    async def tokenize(self, merchant_id: str, card: Mapping[str, Any]) -> tuple[str, CardDisplay]:
        response = await self._send(
            "POST", "/v1/tokens", json={"merchant_id": merchant_id, "card": dict(card)}
        )
        if response.status_code != 201:
            raise _vault_error(response)
        body = response.json()
        shown = body["card"]
        return str(body["token"]), CardDisplay(
            brand=str(shown["brand"]),
            last4=str(shown["last4"]),
            bin=str(shown["bin"]),
            exp_month=int(shown["exp_month"]),
            exp_year=int(shown["exp_year"]),
            fingerprint=str(shown["fingerprint"]),
        )

    async def delete(self, token: str, merchant_id: str) -> None:
        response = await self._send(
            "DELETE", f"/v1/tokens/{token}", params={"merchant_id": merchant_id}
        )
        if response.status_code not in {200, 204, 404}:
            raise _vault_error(response)

    async def ping(self) -> bool:
        try:
            return (await self._http.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def close(self) -> None:
        await self._http.aclose()


class HttpMerchantDirectory:
    """`MerchantDirectory`: the API's `/internal/v1/merchant-auth` over HTTPS."""

    def __init__(
        self, base_url: str, *, credentials: ServiceCredentials | None, ca_file: Path | None
    ) -> None:
        self._http = _client(base_url, credentials, "api", ca_file)

    async def authenticate(self, api_key: SecretKey) -> MerchantAuthorization:
        try:
            response = await self._http.post(
                "/internal/v1/merchant-auth", json={"api_key": api_key.reveal()}
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable("The merchant directory cannot be reached.") from exc
        if response.status_code == 401:
            raise MerchantUnauthenticated("Invalid API key provided.")
        if response.status_code != 200:
            raise UpstreamUnavailable(f"The merchant directory answered {response.status_code}.")
        try:
            body = response.json()
            capability = (body.get("capabilities") or {}).get("raw_card_data") or {}
            expires = capability.get("attestation_expires_at")
            return MerchantAuthorization(
                merchant_id=str(body["merchant_id"]),
                livemode=bool(body.get("livemode", False)),
                raw_card_data_active=capability.get("active") is True,
                attestation_expires_on=date.fromisoformat(expires[:10]) if expires else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamUnavailable("The merchant directory answered nonsense.") from exc

    async def close(self) -> None:
        await self._http.aclose()


class HttpChargeApi:
    """`ChargeApi`: the API's `POST /v1/charges` over HTTPS, merchant headers passed through."""

    def __init__(
        self, base_url: str, *, credentials: ServiceCredentials | None, ca_file: Path | None
    ) -> None:
        self._http = _client(base_url, credentials, "api", ca_file)

    async def create_charge(
        self, authorization: str, idempotency_key: str | None, body: Mapping[str, Any]
    ) -> ApiAnswer:
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self._http.post(
                "/v1/charges", content=json.dumps(body).encode("utf-8"), headers=headers
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable("The API cannot be reached; the outcome is unknown.") from exc
        return ApiAnswer(
            status=response.status_code,
            body=response.content,
            content_type=response.headers.get("content-type", "application/json"),
            replayed=response.headers.get("idempotent-replayed", "").lower() == "true",
        )

    async def close(self) -> None:
        await self._http.aclose()
