"""The `GatewayStore` contract, run against every adapter: memory, SQLite and the real
PostgreSQL server. Records round-trip, claims are once-only, the webhook inbox drops
duplicates, and the outbox leases, retries, gives up, requeues and purges."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cde.gateway.adapters.memory import MemoryGatewayStore
from cde.gateway.adapters.sql import SqlGatewayStore
from cde.gateway.domain import (
    CheckoutStatus,
    MethodType,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    RefundStatus,
    SessionRecord,
)
from cde.gateway.ports import GatewayStore

Scenario = Callable[[GatewayStore], Awaitable[None]]


def payment(charge_id: str = "ch_aaaaaa01", **changes: Any) -> PaymentRecord:
    record = PaymentRecord(
        charge_id=charge_id,
        merchant_id="mer_a",
        amount=1200,
        currency="eur",
        capture=False,
        method_type=MethodType.vault_token,
        method_token="tok_abcdefghij",
        description=None,
        created_at=100.0,
        updated_at=100.0,
    )
    return replace(record, **changes)


class GatewayStoreContract:
    """What every `GatewayStore` adapter guarantees (not collected; subclassed per adapter)."""

    @pytest.fixture
    def make_store(self) -> Callable[[], GatewayStore]:
        raise NotImplementedError

    @pytest.fixture
    def run(self, make_store: Callable[[], GatewayStore]) -> Callable[[Scenario], None]:
        def run(scenario: Scenario) -> None:
            async def main() -> None:
                store = make_store()
                try:
                    await scenario(store)
                finally:
                    await store.close()

            asyncio.run(main())

        return run

    def test_payments_are_claimed_once_and_round_trip(
        self, run: Callable[[Scenario], None]
    ) -> None:
        """The first claim inserts; a second returns the stored record; saves overwrite."""

        async def scenario(store: GatewayStore) -> None:
            first, created = await store.claim_payment(payment())
            assert created and first == payment()
            again, created = await store.claim_payment(payment(amount=9))
            assert not created and again.amount == 1200
            done = payment(
                status=PaymentStatus.requires_capture,
                submitted=True,
                psp_reference="pi_abcdef123",
                psp_payment_method="pm_abcdefgh12",
                payment_method_attempts=2,
                amount_capturable=1200,
                decline_code=None,
                updated_at=101.5,
            )
            await store.save_payment(done)
            assert await store.payment("ch_aaaaaa01") == done
            assert await store.payment_by_psp_reference("pi_abcdef123") == done
            assert await store.payment("ch_missing00") is None
            stored = await store.payment("ch_aaaaaa01")
            assert stored is not None and stored.status is PaymentStatus.requires_capture
            assert stored.method_type is MethodType.vault_token and stored.submitted is True

        run(scenario)

    def test_refunds_and_sessions_round_trip(self, run: Callable[[Scenario], None]) -> None:
        """Refunds and checkout sessions are claimed once and found by the PSP's ids."""

        async def scenario(store: GatewayStore) -> None:
            refund = RefundRecord("re_aaaaaa01", "ch_aaaaaa01", None, 1.0, 1.0)
            assert (await store.claim_refund(refund))[1]
            assert not (await store.claim_refund(replace(refund, amount=5)))[1]
            made = replace(
                refund,
                status=RefundStatus.succeeded,
                psp_reference="re_psp0000001",
                amount_refunded=1200,
                currency="eur",
            )
            await store.save_refund(made)
            assert await store.refund("re_aaaaaa01") == made
            assert await store.refund_by_psp_reference("re_psp0000001") == made
            session = SessionRecord(
                "ps_aaaaaa01", "mer_a", 500, "usd", "https://m.example/ok", None, 2e9, 1.0, 1.0
            )
            assert (await store.claim_session(session))[1]
            paid = replace(
                session,
                psp_session_id="cs_test_0001",
                url="http://psp/c/pay/x",
                status=CheckoutStatus.complete,
                payment_reference="pi_paid000001",
            )
            await store.save_session(paid)
            assert await store.session("ps_aaaaaa01") == paid
            assert await store.session_by_psp_reference("cs_test_0001") == paid
            assert await store.session_by_psp_reference("pi_paid000001") == paid
            assert await store.session_by_psp_reference("pi_other00001") is None

        run(scenario)

    def test_an_event_is_accepted_once(self, run: Callable[[Scenario], None]) -> None:
        """A PSP event id is accepted once; its relay body is queued once; an event that is
        not relayed is still remembered."""

        async def scenario(store: GatewayStore) -> None:
            assert not await store.event_seen("evt_1")
            assert await store.accept_event(
                "evt_1", "payment_intent.succeeded", 10.0, ("pspevt_1", '{"id":"pspevt_1"}')
            )
            assert await store.event_seen("evt_1")
            assert not await store.accept_event(
                "evt_1", "payment_intent.succeeded", 11.0, ("pspevt_1", '{"id":"pspevt_1"}')
            )
            assert await store.accept_event("evt_2", "charge.succeeded", 12.0, None)
            assert not await store.accept_event("evt_2", "charge.succeeded", 13.0, None)
            assert await store.outbox_counts() == {"pending": 1, "delivered": 0, "dead": 0}
            items = await store.claim_due(20.0, 10, 30.0)
            assert [(i.event_id, i.body, i.attempts) for i in items] == [
                ("pspevt_1", '{"id":"pspevt_1"}', 0)
            ]

        run(scenario)

    def test_outbox_leases_retries_and_gives_up(self, run: Callable[[Scenario], None]) -> None:
        """Claims are leased and oldest first; failures wait for their time; a dead item
        waits for an operator's requeue."""

        async def scenario(store: GatewayStore) -> None:
            for n in range(3):
                await store.accept_event(f"evt_{n}", "t", 10.0 + n, (f"pspevt_{n}", f"body{n}"))
            first = await store.claim_due(20.0, 2, 30.0)
            assert [i.event_id for i in first] == ["pspevt_0", "pspevt_1"]
            second = await store.claim_due(21.0, 10, 30.0)
            assert [i.event_id for i in second] == ["pspevt_2"]  # the others are leased
            assert await store.claim_due(22.0, 10, 30.0) == []
            await store.release([first[1].id])
            assert [i.event_id for i in await store.claim_due(23.0, 10, 1000.0)] == ["pspevt_1"]
            await store.mark_failed(first[0].id, 1, 100.0, "the API answered 503", dead=False)
            await store.mark_delivered(second[0].id, 24.0)
            assert await store.claim_due(99.0, 10, 1.0) == []
            retry = await store.claim_due(100.0, 10, 1.0)
            assert [(i.event_id, i.attempts) for i in retry] == [("pspevt_0", 1)]
            await store.mark_failed(retry[0].id, 2, 200.0, "gave up", dead=True)
            assert await store.claim_due(250.0, 10, 1.0) == []  # pspevt_0 is dead
            counts = await store.outbox_counts()
            assert counts == {"pending": 1, "delivered": 1, "dead": 1}
            assert await store.requeue_dead(300.0) == 1
            again = [i for i in await store.claim_due(300.0, 10, 1.0) if i.event_id == "pspevt_0"]
            assert again and again[0].attempts == 0

        run(scenario)

    def test_purge_keeps_what_is_recent(self, run: Callable[[Scenario], None]) -> None:
        """Purge deletes delivered items and remembered event ids older than the cut-offs."""

        async def scenario(store: GatewayStore) -> None:
            await store.accept_event("evt_old", "t", 10.0, ("pspevt_old", "a"))
            await store.accept_event("evt_new", "t", 500.0, ("pspevt_new", "b"))
            for item in await store.claim_due(600.0, 10, 1.0):
                await store.mark_delivered(
                    item.id, 20.0 if item.event_id == "pspevt_old" else 600.0
                )
            removed = await store.purge(delivered_before=100.0, seen_before=100.0)
            assert removed == 2  # one outbox item, one event id
            assert not await store.event_seen("evt_old")
            assert await store.event_seen("evt_new")
            assert (await store.outbox_counts())["delivered"] == 1
            assert await store.ping()

        run(scenario)


