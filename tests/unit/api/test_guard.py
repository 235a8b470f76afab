"""The card-data guard: what it finds, and that nothing behind it runs when it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from noncde.api.web.guard import CardDataGuard, inspect_body, inspect_head

PAN = "4111111111111111"


def scope(path: str = "/v1/charges", query: str = "", headers: Any = ()) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }


@pytest.mark.parametrize(
    ("where", "request_scope"),
    [
        ("path", scope(path=f"/v1/charges/{PAN}")),
        ("path", scope(path="/v1/charges/4111-1111-1111-1111")),
        ("query", scope(query=f"starting_after={PAN}")),
        ("query", scope(query="x=4111+1111+1111+1111")),
        ("query", scope(query="x=4111%201111%201111%201111")),
        ("query", scope(query="payment_method[card][number]=1")),
        ("query", scope(query="cvc=123")),
        ("header", scope(headers=[("user-agent", f"shop {PAN}")])),
        ("header", scope(headers=[("idempotency-key", f"order-{PAN}")])),
        ("header", scope(headers=[("x-note", "4111%201111%201111%201111")])),
        ("header", scope(headers=[("card-number", "x")])),
        ("header", scope(headers=[("cvv", "x")])),
    ],
)
def test_card_data_in_the_request_line_or_headers_is_found(
    where: str, request_scope: dict[str, Any]
) -> None:
    """PANs (raw, grouped, encoded) and card field names are found where they are."""
    assert inspect_head(request_scope) == where


def test_ordinary_requests_pass() -> None:
    """Ids, cursors, timestamps, keys and ordinary headers are not card data."""
    ordinary = scope(
        path="/v1/charges/ch_AbCdEfGh12345678",
        query="limit=10&created[gte]=1767225600&status=succeeded",
        headers=[
            ("authorization", "Bearer sk_test_abcDEF1234567890abcDEF1234567890"),
            ("idempotency-key", "2f1c8a4e-9b7d-4c3e-8a1f-6d5e4c3b2a19"),
            ("content-length", "120"),
            ("number-of-items", "3"),
        ],
    )
    assert inspect_head(ordinary) is None


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"note": PAN}},
        {"metadata": {"note": "card 4111 1111 1111 1111 thanks"}},
        {"description": "x", "amount": 4111111111111111},
        {"payment_method": {"type": "card", "card": {"number": "1"}}},
        {"metadata": {"cvc": "123"}},
        {"metadata": {PAN: "key is a card"}},
        {"list": [{"deep": [PAN]}]},
        {"metadata": {"note": "\\u0034111111111111111"}},
    ],
)
def test_card_data_in_json_bodies_is_found(body: dict[str, Any]) -> None:
    """Keys and values at any depth, numbers too; JSON escapes are decoded first."""
    raw = json.dumps(body).replace("\\\\u0034", "\\u0034").encode()
    assert inspect_body(raw)


def test_non_json_bodies_are_scanned_as_text_and_forms() -> None:
    """Broken JSON and form bodies are checked as text and as key-value pairs."""
    assert inspect_body(f'{{"amount": 1, "x": "{PAN}'.encode())
    assert inspect_body(b"payment_method[card][number]=1&amount=2")
    assert inspect_body(b"note=4111+1111+1111+1111")
    assert not inspect_body(b'{"amount": 1000, "currency": "usd", "created": 1767225600123}')
    assert not inspect_body(b"")


async def _run(guard: CardDataGuard, request_scope: Scope, body: bytes) -> tuple[int, Any, bool]:
    reached = False
    sent: list[Message] = []
    chunks = [body[:5], body[5:]]

    async def receive() -> Message:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    async def app(inner_scope: Scope, inner_receive: Receive, inner_send: Send) -> None:
        nonlocal reached
        reached = True
        message = await inner_receive()
        await inner_send({"type": "http.response.start", "status": 200, "headers": []})
        await inner_send({"type": "http.response.body", "body": message["body"]})

    guard.app = app
    await guard(request_scope, receive, send)
    status = sent[0]["status"]
    return status, sent[1]["body"], reached


@pytest.mark.anyio
async def test_the_guard_answers_400_and_never_calls_the_app() -> None:
    """A refused request never reaches the app; an accepted one reaches it with its body."""
    refused: list[str] = []
    guard = CardDataGuard(
        None,  # type: ignore[arg-type]
        ingress_url="https://127.0.0.1:8100",
        max_body=1024,
        on_refusal=refused.append,
    )
    status, body, reached = await _run(guard, scope(), json.dumps({"n": PAN}).encode())
    error = json.loads(body)["error"]
    assert (status, reached, refused) == (400, False, ["body"])
    assert error["code"] == "card_data_not_allowed" and "8100/v1/charges" in error["message"]
    assert PAN not in body.decode()
    payload = json.dumps({"amount": 5}).encode()
    status, echoed, reached = await _run(guard, scope(), payload)
    assert (status, echoed, reached) == (200, payload, True)
    status, _, reached = await _run(guard, scope(), b"x" * 2000)
    assert (status, reached) == (413, False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
