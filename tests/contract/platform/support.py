"""Helpers for the platform contract suites: clocks that tests can move, backend URLs."""

from __future__ import annotations

import time
from pathlib import Path

from noncde.platform.domain import RetryPolicy

# Short backoffs so retries are observable in seconds against real servers (SQS on moto).
TEST_POLICY = RetryPolicy(max_attempts=3, backoff_base_s=1.0, backoff_cap_s=1.0)


class FakeClock:
    """A clock the test moves by hand (adapters that take a `clock`)."""

    real = False

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RealClock:
    """Wall-clock time; `advance` sleeps (adapters whose server keeps the time: SQS, Redis)."""

    real = True

    def __call__(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'platform.db'}"
