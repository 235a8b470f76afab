"""The web kit's conventions: health, metrics, Stripe-style errors, size limit, no echo."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.harness.sample_service import build


@pytest.fixture
def client() -> TestClient:
    return TestClient(build(), raise_server_exceptions=False)


def test_health_and_readiness(client: TestClient) -> None:
    """/healthz answers ok and /readyz reports each readiness check."""
    assert client.get("/healthz").json() == {"status": "ok", "component": "sample"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"always": True}


def test_failing_readiness_check_gives_503() -> None:
    """A readiness check that fails or raises makes /readyz answer 503 and name it."""
    app = build()

    def broken() -> bool:
        raise ConnectionError("db down")

    app.state.readiness["db"] = broken
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["db"] is False


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    """Prometheus counters and latency histograms are labelled by route template and status."""
    client.post("/v1/echo", json={"amount": 1, "currency": "usd"})
    client.get("/v1/teapot")
    text = client.get("/metrics").text
    assert (
        'http_requests_total{component="sample",method="POST",route="/v1/echo",status="200"} 1.0'
        in text
    )
    assert 'route="/v1/teapot",status="402"' in text
    assert "http_request_duration_seconds_bucket" in text


def test_plain_starlette_route_is_labelled_by_its_template_not_its_path() -> None:
    """A route added with `app.router.add_route` (the vault's hot routes) is counted under its
    template: FastAPI does not put such a route in `scope["route"]`, and the raw path could
    carry a token or anything a caller typed."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    app = build()

    async def plain(request: Request) -> JSONResponse:
        return JSONResponse({"seen": request.path_params["item"]})

    app.router.add_route("/v1/plain/{item}", plain, methods=["POST"])
    client = TestClient(app)
    for item in ("tok_first", "tok_second"):
        assert client.post(f"/v1/plain/{item}").status_code == 200
    client.post("/v1/no-such-route")
    text = client.get("/metrics").text
    assert 'method="POST",route="/v1/plain/{item}",status="200"} 2.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "tok_first" not in text and "no-such-route" not in text


def test_validation_error_names_the_param_and_never_echoes_the_value(client: TestClient) -> None:
    """A bad value gets 400 with `param` and a message that does not repeat the input."""
    response = client.post("/v1/echo", json={"amount": "4242424242424242x", "currency": "usd"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "amount" and error["type"] == "invalid_request_error"
    assert "4242" not in response.text


def test_missing_param_and_bad_json(client: TestClient) -> None:
    """Missing fields and malformed JSON get clear 400 errors."""
    missing = client.post("/v1/echo", json={"amount": 5})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "parameter_missing"
    assert missing.json()["error"]["param"] == "currency"
    bad = client.post(
        "/v1/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "body_invalid"


def test_api_error_is_stripe_shaped_with_request_id(client: TestClient) -> None:
    """ApiError becomes {"error": {type, code, message}} and carries the request id."""
    response = client.get("/v1/teapot", headers={"X-Request-Id": "req_test_123"})
    assert response.status_code == 402
    assert response.headers["x-request-id"] == "req_test_123"
    assert response.json() == {
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "message": "Your card was declined.",
            "request_id": "req_test_123",
        }
    }


def test_unhandled_errors_hide_their_detail(client: TestClient) -> None:
    """An unexpected exception answers 500 without its message."""
    response = client.get("/v1/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret" not in response.text and "4242" not in response.text


def test_oversized_body_is_refused(client: TestClient) -> None:
    """Bodies above the limit get 413, by declared length or by counting."""
    big = b'{"amount": 1, "currency": "' + b"x" * 2000 + b'"}'
    response = client.post("/v1/echo", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unknown_route_is_404_error_object(client: TestClient) -> None:
    """Unknown paths get the same error shape."""
    response = client.get("/nope")
    assert (
        response.status_code == 404 and response.json()["error"]["type"] == "invalid_request_error"
    )


def test_bad_request_id_is_replaced(client: TestClient) -> None:
    """A request id with odd characters is not reflected; a fresh one is issued."""
    response = client.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert response.headers["x-request-id"].startswith("req_")


def _direct_app() -> tuple[TestClient, list[str]]:
    """The sample service with direct routes, and a record of what its router was asked."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse

    from fincore.web import ApiError, direct_route

    app = build()
    routed: list[str] = []

    def teapot_for_409(_request: Request, _exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("status handler", status_code=409)  # a sync handler

    app.add_exception_handler(409, teapot_for_409)

    async def direct(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("fail") == "api":
            raise ApiError(402, "Your card was declined.", type="card_error", code="card_declined")
        if body.get("fail") == "boom":
            raise RuntimeError("secret 4242424242424242")
        if body.get("fail") == "http":
            raise HTTPException(409, "Already done.")
        return JSONResponse({"item": request.path_params.get("item"), "body": body}, 201)

    direct_route(app, "/v1/direct", direct, methods=["POST"])
    direct_route(app, "/v1/direct/{item}/go", direct, methods=["post"])
    client = TestClient(app, raise_server_exceptions=False)
    client.get("/healthz")  # builds the middleware stack
    router = app.router
    original = type(router).__call__

    async def watched(self, scope, receive, send):  # type: ignore[no-untyped-def]
        routed.append(scope["path"])
        await original(self, scope, receive, send)

    router.__class__ = type("WatchedRouter", (type(router),), {"__call__": watched})
    return client, routed


def test_direct_routes_skip_the_router_but_keep_everything_the_service_kit_gives() -> None:
    """A direct route (the vault's tokenize and detokenize) is served by the service middleware
    itself: the router never sees it, yet it gets path parameters, the request id, metrics and
    access log by template, the app's error handlers and the size limit like any route."""
    client, routed = _direct_app()
    ok = client.post("/v1/direct", json={"a": 1}, headers={"X-Request-Id": "req_direct_1"})
    assert ok.status_code == 201 and ok.json() == {"item": None, "body": {"a": 1}}
    assert ok.headers["x-request-id"] == "req_direct_1"
    templated = client.post("/v1/direct/tok_abc/go", json={})
    assert templated.status_code == 201 and templated.json()["item"] == "tok_abc"
    declined = client.post("/v1/direct", json={"fail": "api"}, headers={"X-Request-Id": "req_d2"})
    assert declined.status_code == 402
    assert declined.json()["error"] == {
        "type": "card_error",
        "code": "card_declined",
        "message": "Your card was declined.",
        "request_id": "req_d2",
    }
    conflict = client.post("/v1/direct", json={"fail": "http"})
    assert conflict.status_code == 409 and conflict.text == "status handler"
    boom = client.post("/v1/direct", json={"fail": "boom"})
    assert boom.status_code == 500 and boom.json()["error"]["code"] == "internal_error"
    assert "secret" not in boom.text and "4242" not in boom.text
    too_big = client.post("/v1/direct", content=b'{"a":"' + b"x" * 70000 + b'"}')
    assert too_big.status_code == 413
    assert routed == []  # none of them went through the router
    # Other methods and paths still go through the router: 405 and 404 as before.
    assert client.get("/v1/direct").status_code == 405
    assert client.post("/v1/direct/tok_abc").status_code == 404
    assert routed == ["/v1/direct", "/v1/direct/tok_abc"]
    text = client.get("/metrics").text
    assert 'method="POST",route="/v1/direct",status="201"} 1.0' in text
    assert 'method="POST",route="/v1/direct/{item}/go",status="201"} 1.0' in text
    assert 'method="POST",route="/v1/direct",status="402"} 1.0' in text
    assert "tok_abc" not in text
