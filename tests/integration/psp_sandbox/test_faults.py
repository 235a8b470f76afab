"""Fault injection for chaos tests: latency, timeouts, 5xx, dropped, duplicated and reordered
webhooks, all set through the admin endpoint."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
import stripe

from tests.integration.psp_sandbox.peer import RecordingServer, SandboxServer, wait_until

pytestmark = pytest.mark.psp


def _search(sandbox: SandboxServer, reference: str) -> list[dict[str, Any]]:
    response = sandbox.api(
        "GET",
        "/v1/payment_intents/search",
        params={"query": f"metadata['reference']:'{reference}'"},
    )
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_admin_endpoints_need_the_admin_token(sandbox: SandboxServer) -> None:
    """Without the admin token (or with the API key) the admin endpoints answer 401."""
    assert httpx.get(sandbox.url + "/_sandbox/faults").status_code == 401
    wrong = httpx.post(
        sandbox.url + "/_sandbox/faults",
        json={"kind": "error"},
        headers={"Authorization": f"Bearer {sandbox.secret_key}"},
    )
    assert wrong.status_code == 401
    assert sandbox.admin("GET", "/_sandbox/faults") == {"faults": []}


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "meteor"},
        {"kind": "error", "status": 404},
        {"kind": "latency"},
        {"kind": "error", "next": 1, "rate": 0.5},
        {"kind": "webhook_out_of_order", "next": 1},
        {"kind": "timeout", "path_prefix": "/_sandbox/"},
        {"kind": "error", "colour": "red"},
    ],
)
def test_invalid_faults_are_refused(sandbox: SandboxServer, spec: dict[str, Any]) -> None:
    """A fault that makes no sense is a 400 and is not installed."""
    response = httpx.post(
        sandbox.url + "/_sandbox/faults",
        json=spec,
        headers={"Authorization": f"Bearer {sandbox.admin_token}"},
    )
    assert response.status_code == 400
    assert sandbox.admin("GET", "/_sandbox/faults") == {"faults": []}


def test_latency_makes_a_short_timeout_expire(sandbox: SandboxServer) -> None:
    """With 1.5 s of added latency a 0.5 s client times out; once used up, it answers."""
    sandbox.fault(kind="latency", ms=1500, next=1)
    with pytest.raises(httpx.ReadTimeout):
        sandbox.api("GET", "/v1/payment_intents", timeout=0.5)
    assert sandbox.api("GET", "/v1/payment_intents", timeout=0.5).status_code == 200


def test_timeout_after_executing_is_an_unknown_outcome(sandbox: SandboxServer) -> None:
    """The PSP does the work but the answer never comes in time: the payment exists."""
    sandbox.fault(kind="timeout", next=1, hold_s=3, execute=True)
    reference = "ch_" + secrets.token_hex(6)
    key = secrets.token_hex(8)
    client = sandbox.stripe_client(http_client=stripe.RequestsClient(timeout=0.5))
    params = {"amount": 990, "currency": "eur", "metadata": {"reference": reference}}
    with pytest.raises(stripe.APIConnectionError):
        client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    found = _search(sandbox, reference)
    assert len(found) == 1
    again = client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    assert again.id == found[0]["id"], "the retry with the same key replays, never duplicates"


def test_timeout_before_executing_does_nothing(sandbox: SandboxServer) -> None:
    """With execute=false the held request never runs."""
    sandbox.fault(kind="timeout", next=1, hold_s=2, execute=False)
    reference = "ch_" + secrets.token_hex(6)
    client = sandbox.stripe_client(http_client=stripe.RequestsClient(timeout=0.5))
    with pytest.raises(stripe.APIConnectionError):
        client.v1.payment_intents.create(
            params={"amount": 990, "currency": "eur", "metadata": {"reference": reference}}
        )
    assert _search(sandbox, reference) == []


def test_next_n_requests_get_a_5xx(sandbox: SandboxServer) -> None:
    """`next: 2` fails exactly two requests with Stripe's api_error shape, then stops."""
    sandbox.fault(kind="error", status=503, next=2)
    reference = "ch_" + secrets.token_hex(6)
    data = {"amount": "100", "currency": "eur", "metadata[reference]": reference}
    for _ in range(2):
        failed = sandbox.api("POST", "/v1/payment_intents", data=data)
        assert failed.status_code == 503
        assert failed.json()["error"]["type"] == "api_error"
    assert _search(sandbox, reference) == [], "a 5xx fault runs nothing"
    assert sandbox.api("POST", "/v1/payment_intents", data=data).status_code == 200
    assert sandbox.admin("GET", "/_sandbox/faults") == {"faults": []}


def test_rate_faults_and_path_prefixes(sandbox: SandboxServer) -> None:
    """rate=1 fails every matching request; other paths are untouched."""
    sandbox.fault(kind="error", rate=1.0, path_prefix="/v1/refunds")
    assert sandbox.api("GET", "/v1/refunds").status_code == 500
    assert sandbox.api("GET", "/v1/refunds").status_code == 500
    assert sandbox.api("GET", "/v1/payment_intents").status_code == 200
    sandbox.clear_faults()
    assert sandbox.api("GET", "/v1/refunds").status_code == 200


def _bare_payment(sandbox: SandboxServer) -> str:
    pi = sandbox.stripe_client().v1.payment_intents.create(params={"amount": 1, "currency": "eur"})
    return str(pi.id)


def _event_of(sandbox: SandboxServer, pi_id: str) -> str:
    events = sandbox.api("GET", "/v1/events", params={"limit": 20}).json()["data"]
    return str(next(e["id"] for e in events if e["data"]["object"]["id"] == pi_id))


def test_dropped_webhook(sandbox: SandboxServer, recorder: RecordingServer) -> None:
    """A dropped event is never delivered (until resent); the next one is."""
    sandbox.fault(kind="webhook_drop", next=1)
    dropped = _bare_payment(sandbox)
    delivered = _bare_payment(sandbox)
    wait_until(lambda: len(recorder.for_object(delivered)) == 1)
    assert recorder.for_object(dropped) == []
    event_id = _event_of(sandbox, dropped)
    assert [d["state"] for d in sandbox.deliveries(event_id)] == ["dropped"]
    sandbox.admin("POST", f"/_sandbox/webhooks/{event_id}/resend")
    wait_until(lambda: len(recorder.for_object(dropped)) == 1)


def test_duplicated_webhook(sandbox: SandboxServer, recorder: RecordingServer) -> None:
    """A duplicated event arrives twice with the same event id."""
    sandbox.fault(kind="webhook_duplicate", next=1)
    pi_id = _bare_payment(sandbox)
    wait_until(lambda: len(recorder.for_object(pi_id)) == 2)
    ids = {e["id"] for e in recorder.events() if e["data"]["object"]["id"] == pi_id}
    assert len(ids) == 1


def test_out_of_order_webhooks(sandbox: SandboxServer, recorder: RecordingServer) -> None:
    """The next three events are held, then delivered newest first."""
    sandbox.fault(kind="webhook_out_of_order", next=3, spacing_ms=50)
    ids = [_bare_payment(sandbox) for _ in range(3)]
    recorder.wait_for(lambda evs: sum(e["data"]["object"]["id"] in ids for e in evs) == 3)
    arrived = [
        e["data"]["object"]["id"] for e in recorder.events() if e["data"]["object"]["id"] in ids
    ]
    assert arrived == list(reversed(ids))
    assert sandbox.admin("GET", "/_sandbox/faults") == {"faults": []}
