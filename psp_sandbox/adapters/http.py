"""PSP sandbox: webhook delivery over HTTP(S) with httpx.

Outside both zones. Verifies TLS against the FinCore development CA (the gateway serves its
webhook endpoint over TLS) and the system store; never disables verification.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx

from fincore.web import client_ssl_context
from psp_sandbox.ports import WebhookTransportError


class HttpxWebhookTransport:
    """`WebhookTransport` on one pooled httpx.AsyncClient."""

    def __init__(self, *, timeout_s: float, ca_file: Path | None) -> None:
        self._client = httpx.AsyncClient(
            verify=client_ssl_context(ca_file),
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            response = await self._client.post(url, content=body, headers=dict(headers))
        except httpx.TimeoutException as exc:
            raise WebhookTransportError(f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise WebhookTransportError(f"no answer ({type(exc).__name__})") from exc
        return response.status_code

    async def aclose(self) -> None:
        await self._client.aclose()
