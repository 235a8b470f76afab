"""Shared kernel, used at the non-CDE zone's HTTP edges: the card-data guard middleware.

PCI DSS checklist A2 (S1 §4 "CHD received via an unintended channel", 3.2.1): a non-CDE
process must refuse a request that carries a card-like number (Luhn-valid 13-19 digits with an
issuer prefix, raw or grouped, `fincore.cards`) or a card field name (`number`, `pan`, `cvc`,
`cvv`, `security_code`…) anywhere — path, query string, header names and values, JSON keys and
values, form fields — with a generic 400 before any other code sees it: before the access
log, validation, authentication, sessions or storage. Nothing of the request is logged; only
the kind of place (`path`, `query`, `header`, `body`) is reported to `on_refusal`.

Every non-CDE entry point uses it: the merchant API (`noncde/api/web/guard.py` only adds its
message, which names the card ingress), the staff dashboard's pages and forms, and the
workers' and read models' health and status endpoints.
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
REFUSAL_MESSAGE = (
    "Card data is not accepted here and was discarded unread. Card numbers and security "
    "codes belong only to the card vault's ingress or the PSP's own page."
)
_HTML = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Refused</title></head>"
    "<body><h1>{title}</h1><p>{text}</p></body></html>"
)
_HTML_TEXT = {
    400: (
        "Card data is not accepted here",
        "The request held something that looks like a card number or a security code, so "
        "it was discarded unread and nothing was changed. Remove it and try again.",
    ),
    413: ("Too large", "The request is too large; nothing was changed."),
}


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
    if query and (
        contains_card_number(unquote_plus(query))
        or _pairs_hold_card_data(parse_qsl(query, keep_blank_values=True))
    ):
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
    """True when the body holds card data (JSON: keys and values; a form: fields and values;
    anything else: its text)."""
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
    """Pure ASGI middleware: refuse card data before anything else runs (see module doc).

    `html` answers with a small HTML page (the dashboard) instead of a Stripe-style JSON error
    object; `message` replaces the JSON refusal's message. Bodies above `max_body` are
    answered 413 without being inspected further.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        html: bool = False,
        message: str = REFUSAL_MESSAGE,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.html = html
        self.message = message
        self.on_refusal = on_refusal

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
                await self._respond(send, 413, "request_too_large", "The request is too large.")
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

    async def _refuse(self, where: str, send: Send) -> None:
        if self.on_refusal is not None:
            self.on_refusal(where)
        await self._respond(send, 400, "card_data_not_allowed", self.message)

    async def _respond(self, send: Send, status: int, code: str, message: str) -> None:
        request_id = random_id("req", 12)
        if self.html:
            title, text = _HTML_TEXT[status]
            payload = _HTML.format(title=title, text=text).encode("utf-8")
            kind = b"text/html; charset=utf-8"
        else:
            error = {
                "type": "invalid_request_error",
                "code": code,
                "message": message,
                "request_id": request_id,
            }
            payload = json.dumps({"error": error}).encode("utf-8")
            kind = b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(payload)).encode("ascii")),
                    (b"cache-control", b"no-store"),
                    (b"x-request-id", request_id.encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
