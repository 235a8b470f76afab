"""noncde.api (non-CDE): the card-data guard, the outermost ASGI middleware of the API.

PCI DSS checklist A2 (S1 §4 "CHD received via an unintended channel", 3.2.1): a request that
carries a card-like number (Luhn-valid 13-19 digits with an issuer prefix, raw or grouped) or a
card field name (`number`, `pan`, `cvc`, `cvv`, `security_code`…) anywhere — path, query string,
header names and values, JSON body keys and values (metadata, description), form bodies, or the
Idempotency-Key — is answered with a generic 400 before any other code sees it: before the
access log, the metrics, the request-id binding, validation, authentication or storage. Nothing
of the request is logged; only the kind of place (`path`, `query`, `header`, `body`) is counted.
Raw cards belong on the CDE card ingress, which the message names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fincore.cards import contains_card_number, find_card_data, is_card_key
from fincore.ids import random_id

_KEY_PARTS = re.compile(r"[\[\].]+")


def _card_key(name: str) -> bool:
    """A field name that carries card data, also inside `a[b][number]` or `a.b.cvc`."""
    if is_card_key(name) or contains_card_number(name):
        return True
    return any(is_card_key(part) for part in _KEY_PARTS.split(name) if part)


def _pairs_hold_card_data(pairs: list[tuple[str, str]]) -> bool:
    return any(_card_key(key) or contains_card_number(value) for key, value in pairs)


def inspect_head(scope: Scope) -> str | None:
    """Where card data sits in the request line or headers (`path`, `query`, `header`)."""
    if contains_card_number(scope.get("path", "")):
        return "path"
    raw_path = scope.get("raw_path")
    if raw_path and contains_card_number(unquote(raw_path.decode("latin-1"))):
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        if contains_card_number(unquote_plus(query)):
            return "query"
        if _pairs_hold_card_data(parse_qsl(query, keep_blank_values=True)):
            return "query"
    for name_raw, value_raw in scope.get("headers", ()):
        name = name_raw.decode("latin-1")
        value = value_raw.decode("latin-1")
        if _card_key(name) or contains_card_number(value):
            return "header"
        if "%" in value and contains_card_number(unquote(value)):
            return "header"
    return None


def inspect_body(body: bytes) -> bool:
    """True when the body holds card data (JSON: keys and values; otherwise the text)."""
    if not body:
        return False
    text = body.decode("utf-8", errors="replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    else:
        return bool(find_card_data(parsed))
    if contains_card_number(text) or contains_card_number(unquote_plus(text)):
        return True
    return "=" in text and _pairs_hold_card_data(parse_qsl(text, keep_blank_values=True))


class CardDataGuard:
    """Pure ASGI middleware: refuse card data before anything else runs (see module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        ingress_url: str,
        max_body: int,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.on_refusal = on_refusal
        self.message = (
            "Card data is not accepted by this API and was discarded unread. Send raw card "
            f"data only to the card ingress ({ingress_url}/v1/charges) if your account is "
            "permitted, or use a PSP token or a payment session."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = inspect_head(scope)
        if where is not None:
            await self._refuse(where, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if inspect_body(body):
            await self._refuse("body", send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _respond(self, send: Send, status: int, error: dict[str, Any]) -> None:
        request_id = random_id("req", 12)
        error["request_id"] = request_id
        payload = json.dumps({"error": error}).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode("ascii")),
                    (b"x-request-id", request_id.encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _refuse(self, where: str, send: Send) -> None:
        if self.on_refusal is not None:
            self.on_refusal(where)
        await self._respond(
            send,
            400,
            {
                "type": "invalid_request_error",
                "code": "card_data_not_allowed",
                "message": self.message,
            },
        )

    async def _too_large(self, send: Send) -> None:
        await self._respond(
            send,
            413,
            {
                "type": "invalid_request_error",
                "code": "request_too_large",
                "message": "The request body is too large.",
            },
        )
