"""The outbox relay's policy with the in-memory store: delivery oldest first, a global pause
with backoff while the API is down (one probe at a time), per-item backoff for refusals, the
give-up age, and delivery of everything once the API answers again."""

from __future__ import annotations

import asyncio

from cde.gateway.adapters.memory import MemoryGatewayStore
from cde.gateway.domain import RelayError
from cde.gateway.service.relay import OutboxRelay, RelayPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Api:
    """A `PspEventSink` that answers from a script: a status per call (None = no answer)."""

    def __init__(self) -> None:
        self.answers: list[int | None] = []
        self.stored: list[str] = []
        self.calls = 0

    async def deliver(self, body: str) -> None:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else 200
        if answer is None:
            raise RelayError("no answer (ConnectError)")
        if answer >= 300:
            raise RelayError(f"the API answered {answer}", status=answer)
        self.stored.append(body)

    async def close(self) -> None:
        return None


def setup(count: int) -> tuple[MemoryGatewayStore, Api, Clock, OutboxRelay]:
    store, api, clock = MemoryGatewayStore(), Api(), Clock()
    policy = RelayPolicy(retry_base_s=1.0, retry_max_s=8.0, give_up_after_s=100.0)
    relay = OutboxRelay(store=store, sink=api, policy=policy, clock=clock)

    async def fill() -> None:
        for n in range(count):
            await store.accept_event(f"evt_{n}", "t", clock.now, (f"pspevt_{n}", f"body{n}"))

    asyncio.run(fill())
    return store, api, clock, relay


def test_delivers_oldest_first() -> None:
    """Everything due is delivered in the order it was accepted."""
    store, api, _clock, relay = setup(3)
    assert asyncio.run(relay.run_once()) == 3
    assert api.stored == ["body0", "body1", "body2"]
    assert asyncio.run(store.outbox_counts())["delivered"] == 3


def test_an_outage_pauses_and_probes_with_one_item() -> None:
    """While the API is down each pass tries one item, waits longer each time, and hands the
    rest back untouched; when it is back everything goes."""
    store, api, clock, relay = setup(3)
    api.answers = [None, None, 503]
    assert asyncio.run(relay.run_once()) == 0
    assert api.calls == 1
    assert asyncio.run(relay.run_once()) == 0  # paused: no call at all
    assert api.calls == 1
    clock.now += 1.0
    assert asyncio.run(relay.run_once()) == 0
    assert api.calls == 2
    clock.now += 1.5  # the second pause is 2 s
    assert asyncio.run(relay.run_once()) == 0
    assert api.calls == 2
    clock.now += 0.5
    asyncio.run(relay.run_once())
    assert api.calls == 3  # a 503 counts as down too
    clock.now += 10.0
    assert asyncio.run(relay.run_once()) == 3
    assert sorted(api.stored) == ["body0", "body1", "body2"]
    untouched = [row.item.attempts for row in store.outbox.values()]
    assert sorted(untouched) == [0, 0, 3]  # only the probed item counted failures


def test_a_refused_item_backs_off_alone() -> None:
    """A 4xx for one event does not stop the others; that event retries later."""
    _store, api, clock, relay = setup(3)
    api.answers = [422]
    assert asyncio.run(relay.run_once()) == 2
    assert api.stored == ["body1", "body2"]
    assert asyncio.run(relay.run_once()) == 0  # its 1 s backoff is not over
    clock.now += 1.0
    assert asyncio.run(relay.run_once()) == 1
    assert api.stored[-1] == "body0"


def test_gives_up_after_the_age_limit() -> None:
    """An event still refused after `give_up_after_s` is kept as dead for an operator."""
    store, api, clock, relay = setup(1)
    api.answers = [400] * 50
    for _ in range(30):
        asyncio.run(relay.run_once())
        clock.now += 10.0
    counts = asyncio.run(store.outbox_counts())
    assert counts == {"pending": 0, "delivered": 0, "dead": 1}
    assert asyncio.run(store.requeue_dead(clock.now)) == 1
    api.answers = []
    assert asyncio.run(relay.run_once()) == 1


def test_run_forever_wakes_on_new_items() -> None:
    """The background loop delivers an item queued while it waits, without the poll delay."""

    async def scenario() -> list[str]:
        store, api = MemoryGatewayStore(), Api()
        relay = OutboxRelay(
            store=store, sink=api, policy=RelayPolicy(poll_s=30.0, purge_every_s=1e9)
        )
        task = asyncio.create_task(relay.run_forever())
        await asyncio.sleep(0.05)
        await store.accept_event("evt_w", "t", 0.0, ("pspevt_w", "woken"))
        relay.wake()
        for _ in range(100):
            if api.stored:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        return api.stored

    assert asyncio.run(scenario()) == ["woken"]
