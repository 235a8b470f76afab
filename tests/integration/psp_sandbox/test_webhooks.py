"""Webhooks: signed exactly like Stripe's, queued durably, retried with backoff until a 2xx."""

from __future__ import annotations

import itertools
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from fincore.netutil import free_port
from tests.integration.psp_sandbox.peer import (
    RecordingServer,
    SandboxServer,
    start_sandbox,
    wait_until,
)

pytestmark = pytest.mark.psp


def _created_event(sandbox: SandboxServer, recorder: RecordingServer) -> dict[str, Any]:
    """Create a bare PaymentIntent (exactly one event: payment_intent.created)."""
    pi = sandbox.stripe_client().v1.payment_intents.create(
        params={"amount": 4321, "currency": "eur"}
    )
    events = recorder.wait_for(lambda evs: any(e["data"]["object"]["id"] == pi.id for e in evs))
    return next(e for e in events if e["data"]["object"]["id"] == pi.id)


def test_signature_verifies_with_the_stripe_sdk(
    sandbox: SandboxServer, recorder: RecordingServer
) -> None:
    """stripe.Webhook.construct_event accepts the sandbox's signature; another secret fails."""
    client = sandbox.stripe_client()
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2033, "cvc": "123"},
        }
    )
    pi = client.v1.payment_intents.create(
        params={"amount": 1234, "currency": "eur", "payment_method": pm.id, "confirm": True}
    )
    recorder.wait_for(
        lambda evs: any(
            e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == pi.id
            for e in evs
        )
    )
    received = next(r for r in recorder.for_object(pi.id) if b"payment_intent.succeeded" in r.body)
    header = received.headers["Stripe-Signature"]
    assert re.fullmatch(r"t=[0-9]+,v1=[0-9a-f]{64}", header)
    assert received.headers["Content-Type"].startswith("application/json")
    event = stripe.Webhook.construct_event(received.body, header, sandbox.webhook_secret)
    assert event["type"] == "payment_intent.succeeded"
    assert event["data"]["object"]["id"] == pi.id
    assert event["data"]["object"]["amount_received"] == 1234
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(received.body, header, "whsec_not_the_secret")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(received.body + b" ", header, sandbox.webhook_secret)


def test_event_types_of_a_payment_lifecycle(
    sandbox: SandboxServer, recorder: RecordingServer
) -> None:
    """Authorize, capture and refund emit Stripe's event types, retrievable from /v1/events."""
    client = sandbox.stripe_client()
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2033, "cvc": "123"},
        }
    )
    pi = client.v1.payment_intents.create(
        params={
            "amount": 800,
            "currency": "eur",
            "payment_method": pm.id,
            "confirm": True,
            "capture_method": "manual",
        }
    )
    client.v1.payment_intents.capture(pi.id)
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 300})
    wanted = [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.amount_capturable_updated",
        "charge.captured",
        "payment_intent.succeeded",
        "refund.created",
        "charge.refunded",
    ]

    def mine(events: list[dict[str, Any]]) -> list[str]:
        ids = {pi.id, pi.latest_charge, refund.id}
        return [e["type"] for e in events if e["data"]["object"]["id"] in ids]

    events = recorder.wait_for(lambda evs: len(mine(evs)) >= len(wanted))
    assert mine(events) == wanted
    last = events[-1]
    assert client.v1.events.retrieve(last["id"]).type == last["type"]
    assert last["request"]["id"].startswith("req_")


def test_retries_with_backoff_until_acknowledged(
    sandbox: SandboxServer, recorder: RecordingServer
) -> None:
    """Non-2xx answers are retried with doubling delays until the endpoint says 2xx."""
    recorder.fail_each = [500, 503, 404]
    event = _created_event(sandbox, recorder)
    wait_until(lambda: sandbox.deliveries(event["id"])[0]["state"] == "delivered")
    delivery = sandbox.deliveries(event["id"])[0]
    attempts = delivery["attempts"]
    assert [a["status"] for a in attempts] == [500, 503, 404, 200]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    # The schedule (base 0.2 s, doubling): each gap is at least the planned delay.
    for gap, planned in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert gap >= planned
    bodies = {r.body for r in recorder.received if event["id"].encode() in r.body}
    assert len(bodies) == 1, "every attempt carries the same event"
    signatures = {
        r.headers["Stripe-Signature"] for r in recorder.received if event["id"].encode() in r.body
    }
    for header in signatures:
        stripe.Webhook.construct_event(next(iter(bodies)), header, sandbox.webhook_secret)


def test_unreachable_endpoint_is_retried(sandbox: SandboxServer) -> None:
    """A refused connection counts as a failed attempt and the delivery stays queued."""
    sandbox.set_endpoints(f"http://127.0.0.1:{free_port()}/hook")
    pi = sandbox.stripe_client().v1.payment_intents.create(params={"amount": 5, "currency": "eur"})
    event_id = sandbox.stripe_client().v1.events.list(params={"limit": 1}).data[0].id

    def retried() -> bool:
        deliveries = sandbox.deliveries(event_id)
        return bool(deliveries) and len(deliveries[0]["attempts"]) >= 2

    wait_until(retried)
    delivery = sandbox.deliveries(event_id)[0]
    assert delivery["state"] == "pending"
    assert all(a["status"] is None and "no answer" in a["error"] for a in delivery["attempts"])
    assert pi.id


@pytest.fixture
def own_sandbox(tmp_path: Path) -> Iterator[tuple[Path, SandboxServer]]:
    generator: Generator[SandboxServer, None, None] = start_sandbox(tmp_path)
    server = next(generator)
    yield tmp_path, server
    generator.close()


def test_the_queue_survives_a_restart(own_sandbox: tuple[Path, SandboxServer]) -> None:
    """A delivery still failing when the sandbox stops is delivered after it restarts."""
    workdir, first = own_sandbox
    recorder = RecordingServer(always=500).start()
    try:
        first.set_endpoints(recorder.url)
        pi = first.stripe_client().v1.payment_intents.create(
            params={"amount": 77, "currency": "eur"}
        )
        wait_until(lambda: len(recorder.for_object(pi.id)) >= 1)
        first.process.stop()
        recorder.always = None
        before = len(recorder.for_object(pi.id))
        second_run: Generator[SandboxServer, None, None] = start_sandbox(workdir, keys=first)
        second = next(second_run)
        try:
            wait_until(lambda: len(recorder.for_object(pi.id)) > before)
            event = recorder.for_object(pi.id)[-1]
            stripe.Webhook.construct_event(
                event.body, event.headers["Stripe-Signature"], first.webhook_secret
            )
            wait_until(lambda: second.deliveries()[0]["state"] == "delivered")
        finally:
            second_run.close()
    finally:
        recorder.stop()
