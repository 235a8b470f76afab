"""Idempotency-Key with Stripe's semantics, written in the same unit of work as the events and
jobs: replay, reuse with other parameters, and 50 concurrent requests with one key, on SQLite
and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.api.conftest import CHARGE, Api, ApiFactory


def test_a_repeat_replays_the_first_answer(api: Api) -> None:
    """Same key and parameters: same status and body, marked Idempotent-Replayed."""
    key = api.merchant()
    first = api.post("/v1/charges", key, CHARGE, **{"Idempotency-Key": "order-1"})
    again = api.post("/v1/charges", key, CHARGE, **{"Idempotency-Key": "order-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(api.jobs("charge.authorize")) == 1


def test_the_same_key_with_other_parameters_is_refused(api: Api) -> None:
    """400 idempotency_error, and nothing is written."""
    key = api.merchant()
    api.post("/v1/charges", key, CHARGE, **{"Idempotency-Key": "order-2"})
    other = api.post("/v1/charges", key, {**CHARGE, "amount": 1}, **{"Idempotency-Key": "order-2"})
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    assert len(api.jobs()) == 1


def test_keys_are_scoped_per_merchant_and_errors_are_replayed(api: Api) -> None:
    """Two merchants may use the same key; a stored 4xx outcome is replayed too."""
    a, b = api.merchant("A"), api.merchant("B")
    first = api.post("/v1/charges", a, CHARGE, **{"Idempotency-Key": "shared"})
    second = api.post("/v1/charges", b, CHARGE, **{"Idempotency-Key": "shared"})
    assert first.json()["id"] != second.json()["id"]
    charge_id = first.json()["id"]
    refused = api.post("/v1/refunds", a, {"charge": charge_id}, **{"Idempotency-Key": "r1"})
    assert refused.status_code == 422
    api.succeed(charge_id)
    replayed = api.post("/v1/refunds", a, {"charge": charge_id}, **{"Idempotency-Key": "r1"})
    assert replayed.status_code == 422 and replayed.headers["idempotent-replayed"] == "true"
    fresh = api.post("/v1/refunds", a, {"charge": charge_id}, **{"Idempotency-Key": "r2"})
    assert fresh.status_code == 201


def test_validation_errors_are_not_stored(api: Api) -> None:
    """A request refused before it ran (invalid parameters) can be retried with its key."""
    key = api.merchant()
    bad = api.post("/v1/charges", key, {**CHARGE, "amount": -1}, **{"Idempotency-Key": "k"})
    assert bad.status_code == 400
    good = api.post("/v1/charges", key, CHARGE, **{"Idempotency-Key": "k"})
    assert good.status_code == 201


def test_an_invalid_key_is_refused(api: Api) -> None:
    """Keys are 1-255 printable ASCII characters."""
    key = api.merchant()
    response = api.post("/v1/charges", key, CHARGE, **{"Idempotency-Key": "x" * 256})
    assert response.status_code == 400 and response.json()["error"]["param"] == "Idempotency-Key"


def _fifty_at_once(api: Api) -> None:
    key = api.merchant()

    def send(_: int) -> tuple[int, dict[str, object]]:
        response = api.post("/v1/charges", key, CHARGE, **{"Idempotency-Key": "burst-1"})
        return response.status_code, response.json()

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(send, range(50)))
    created = [body for status, body in answers if status == 201]
    assert created, answers[:3]
    assert all(status in {201, 409} for status, _ in answers), {s for s, _ in answers}
    assert all(body == created[0] for body in created)
    merchant_id = api.merchant_id(key)
    requested = [
        e
        for e in api.runtime.platform.events.read_all(1, 10_000, merchant_id=merchant_id)
        if e.type == "charge.requested"
    ]
    assert len(requested) == 1
    assert len(api.jobs("charge.authorize")) == 1


def test_fifty_concurrent_requests_make_one_charge_on_sqlite(api: Api) -> None:
    """50 concurrent POSTs with one key: one charge, one job; the same answer or 409."""
    _fifty_at_once(api)


@pytest.mark.postgres
def test_fifty_concurrent_requests_make_one_charge_on_postgres(
    make_api: ApiFactory, fresh_postgres_url: Callable[[], str]
) -> None:
    """The same on PostgreSQL (platform and API tables in one database)."""
    url = fresh_postgres_url()
    _fifty_at_once(make_api(platform_url=url, api_url=url, rules=[], db_pool_size=20))


def test_payment_sessions_share_the_semantics(api: Api) -> None:
    """A session create is replayed too, with one gateway call only."""
    key = api.merchant()
    body = {
        "amount": 4200,
        "currency": "eur",
        "success_url": "https://shop.example/ok",
        "cancel_url": "https://shop.example/cart",
    }
    first = api.post("/v1/payment_sessions", key, body, **{"Idempotency-Key": "s1"})
    again = api.post("/v1/payment_sessions", key, body, **{"Idempotency-Key": "s1"})
    assert first.status_code == 201 and again.json() == first.json()
    changed = api.post(
        "/v1/payment_sessions", key, {**body, "amount": 1}, **{"Idempotency-Key": "s1"}
    )
    assert changed.status_code == 400
