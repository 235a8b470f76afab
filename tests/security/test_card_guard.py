"""`fincore.card_guard` in process: what it refuses (card numbers and card field names in the
path, query, headers and body, raw or encoded), what it lets through unchanged, and its two
answer forms (Stripe-style JSON, the dashboard's HTML page)."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from fincore.card_guard import CardDataGuard

PAN = "378282246310005"


def _client(*, html: bool = False, seen: list[str] | None = None) -> tuple[TestClient, list[bytes]]:
    received: list[bytes] = []

    async def echo(request: Request) -> Response:
        received.append(await request.body())
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/{rest:path}", echo, methods=["GET", "POST"])])
    guarded = CardDataGuard(
        app, max_body=1024, html=html, on_refusal=(seen.append if seen is not None else None)
    )
    return TestClient(guarded), received


def test_card_data_anywhere_is_refused_before_the_app_runs() -> None:
    """Path, query value and key, header value and name, JSON value and key, form field,
    URL-encoded and grouped forms: 400 `card_data_not_allowed`, the app never called, only
    the place reported."""
    seen: list[str] = []
    client, received = _client(seen=seen)
    spaced = "3782 822463 10005"
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/charges/{PAN}", {}),
        ("GET", "/x", {"params": {"q": spaced}}),
        ("GET", "/x", {"params": {"card[number]": "1"}}),
        ("GET", "/x", {"headers": {"X-Note": f"ref {PAN}"}}),
        ("GET", "/x", {"headers": {"CVC": "7391"}}),
        ("GET", "/x", {"headers": {"X-Note": "3782%20822463%2010005"}}),
        ("POST", "/x", {"json": {"metadata": {"note": PAN}}}),
        ("POST", "/x", {"json": {"metadata": {"cvc": "7391"}}}),
        ("POST", "/x", {"json": {"amount": int(PAN)}}),
        ("POST", "/x", {"data": {"reason": spaced}}),
        ("POST", "/x", {"data": {"security_code": "123"}}),
        ("POST", "/x", {"content": f"free text {PAN}".encode()}),
    ]
    for method, path, kwargs in attempts:
        answer = client.request(method, path, **kwargs)
        assert answer.status_code == 400, (path, kwargs)
        assert answer.json()["error"]["code"] == "card_data_not_allowed"
        assert PAN not in answer.text and answer.headers["cache-control"] == "no-store"
    assert received == []
    assert seen == ["path", "query", "query", "header", "header", "header", *["body"] * 6]


def test_clean_requests_pass_unchanged_and_big_bodies_are_413() -> None:
    """Ids, last four digits, timestamps and amounts are not card data: the body reaches the
    app byte for byte. A body over the limit is refused 413 unread."""
    client, received = _client()
    body = json.dumps({"last4": "0005", "created": 1764249490250, "id": "ch_0eagTf9ZxgJEpclnfcPam"})
    answer = client.post("/charges", content=body.encode(), params={"limit": "10"})
    assert answer.status_code == 200 and received == [body.encode()]
    assert client.post("/x", content=b"x" * 2048).status_code == 413


def test_the_dashboard_form_answers_with_an_html_page() -> None:
    """`html=True`: the refusal is a small page, not JSON, and names no value."""
    client, _ = _client(html=True)
    answer = client.post("/refunds", data={"reason": PAN})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "Card data is not accepted here" in answer.text and PAN not in answer.text
