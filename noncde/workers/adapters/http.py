"""noncde.workers adapters, HTTP (httpx): the CDE gateway's payment API, the API's internal
directory of webhook endpoints, and the sender of merchant webhooks.

Internal calls go over HTTPS with the dev CA and this process's service token
(`X-FinCore-Service-Token`, audience = the callee): the job worker as `worker`, the webhook
deliverer as `webhooks` (interfaces.md). Nothing here logs a token, a secret or a body.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from fincore.identity import ServiceCredentials
from fincore.sensitive import SecretKey
from fincore.web import service_client
from noncde.api.domain import AuthorizeCharge, CancelCharge, CaptureCharge, ExecuteRefund
from noncde.workers.domain.jobs import (
    GatewayRefused,
    GatewayUnavailable,
    PaymentAnswer,
    PaymentNotFound,
    RefundAnswer,
)
from noncde.workers.domain.webhooks import AttemptResult, DirectoryUnavailable, Endpoint

MAX_RESPONSE_BYTES = 4096


def _error_of(response: httpx.Response) -> tuple[str | None, str]:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return None, f"HTTP {response.status_code}"
    if not isinstance(error, dict):
        return None, f"HTTP {response.status_code}"
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    return code, message or f"HTTP {response.status_code}"


def _sync_client(
    base_url: str,
    *,
    credentials: ServiceCredentials | None,
    audience: str,
    ca_file: Path | None,
    timeout: float,
) -> httpx.Client:
    client = service_client(
        base_url, credentials=credentials, audience=audience, ca_file=ca_file, timeout=timeout
    )
    assert isinstance(client, httpx.Client)
    return client


class HttpGateway:
    """`Gateway` over the gateway's HTTPS API with the `worker` identity."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: ServiceCredentials | None,
        ca_file: Path | None,
        timeout_s: float = 15.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._client = client or _sync_client(
            base_url,
            credentials=credentials,
            audience="gateway",
            ca_file=ca_file,
            timeout=timeout_s,
        )

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise GatewayUnavailable("the gateway did not answer in time") from None
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(
                f"the gateway could not be reached ({type(exc).__name__})"
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            code, _ = _error_of(response)
            raise GatewayUnavailable(f"the gateway answered {response.status_code} ({code})")
        if response.status_code >= 400:
            code, message = _error_of(response)
            if response.status_code == 404 and code == "payment_not_found" and method == "GET":
                raise PaymentNotFound(message)
            raise GatewayRefused(response.status_code, code, message)
        try:
            body_out = response.json()
        except ValueError:
            raise GatewayUnavailable("the gateway's answer was not JSON") from None
        if not isinstance(body_out, dict):
            raise GatewayUnavailable("the gateway's answer was not a JSON object")
        return body_out

    def authorize(self, job: AuthorizeCharge) -> PaymentAnswer:
        return PaymentAnswer.from_json(
            self._request(
                "POST",
                "/v1/authorizations",
                {
                    "charge_id": job.charge_id,
                    "merchant_id": job.merchant_id,
                    "amount": job.amount,
                    "currency": job.currency,
                    "capture": job.capture,
                    "payment_method": dict(job.payment_method),
                },
            )
        )

    def capture(self, job: CaptureCharge) -> PaymentAnswer:
        return PaymentAnswer.from_json(
            self._request(
                "POST", "/v1/captures", {"charge_id": job.charge_id, "amount": job.amount}
            )
        )

    def cancel(self, job: CancelCharge) -> PaymentAnswer:
        return PaymentAnswer.from_json(
            self._request("POST", "/v1/cancellations", {"charge_id": job.charge_id})
        )

    def refund(self, job: ExecuteRefund, psp_reference: str | None = None) -> RefundAnswer:
        body: dict[str, Any] = {
            "refund_id": job.refund_id,
            "charge_id": job.charge_id,
            "amount": job.amount,
        }
        if psp_reference:
            body["psp_reference"] = psp_reference
        return RefundAnswer.from_json(self._request("POST", "/v1/refunds", body))

    def payment_status(self, charge_id: str) -> PaymentAnswer:
        return PaymentAnswer.from_json(self._request("GET", f"/v1/payments/{charge_id}"))

    def close(self) -> None:
        self._client.close()


class HttpEndpointDirectory:
    """`EndpointDirectory` over the API's `GET /internal/v1/webhook_endpoints` (identity
    `webhooks`), cached for `ttl_s`. The secrets stay in memory only, masked (SecretKey)."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: ServiceCredentials | None,
        ca_file: Path | None,
        ttl_s: float = 30.0,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._client = client or _sync_client(
            base_url, credentials=credentials, audience="api", ca_file=ca_file, timeout=timeout_s
        )
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cache: tuple[float, dict[str, Endpoint]] | None = None

    def _all(self) -> dict[str, Endpoint]:
        with self._lock:
            now = time.monotonic()
            if self._cache is not None and now - self._cache[0] < self._ttl_s:
                return self._cache[1]
            try:
                response = self._client.get("/internal/v1/webhook_endpoints")
            except httpx.HTTPError as exc:
                raise DirectoryUnavailable(
                    f"the API could not be reached ({type(exc).__name__})"
                ) from None
            if response.status_code != 200:
                raise DirectoryUnavailable(f"the API answered {response.status_code}")
            try:
                rows = response.json().get("data", [])
            except (ValueError, AttributeError):
                raise DirectoryUnavailable("the API's answer was not JSON") from None
            found = {e.id: e for e in (endpoint_from_json(row) for row in rows) if e is not None}
            self._cache = (now, found)
            return found

    def endpoints(self, merchant_id: str) -> list[Endpoint]:
        return [e for e in self._all().values() if e.merchant_id == merchant_id]

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._all().get(endpoint_id)

    def close(self) -> None:
        self._client.close()


def endpoint_from_json(row: Mapping[str, Any]) -> Endpoint | None:
    """An endpoint from the directory's JSON (`secret` in clear, wrapped at once)."""
    try:
        secret = row["secret"]
        if not isinstance(secret, str) or not secret:
            return None
        events = row.get("enabled_events") or ["*"]
        return Endpoint(
            id=str(row["id"]),
            merchant_id=str(row["merchant_id"]),
            url=str(row["url"]),
            enabled_events=tuple(str(e) for e in events),
            secret=SecretKey(secret),
            disabled=bool(row.get("disabled_at")),
        )
    except KeyError:
        return None


def _private_address(host: str) -> bool:
    """True when `host` is or resolves to a loopback, private, link-local or reserved address."""
    try:
        candidates = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return False  # unresolvable: the attempt fails on its own
        candidates = [ipaddress.ip_address(info[4][0]) for info in infos]
    return any(
        a.is_private or a.is_loopback or a.is_link_local or a.is_reserved or a.is_multicast
        for a in candidates
    )


class HttpxWebhookSender:
    """`WebhookSender` on httpx's async client: no redirects followed (a 3xx is a failed
    attempt, as on Stripe), the whole attempt bounded by `timeout_s`, at most 4 KiB of the
    answer read. Outside development, endpoints on private or loopback addresses are refused
    (SSRF: a merchant must not make us probe the internal network)."""

    def __init__(self, *, allow_private: bool, ca_file: Path | None = None) -> None:
        self._allow_private = allow_private
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._client = httpx.AsyncClient(
            verify=context,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> AttemptResult:
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 1)

        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            return AttemptResult.failed("refused: not an http(s) URL", elapsed())
        if not self._allow_private:
            private = await asyncio.get_running_loop().run_in_executor(
                None, _private_address, parts.hostname
            )
            if private:
                return AttemptResult.failed("refused: private or loopback address", elapsed())
        try:
            async with asyncio.timeout(timeout_s):
                request = self._client.build_request(
                    "POST", url, content=body, headers=dict(headers), timeout=timeout_s
                )
                response = await self._client.send(request, stream=True)
                try:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break
                finally:
                    await response.aclose()
        except TimeoutError:
            return AttemptResult.failed(f"timeout after {timeout_s:g}s", elapsed())
        except httpx.TimeoutException:
            return AttemptResult.failed(f"timeout after {timeout_s:g}s", elapsed())
        except httpx.HTTPError as exc:
            return AttemptResult.failed(f"connection failed: {type(exc).__name__}", elapsed())
        return AttemptResult(response.status_code, None, elapsed())

    async def aclose(self) -> None:
        await self._client.aclose()
