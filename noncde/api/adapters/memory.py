"""noncde.api adapters, in-process memory: rate-limit counting without a database write.

The per-key rate limit is checked on every request. Counting it in SQL costs one write
transaction per request on the embedded SQLite default, which is most of an API request's
database time. With the SQL counters, hits are therefore counted in this process's memory and
only risk velocity (which must be shared and survive restarts) goes to the database. With N API
worker processes each one counts its own share and reports `count × N`, an estimate of the
fleet's rate that is exact with one worker; Redis (`FINCORE_API_COUNTERS_URL=redis://…`) counts
exactly across processes and is the production choice.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from noncde.api.domain.risk import VelocitySeries
from noncde.api.ports import Counters


class LocalRateCounters:
    """`Counters` whose `hit` is counted in memory; everything else goes to `inner`."""

    def __init__(self, inner: Counters, processes: int = 1) -> None:
        self._inner = inner
        self._processes = max(1, processes)
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, int], tuple[int, int]] = {}

    def hit(self, key: str, window_s: int, now: float) -> int:
        bucket = int(now // window_s)
        with self._lock:
            seen_bucket, count = self._hits.get((key, window_s), (bucket, 0))
            count = count + 1 if seen_bucket == bucket else 1
            self._hits[(key, window_s)] = (bucket, count)
            if len(self._hits) > 100_000:  # bounded: forget keys idle for a whole window
                self._hits = {k: v for k, v in self._hits.items() if v[0] >= bucket - 1}
        return count * self._processes

    def count(self, series: Sequence[VelocitySeries], now: float) -> dict[tuple[str, int], int]:
        return self._inner.count(series, now)

    def add(self, series: Sequence[VelocitySeries], now: float) -> None:
        self._inner.add(series, now)

    def purge(self, now: float) -> int:
        return self._inner.purge(now)
