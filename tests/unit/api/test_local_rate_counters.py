"""In-process rate counting: fixed windows, per key, scaled by the number of API processes."""

from __future__ import annotations

from noncde.api.adapters.memory import LocalRateCounters
from noncde.api.domain.risk import VelocitySeries


class _Inner:
    def __init__(self) -> None:
        self.added: list[object] = []

    def hit(self, key: str, window_s: int, now: float) -> int:
        raise AssertionError("hits must not reach the database")

    def count(self, series, now):  # type: ignore[no-untyped-def]
        return {("k", 60): 7}

    def add(self, series, now) -> None:  # type: ignore[no-untyped-def]
        self.added.append(series)

    def purge(self, now: float) -> int:
        return 3


def test_hits_count_per_key_and_restart_each_window() -> None:
    """Counts grow within a window, restart in the next one, and keys do not share counts."""
    counters = LocalRateCounters(_Inner())
    assert [counters.hit("a", 1, 100.1) for _ in range(3)] == [1, 2, 3]
    assert counters.hit("b", 1, 100.2) == 1
    assert counters.hit("a", 1, 101.0) == 1


def test_counts_are_scaled_by_the_number_of_processes() -> None:
    """With N worker processes each reports its share times N (exact for one process)."""
    counters = LocalRateCounters(_Inner(), processes=2)
    assert [counters.hit("a", 1, 5.0) for _ in range(2)] == [2, 4]


def test_velocity_goes_to_the_shared_counters() -> None:
    """Risk velocity (count, add, purge) is delegated to the database-backed counters."""
    inner = _Inner()
    counters = LocalRateCounters(inner)
    series = [VelocitySeries(key="k", window_s=60, bucket_s=10)]
    counters.add(series, 1.0)
    assert inner.added == [series]
    assert counters.count(series, 1.0) == {("k", 60): 7}
    assert counters.purge(1.0) == 3