class TestMemoryGatewayStore(GatewayStoreContract):
    @pytest.fixture
    def make_store(self) -> Callable[[], GatewayStore]:
        return MemoryGatewayStore


class TestSqliteGatewayStore(GatewayStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], GatewayStore]:
        return lambda: SqlGatewayStore.from_url(f"sqlite:///{tmp_path / 'cde' / 'gateway.db'}")

    def test_the_file_is_private(self, tmp_path: Path, run: Callable[[Scenario], None]) -> None:
        """The SQLite file is created 0600 in a 0700 folder."""

        async def scenario(store: GatewayStore) -> None:
            await store.claim_payment(payment())

        run(scenario)
        assert (tmp_path / "cde" / "gateway.db").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "cde").stat().st_mode & 0o777 == 0o700


@pytest.mark.postgres
class TestPostgresGatewayStore(GatewayStoreContract):
    @pytest.fixture
    def make_store(self, fresh_postgres_url: Callable[[], str]) -> Callable[[], GatewayStore]:
        url = fresh_postgres_url()
        return lambda: SqlGatewayStore.from_url(url)

    def test_concurrent_claims_are_disjoint(self, run: Callable[[Scenario], None]) -> None:
        """Two relay loops claiming at once never get the same item (SKIP LOCKED)."""

        async def scenario(store: GatewayStore) -> None:
            for n in range(40):
                await store.accept_event(f"evt_{n}", "t", 1.0, (f"pspevt_{n}", "x"))
            batches = await asyncio.gather(*(store.claim_due(5.0, 7, 60.0) for _ in range(8)))
            ids = [item.id for batch in batches for item in batch]
            assert len(ids) == len(set(ids)) == 40

        run(scenario)
