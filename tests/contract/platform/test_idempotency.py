"""IdempotencyStore contract: every adapter (memory, SQLite, PostgreSQL, Redis) keeps it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from noncde.platform.adapters.memory import MemoryBackend, MemoryIdempotencyStore
from noncde.platform.adapters.redis import RedisIdempotencyStore
from noncde.platform.adapters.sql import SqlDatabase, SqlIdempotencyStore
from noncde.platform.domain import (
    CardDataRefused,
    InvalidArgument,
    ReservationLost,
    ReservationStatus,
    StoredResponse,
)
from noncde.platform.ports import IdempotencyStore
from tests.contract.platform.support import FakeClock, RealClock, sqlite_url

NEW, IN_FLIGHT, FINISHED, MISMATCH = (
    ReservationStatus.NEW,
    ReservationStatus.IN_FLIGHT,
    ReservationStatus.FINISHED,
    ReservationStatus.MISMATCH,
)
DAY = 24 * 3600
LOCK_TTL = 1.0
CREATED = StoredResponse(201, {"id": "ch_1", "status": "processing", "card": {"last4": "4242"}})


class IdempotencyContract:
    """The guarantees of `noncde.platform.ports.IdempotencyStore` (lock TTL 1 s)."""

    purges = True

    def expire_retention(self, store: IdempotencyStore, clock: FakeClock | RealClock) -> None:
        """Let a finished record pass its 24 h retention."""
        assert isinstance(clock, FakeClock)
        clock.advance(DAY - 60)
        assert store.reserve("mer_1", "key-1", "fp-a").status is FINISHED
        clock.advance(61)

    def test_first_reserve_owns_the_key(self, store: IdempotencyStore) -> None:
        """The first request gets NEW with a token; a repeat is IN_FLIGHT; another body MISMATCH."""
        first = store.reserve("mer_1", "key-1", "fp-a")
        assert first.status is NEW and first.token
        assert store.reserve("mer_1", "key-1", "fp-a").status is IN_FLIGHT
        assert store.reserve("mer_1", "key-1", "fp-b").status is MISMATCH

    def test_finished_key_replays_the_stored_response(self, store: IdempotencyStore) -> None:
        """After complete, the same request gets the stored response; another body MISMATCH."""
        reservation = store.reserve("mer_1", "key-1", "fp-a")
        store.complete(reservation, CREATED)
        again = store.reserve("mer_1", "key-1", "fp-a")
        assert again.status is FINISHED and again.response == CREATED
        assert store.reserve("mer_1", "key-1", "fp-b").status is MISMATCH
        with pytest.raises(ReservationLost):
            store.complete(reservation, CREATED)

    def test_release_frees_the_key(self, store: IdempotencyStore) -> None:
        """A released key can be reserved again (a failure that changed nothing)."""
        store.release(store.reserve("mer_1", "key-1", "fp-a"))
        assert store.reserve("mer_1", "key-1", "fp-b").status is NEW

    def test_keys_belong_to_one_merchant(self, store: IdempotencyStore) -> None:
        """The same key used by two merchants is two independent records."""
        store.complete(store.reserve("mer_1", "key-1", "fp-a"), CREATED)
        assert store.reserve("mer_2", "key-1", "fp-z").status is NEW

    def test_stale_in_flight_claim_can_be_taken_over(
        self, store: IdempotencyStore, clock: FakeClock | RealClock
    ) -> None:
        """After the lock TTL a stuck claim is reclaimable and the old owner cannot complete."""
        stale = store.reserve("mer_1", "key-1", "fp-a")
        clock.advance(LOCK_TTL + 0.3)
        fresh = store.reserve("mer_1", "key-1", "fp-a")
        assert fresh.status is NEW and fresh.token != stale.token
        with pytest.raises(ReservationLost):
            store.complete(stale, CREATED)
        store.release(stale)  # no-op: it is not the owner any more
        assert store.reserve("mer_1", "key-1", "fp-a").status is IN_FLIGHT
        store.complete(fresh, CREATED)
        assert store.reserve("mer_1", "key-1", "fp-a").response == CREATED

    def test_finished_record_expires_after_retention(
        self, store: IdempotencyStore, clock: FakeClock | RealClock
    ) -> None:
        """A finished record lasts at least 24 h, then the key is free again."""
        store.complete(store.reserve("mer_1", "key-1", "fp-a"), CREATED)
        self.expire_retention(store, clock)
        assert store.reserve("mer_1", "key-1", "fp-b").status is NEW

    def test_purge_removes_expired_records(
        self, store: IdempotencyStore, clock: FakeClock | RealClock
    ) -> None:
        """purge_expired deletes what expired and keeps what is live."""
        store.complete(store.reserve("mer_1", "key-old", "fp"), CREATED)
        if not self.purges:
            assert store.purge_expired() == 0
            return
        assert isinstance(clock, FakeClock)
        clock.advance(DAY + 1)
        store.complete(store.reserve("mer_1", "key-new", "fp"), CREATED)
        assert store.purge_expired() == 1
        assert store.reserve("mer_1", "key-new", "fp").status is FINISHED

    def test_card_data_is_refused(self, store: IdempotencyStore) -> None:
        """Neither a key nor a stored response may hold a card number."""
        with pytest.raises(CardDataRefused):
            store.reserve("mer_1", "4242424242424242", "fp")
        reservation = store.reserve("mer_1", "key-1", "fp")
        with pytest.raises(CardDataRefused):
            store.complete(reservation, StoredResponse(201, {"card": {"number": "x"}}))
        assert store.reserve("mer_1", "key-1", "fp").status is IN_FLIGHT

    def test_bad_arguments_are_refused(self, store: IdempotencyStore) -> None:
        """Keys are 1-255 printable characters; merchants are short references."""
        with pytest.raises(InvalidArgument):
            store.reserve("mer_1", "", "fp")
        with pytest.raises(InvalidArgument):
            store.reserve("mer 1", "key", "fp")
        with pytest.raises(InvalidArgument):
            store.reserve("mer_1", "k" * 256, "fp")

    def test_concurrent_reserves_have_one_winner(self, store: IdempotencyStore) -> None:
        """Of 8 threads racing for one key exactly one gets NEW."""
        results: list[ReservationStatus] = []
        barrier = threading.Barrier(8)

        def race() -> None:
            barrier.wait()
            results.append(store.reserve("mer_1", "race", "fp").status)

        threads = [threading.Thread(target=race) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == sorted([NEW] + [IN_FLIGHT] * 7)


def test_retention_below_24h_is_refused(tmp_path: Path) -> None:
    """No adapter accepts a retention shorter than 24 h."""
    with pytest.raises(InvalidArgument):
        MemoryIdempotencyStore(MemoryBackend(), retention_s=3600)
    db = SqlDatabase(sqlite_url(tmp_path))
    with pytest.raises(InvalidArgument):
        SqlIdempotencyStore(db, retention_s=DAY - 1)
    with pytest.raises(InvalidArgument):
        RedisIdempotencyStore(redis.Redis(), retention_s=60)
    db.dispose()


class TestMemoryIdempotencyStore(IdempotencyContract):
    @pytest.fixture
    def clock(self, fake_clock: FakeClock) -> FakeClock:
        return fake_clock

    @pytest.fixture
    def store(self, clock: FakeClock) -> IdempotencyStore:
        return MemoryIdempotencyStore(MemoryBackend(clock=clock), lock_ttl_s=LOCK_TTL)


class TestSqliteIdempotencyStore(IdempotencyContract):
    @pytest.fixture
    def clock(self, fake_clock: FakeClock) -> FakeClock:
        return fake_clock

    @pytest.fixture
    def store(self, tmp_path: Path, clock: FakeClock) -> Iterator[IdempotencyStore]:
        db = SqlDatabase(sqlite_url(tmp_path))
        db.init_schema()
        yield SqlIdempotencyStore(db, lock_ttl_s=LOCK_TTL, clock=clock)
        db.dispose()


@pytest.mark.postgres
class TestPostgresIdempotencyStore(IdempotencyContract):
    @pytest.fixture
    def clock(self, fake_clock: FakeClock) -> FakeClock:
        return fake_clock

    @pytest.fixture
    def store(
        self, fresh_postgres_url: Callable[[], str], clock: FakeClock
    ) -> Iterator[IdempotencyStore]:
        db = SqlDatabase(fresh_postgres_url())
        db.init_schema()
        yield SqlIdempotencyStore(db, lock_ttl_s=LOCK_TTL, clock=clock)
        db.dispose()


@pytest.mark.redis
class TestRedisIdempotencyStore(IdempotencyContract):
    """The local Redis server; Redis keeps the time (PX), so the clock is real."""

    purges = False

    @pytest.fixture
    def clock(self) -> RealClock:
        return RealClock()

    @pytest.fixture
    def store(self, redis_url: str) -> IdempotencyStore:
        return RedisIdempotencyStore.from_url(redis_url, lock_ttl_s=LOCK_TTL)

    def expire_retention(self, store: IdempotencyStore, clock: FakeClock | RealClock) -> None:
        """Redis expires keys itself: check the TTL is the retention, then let it lapse."""
        assert isinstance(store, RedisIdempotencyStore)
        (name,) = store.client.keys(store.prefix + "*")
        assert DAY * 1000 - 60_000 <= store.client.pttl(name) <= DAY * 1000
        store.client.pexpire(name, 50)
        clock.advance(0.2)
