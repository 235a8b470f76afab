"""cde.vault (CDE): Redis adapters: the shared CVC TTL store and the shared rate limiter.

The CVC store keeps only sealed bytes (`SET … EX ttl`), reads them with `GETDEL` (atomic: a
CVC is read once, even by two vault workers racing), and never persists more than the TTL;
production runs Redis without RDB/AOF snapshots for this database (docs/vault.md). The rate
limiter is a token bucket kept in one Redis hash per merchant, updated by a Lua script so
concurrent workers share one limit.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cde.vault.domain import UpstreamUnavailable

_CVC_PREFIX = "fincore:vault:cvc:"
_RATE_PREFIX = "fincore:vault:rate:"

_BUCKET_SCRIPT = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', key, math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RedisCvcStore:
    """`CvcStore` on Redis (shared by every vault worker)."""

    shared = True

    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    async def put(self, token: str, sealed: bytes, ttl_s: int) -> None:
        try:
            await self._redis.set(_CVC_PREFIX + token, sealed, ex=ttl_s)
        except RedisError as exc:
            raise UpstreamUnavailable("The CVC store is unavailable.") from exc

    async def take(self, token: str) -> bytes | None:
        try:
            value = await self._redis.getdel(_CVC_PREFIX + token)
        except RedisError as exc:
            raise UpstreamUnavailable("The CVC store is unavailable.") from exc
        if value is None:
            return None
        return value.encode("latin-1") if isinstance(value, str) else bytes(value)

    async def delete(self, token: str) -> None:
        try:
            await self._redis.delete(_CVC_PREFIX + token)
        except RedisError as exc:
            raise UpstreamUnavailable("The CVC store is unavailable.") from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


class RedisRateLimiter:
    """`RateLimiter` on Redis: one token bucket per key, shared by every worker."""

    def __init__(self, url: str, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._script = self._redis.register_script(_BUCKET_SCRIPT)
        self.rate = rate
        self.burst = burst

    async def acquire(self, key: str) -> float:
        try:
            wait = await self._script(
                keys=[_RATE_PREFIX + key], args=[self.rate, self.burst, time.time()]
            )
        except RedisError as exc:
            raise UpstreamUnavailable("The rate limiter is unavailable.") from exc
        return float(wait)

    async def close(self) -> None:
        await self._redis.aclose()
