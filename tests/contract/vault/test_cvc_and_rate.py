"""One contract for every CVC TTL store (process memory, Redis) and every rate limiter
(process memory, Redis): sealed bytes only, TTL, read-once under concurrency, token buckets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from cde.vault.adapters.memory import MemoryCvcStore, MemoryRateLimiter
from cde.vault.adapters.redis import RedisCvcStore, RedisRateLimiter
from cde.vault.ports import CvcStore, RateLimiter


class CvcStoreContract:
    """Every CVC store keeps these promises (cde.vault.ports.CvcStore). Not collected.

    Each test runs in one event loop that creates and closes its store (an asyncio Redis
    client belongs to the loop it first ran in)."""

    def make(self) -> CvcStore:
        raise NotImplementedError

    async def wait(self, seconds: float) -> None:
        """Let `seconds` pass for the store's TTL clock."""
        await asyncio.sleep(seconds)

    def run(self, test: Callable[[CvcStore], Awaitable[None]]) -> None:
        async def body() -> None:
            store = self.make()
            try:
                await test(store)
            finally:
                await store.close()

        asyncio.run(body())

    def test_take_returns_once(self) -> None:
        """An entry is returned by the first take and by no later one."""

        async def test(store: CvcStore) -> None:
            await store.put("tok_a", b"sealed-1", 60)
            assert await store.take("tok_a") == b"sealed-1"
            assert await store.take("tok_a") is None
            assert await store.take("tok_never") is None

        self.run(test)

    def test_delete_and_overwrite(self) -> None:
        """delete removes an entry; put replaces one."""

        async def test(store: CvcStore) -> None:
            await store.put("tok_a", b"one", 60)
            await store.put("tok_a", b"two", 60)
            await store.put("tok_b", b"three", 60)
            await store.delete("tok_b")
            await store.delete("tok_never")
            assert await store.take("tok_b") is None
            assert await store.take("tok_a") == b"two"

        self.run(test)

    def test_entries_expire(self) -> None:
        """After its TTL an entry is gone."""

        async def test(store: CvcStore) -> None:
            await store.put("tok_short", b"x", 1)
            await store.put("tok_long", b"y", 60)
            await self.wait(1.3)
            assert await store.take("tok_short") is None
            assert await store.take("tok_long") == b"y"

        self.run(test)

    def test_concurrent_takes_get_it_once(self) -> None:
        """Of many concurrent takes exactly one gets the CVC (PCI DSS 3.3.1)."""

        async def test(store: CvcStore) -> None:
            await store.put("tok_race", b"cvc", 60)
            results = await asyncio.gather(*(store.take("tok_race") for _ in range(25)))
            assert [r for r in results if r is not None] == [b"cvc"]
            assert await store.ping()

        self.run(test)


class TestMemoryCvcStore(CvcStoreContract):
    def make(self) -> CvcStore:
        self.now = [100.0]
        return MemoryCvcStore(monotonic=lambda: self.now[0])

    async def wait(self, seconds: float) -> None:
        self.now[0] += seconds

    def test_the_memory_store_is_one_process_only(self) -> None:
        """It says so, which is why the vault refuses two workers with it."""
        assert self.make().shared is False

    def test_expired_cvcs_are_released_and_an_overwrite_keeps_its_own_ttl(self) -> None:
        """Expired entries leave memory on the next put (the sweep), not only reads; a CVC put
        again under the same token lives by its new TTL, not the old one's expiry."""
        store = self.make()
        assert isinstance(store, MemoryCvcStore)

        async def test() -> None:
            for i in range(100):
                await store.put(f"tok_{i}", b"cvc", 10)
            await store.put("tok_again", b"old", 10)
            await self.wait(5)
            await store.put("tok_again", b"new", 60)
            await self.wait(6)  # the first 101 entries have expired; tok_again has not
            await store.put("tok_late", b"cvc", 60)
            assert len(store._entries) == 2
            assert await store.take("tok_again") == b"new"

        asyncio.run(test())


@pytest.mark.redis
class TestRedisCvcStore(CvcStoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, redis_url: str) -> None:
        self.url = redis_url

    def make(self) -> CvcStore:
        return RedisCvcStore(self.url)

    def test_redis_holds_only_sealed_bytes_with_a_ttl(self) -> None:
        """The key carries a TTL of at most the given seconds; the value is what was put."""
        import redis

        async def test(store: CvcStore) -> None:
            await store.put("tok_ttl", b"FCC1sealed", 900)
            assert store.shared is True

        self.run(test)
        client = redis.Redis.from_url(self.url)
        keys = client.keys("*")
        assert keys == [b"fincore:vault:cvc:tok_ttl"]
        assert 0 < client.ttl(keys[0]) <= 900
        assert client.get(keys[0]) == b"FCC1sealed"
        client.close()


class RateLimiterContract:
    """Every rate limiter keeps these promises (cde.vault.ports.RateLimiter). Not collected."""

    def make(self) -> RateLimiter:
        raise NotImplementedError

    def run(self, test: Callable[[RateLimiter], Awaitable[None]]) -> None:
        async def body() -> None:
            limiter = self.make()
            try:
                await test(limiter)
            finally:
                await limiter.close()

        asyncio.run(body())

    def test_burst_then_refuse_per_key(self) -> None:
        """Five pass (the burst), the sixth waits about 1/rate; other keys are independent."""

        async def test(limiter: RateLimiter) -> None:
            allowed = [await limiter.acquire("mer_a") for _ in range(5)]
            assert allowed == [0.0] * 5
            wait = await limiter.acquire("mer_a")
            assert 0.2 < wait <= 0.55
            assert await limiter.acquire("mer_b") == 0.0

        self.run(test)

    def test_tokens_refill(self) -> None:
        """After 1/rate seconds one more operation is allowed."""

        async def test(limiter: RateLimiter) -> None:
            for _ in range(5):
                await limiter.acquire("mer_c")
            assert await limiter.acquire("mer_c") > 0
            await asyncio.sleep(0.6)
            assert await limiter.acquire("mer_c") == 0.0

        self.run(test)


class TestMemoryRateLimiter(RateLimiterContract):
    def make(self) -> RateLimiter:
        return MemoryRateLimiter(rate=2.0, burst=5)


@pytest.mark.redis
class TestRedisRateLimiter(RateLimiterContract):
    @pytest.fixture(autouse=True)
    def _url(self, redis_url: str) -> None:
        self.url = redis_url

    def make(self) -> RateLimiter:
        return RedisRateLimiter(self.url, rate=2.0, burst=5)
