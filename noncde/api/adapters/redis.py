"""noncde.api adapters, Redis: windowed counters for rate limits and risk velocity
(`redis://`, ElastiCache in production).

One key per counter bucket, incremented with INCR and given a TTL just beyond the longest window
that can read it, so Redis forgets old buckets by itself. Increments are atomic in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis as redis_lib

from noncde.api.domain.risk import VelocitySeries
from noncde.platform.domain import BackendUnavailable


class RedisCounters:
    """Counters on Redis."""

    def __init__(self, client: redis_lib.Redis, prefix: str = "fincore:api:") -> None:
        self._redis = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> RedisCounters:
        return cls(redis_lib.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0))

    def _key(self, series: VelocitySeries, bucket: int) -> str:
        return f"{self._prefix}v:{series.bucket_s}:{series.key}:{bucket}"

    def hit(self, key: str, window_s: int, now: float) -> int:
        bucket = int(now // window_s)
        name = f"{self._prefix}r:{window_s}:{key}:{bucket}"
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.incr(name)
            pipe.expire(name, window_s * 2)
            count, _ = pipe.execute()
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"redis unavailable ({type(exc).__name__})") from exc
        return int(count)

    def count(self, series: Sequence[VelocitySeries], now: float) -> dict[tuple[str, int], int]:
        found: dict[tuple[str, int], int] = {}
        try:
            for item in series:
                current = int(now // item.bucket_s)
                first = current - item.window_s // item.bucket_s
                names = [self._key(item, b) for b in range(first + 1, current + 1)]
                values = self._redis.mget(names)
                found[(item.key, item.window_s)] = sum(int(v) for v in values if v is not None)
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"redis unavailable ({type(exc).__name__})") from exc
        return found

    def add(self, series: Sequence[VelocitySeries], now: float) -> None:
        if not series:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for item in series:
                name = self._key(item, int(now // item.bucket_s))
                pipe.incr(name)
                pipe.expire(name, item.window_s + item.bucket_s)
            pipe.execute()
        except redis_lib.RedisError as exc:
            raise BackendUnavailable(f"redis unavailable ({type(exc).__name__})") from exc

    def purge(self, now: float) -> int:
        return 0  # Redis expires buckets by their TTL

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis_lib.RedisError:
            return False

    def close(self) -> None:
        self._redis.close()
