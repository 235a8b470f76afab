"""The API's stores against every backend: the counters (SQLite, PostgreSQL, Redis) and the
payment read model it lists from (PaymentDB of noncde.readmodels, SQLite and PostgreSQL),
including two projectors racing on one batch."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from noncde.api.adapters.redis import RedisCounters
from noncde.api.adapters.sql import SqlCounters, init_schema
from noncde.api.domain.risk import VelocitySeries
from noncde.api.ports import Counters, CursorNotFound, Page, PageRequest
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.readmodels.bootstrap import payment_queries
from tests.integration.api.conftest import CHARGE, ApiFactory

T = 1_800_000_000.0  # a fixed "now" (seconds), far from any bucket edge issue


class CountersContract:
    """Every Counters adapter: fixed-window hits, sliding-window counts, expiry."""

    counters: Counters

    def test_hits_count_within_a_window_and_restart_in_the_next(self) -> None:
        """A fixed window counts every hit and starts from one in the next window."""
        assert [self.counters.hit("k1", 10, T + i) for i in range(3)] == [1, 2, 3]
        assert self.counters.hit("k1", 10, T + 10) == 1
        assert self.counters.hit("k2", 10, T) == 1

    def test_sliding_windows_sum_their_buckets(self) -> None:
        """Events age out of a sliding window one bucket at a time."""
        series = [VelocitySeries("card:m:fp", 60, 1), VelocitySeries("merchant:m", 3600, 60)]
        for offset in (0, 10, 30):
            self.counters.add(series, T + offset)
        assert self.counters.count(series, T + 30) == {
            ("card:m:fp", 60): 3,
            ("merchant:m", 3600): 3,
        }
        assert self.counters.count(series, T + 65)[("card:m:fp", 60)] == 2
        assert self.counters.count(series, T + 95)[("card:m:fp", 60)] == 0
        assert self.counters.count(series, T + 3000)[("merchant:m", 3600)] == 3
        assert self.counters.count(series, T + 3700)[("merchant:m", 3600)] == 0

    def test_concurrent_hits_lose_nothing(self) -> None:
        """Hits from many threads are all counted (atomic increments)."""

        def hit() -> None:
            for _ in range(25):
                self.counters.hit("busy", 3600, T)

        threads = [threading.Thread(target=hit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert self.counters.hit("busy", 3600, T) == 201

    def test_purge_forgets_what_no_window_can_reach(self) -> None:
        """After purge, old buckets are gone and current ones stay."""
        self.counters.hit("old", 1, T)
        self.counters.add([VelocitySeries("v", 60, 1)], T)
        self.counters.purge(T + 10_000)
        assert self.counters.count([VelocitySeries("v", 60, 1)], T) == {("v", 60): 0} or (
            isinstance(self.counters, RedisCounters)  # Redis expires by TTL, not by purge
        )


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[SqlDatabase]:
    db = SqlDatabase(f"sqlite:///{tmp_path / 'api.db'}")
    init_schema(db)
    yield db
    db.dispose()


@pytest.fixture
def postgres_db(fresh_postgres_url: Callable[[], str]) -> Iterator[SqlDatabase]:
    db = SqlDatabase(fresh_postgres_url())
    init_schema(db)
    yield db
    db.dispose()


class TestSqliteCounters(CountersContract):
    @pytest.fixture(autouse=True)
    def _store(self, sqlite_db: SqlDatabase) -> None:
        self.counters = SqlCounters(sqlite_db)


@pytest.mark.postgres
class TestPostgresCounters(CountersContract):
    @pytest.fixture(autouse=True)
    def _store(self, postgres_db: SqlDatabase) -> None:
        self.counters = SqlCounters(postgres_db)


@pytest.mark.redis
class TestRedisCounters(CountersContract):
    @pytest.fixture(autouse=True)
    def _store(self, redis_url: str) -> Iterator[None]:
        counters = RedisCounters.from_url(redis_url)
        self.counters = counters
        yield
        counters.close()


def _racing_projectors(make_api: ApiFactory, **urls: Any) -> None:
    api = make_api(rules=[], **urls)
    key = api.merchant()
    ids = [
        api.post("/v1/charges", key, {**CHARGE, "amount": 100 + i}).json()["id"] for i in range(20)
    ]
    api.succeed(ids[0])
    events = api.runtime.platform.events.read_all(1, 10_000)
    fresh = payment_queries(
        env={"FINCORE_READMODELS_PAYMENTDB_URL": api.payments_url},
        page=Page,
        cursor_not_found=CursorNotFound,
    )
    # The API's own projector may have applied some already; a second and a third racing on
    # the whole feed must leave the same rows and the same position.
    barrier = threading.Barrier(2)

    def apply() -> None:
        barrier.wait()
        fresh.apply(events)

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fresh.position() == events[-1].position
    merchant_id = api.merchant_id(key)
    listed = fresh.list_charges(merchant_id, PageRequest(limit=100))
    assert [c.id for c in listed.data] == list(reversed(ids))
    assert listed.data[-1].status == "succeeded"
    assert len(fresh.list_events(merchant_id, PageRequest(limit=100)).data) == len(
        [e for e in events if e.merchant_id == merchant_id]
    )
    fresh.close()


def test_racing_projectors_apply_every_event_once_on_sqlite(make_api: ApiFactory) -> None:
    """Two projectors on one feed (two API processes) end in the same read model."""
    _racing_projectors(make_api)


@pytest.mark.postgres
def test_racing_projectors_apply_every_event_once_on_postgres(
    make_api: ApiFactory, fresh_postgres_url: Callable[[], str]
) -> None:
    """The same on PostgreSQL, where the position row is locked FOR UPDATE."""
    url = fresh_postgres_url()
    _racing_projectors(make_api, platform_url=url, api_url=url)


def _rate_limited(make_api: ApiFactory, **urls: Any) -> None:
    api = make_api(rules=[], rate_limit_per_s=3, **urls)
    key, other = api.merchant("busy"), api.merchant("quiet")
    answers = [api.get("/v1/charges", key) for _ in range(8)]
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses, statuses
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert api.get("/v1/charges", other).status_code == 200  # per key, not global


def test_the_api_rate_limits_per_key_with_the_default_counters(make_api: ApiFactory) -> None:
    """The default (hits counted in process, velocity in SQL): 429 with Retry-After."""
    _rate_limited(make_api)


@pytest.mark.redis
def test_the_api_rate_limits_per_key_with_redis_counters(
    make_api: ApiFactory, redis_url: str
) -> None:
    """The same with Redis counters (production)."""
    _rate_limited(make_api, counters_url=redis_url)
