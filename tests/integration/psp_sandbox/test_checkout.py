"""Checkout Sessions: the hosted page, success redirect, one-time use and expiry."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
import stripe

from tests.integration.psp_sandbox.peer import RecordingServer, SandboxServer

pytestmark = pytest.mark.psp

CARD = {"number": "4242 4242 4242 4242", "exp": "12 / 34", "cvc": "123", "name": "A Payer"}


def _session(sandbox: SandboxServer, **extra: Any) -> Any:
    return sandbox.stripe_client().v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "http://127.0.0.1:9/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1:9/cancel",
            "client_reference_id": "ps_test1",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 1250,
                        "product_data": {"name": "Two tickets"},
                    },
                    "quantity": 2,
                }
            ],
            "payment_intent_data": {"metadata": {"reference": "ps_test1"}},
            **extra,
        }
    )


def _pay(sandbox: SandboxServer, session_id: str, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{sandbox.url}/c/pay/{session_id}", data={**CARD, **fields}, follow_redirects=False
    )


def test_session_shape(sandbox: SandboxServer) -> None:
    """A session is Stripe-shaped: open, unpaid, a hosted URL, the total of its line items."""
    session = _session(sandbox)
    assert session.id.startswith("cs_test_")
    assert (session.status, session.payment_status, session.amount_total) == (
        "open",
        "unpaid",
        2500,
    )
    assert session.url == f"{sandbox.url}/c/pay/{session.id}"
    assert session.payment_intent is None
    assert session.expires_at > time.time() + 23 * 3600


def test_hosted_page_is_a_script_free_form_with_a_strict_csp(sandbox: SandboxServer) -> None:
    """The page has no scripts at all and a CSP that forbids them and any framing."""
    session = _session(sandbox)
    page = httpx.get(session.url)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self' http://127.0.0.1:9",
    ):
        assert directive in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in page.text.lower()
    assert re.search(r'<form method="post" action="/c/pay/' + session.id, page.text)
    assert "25.00 EUR" in page.text


def test_paying_redirects_to_success_and_completes_the_session(
    sandbox: SandboxServer, recorder: RecordingServer
) -> None:
    """A good card completes the session, creates a captured payment and emits the event."""
    session = _session(sandbox)
    response = _pay(sandbox, session.id)
    assert response.status_code == 303
    assert response.headers["location"] == f"http://127.0.0.1:9/done?session={session.id}"
    client = sandbox.stripe_client()
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    pi = client.v1.payment_intents.retrieve(paid.payment_intent)
    assert (pi.status, pi.amount_received, pi.metadata["reference"]) == (
        "succeeded",
        2500,
        "ps_test1",
    )
    events = recorder.wait_for(
        lambda evs: any(e["type"] == "checkout.session.completed" for e in evs)
    )
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    assert completed["data"]["object"]["id"] == session.id
    assert "4242424242424242" not in str(events)


def test_a_session_cannot_be_paid_twice(sandbox: SandboxServer) -> None:
    """After payment the page and the form refuse (409) and no second charge is made."""
    session = _session(sandbox)
    assert _pay(sandbox, session.id).status_code == 303
    again = _pay(sandbox, session.id, number="5555555555554444")
    assert again.status_code == 409
    assert "already been paid" in again.text
    assert httpx.get(session.url).status_code == 409
    client = sandbox.stripe_client()
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    charges = client.v1.charges.list(params={"payment_intent": pi_id})
    assert len(charges.data) == 1


def test_a_decline_keeps_the_session_open_for_another_card(sandbox: SandboxServer) -> None:
    """A declined card shows the decline on the page (402); a second card can still pay."""
    session = _session(sandbox)
    declined = _pay(sandbox, session.id, number="4000000000009995")
    assert declined.status_code == 402
    assert "Your card has insufficient funds." in declined.text
    assert "4000000000009995" not in declined.text
    assert sandbox.stripe_client().v1.checkout.sessions.retrieve(session.id).status == "open"
    assert _pay(sandbox, session.id).status_code == 303
    client = sandbox.stripe_client()
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    statuses = sorted(
        c.status for c in client.v1.charges.list(params={"payment_intent": pi_id}).data
    )
    assert statuses == ["failed", "succeeded"]


def test_a_bad_card_number_is_shown_not_echoed(sandbox: SandboxServer) -> None:
    """An invalid number is refused on the page without echoing what was typed."""
    session = _session(sandbox)
    response = _pay(sandbox, session.id, number="4242 4242 4242 4241")
    assert response.status_code == 402
    assert "Your card number is incorrect." in response.text
    assert "4241" not in response.text


def test_an_expired_session_cannot_be_paid(
    sandbox: SandboxServer, recorder: RecordingServer
) -> None:
    """Expiring a session (API) closes the page (410) and refuses payment."""
    session = _session(sandbox)
    expired = sandbox.stripe_client().v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    assert httpx.get(session.url).status_code == 410
    assert _pay(sandbox, session.id).status_code == 410
    recorder.wait_for(
        lambda evs: any(
            e["type"] == "checkout.session.expired" and e["data"]["object"]["id"] == session.id
            for e in evs
        )
    )
    with pytest.raises(stripe.InvalidRequestError):
        sandbox.stripe_client().v1.checkout.sessions.expire(session.id)


def test_sessions_expire_at_their_time(sandbox: SandboxServer) -> None:
    """A session past its expires_at is expired (the sandbox clock is moved, not waited on)."""
    session = _session(sandbox, expires_at=int(time.time()) + 120)
    assert sandbox.stripe_client().v1.checkout.sessions.retrieve(session.id).status == "open"
    sandbox.admin("POST", "/_sandbox/clock", {"advance_s": 121})
    assert sandbox.stripe_client().v1.checkout.sessions.retrieve(session.id).status == "expired"
    assert _pay(sandbox, session.id).status_code == 410


def test_expires_at_must_be_in_the_allowed_window(sandbox: SandboxServer) -> None:
    """Like Stripe, expires_at must lie between the minimum lifetime and 24 hours."""
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _session(sandbox, expires_at=int(time.time()) + 5)
    assert caught.value.param == "expires_at"
    with pytest.raises(stripe.InvalidRequestError):
        _session(sandbox, expires_at=int(time.time()) + 3 * 86400)


def test_unknown_session_page_is_404(sandbox: SandboxServer) -> None:
    """The hosted page of a session that does not exist is a 404 page."""
    assert httpx.get(sandbox.url + "/c/pay/cs_test_nope").status_code == 404
    assert _pay(sandbox, "cs_test_nope").status_code == 404


def test_sessions_refuse_what_the_sandbox_does_not_do(sandbox: SandboxServer) -> None:
    """Subscriptions and Prices are refused with a clear 400 rather than half-supported."""
    client = sandbox.stripe_client()
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "success_url": "http://127.0.0.1:9/",
                "line_items": [{"price": "price_123", "quantity": 1}],
            }
        )
    assert caught.value.param == "mode"
