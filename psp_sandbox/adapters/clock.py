"""PSP sandbox: the business clock (system time plus an offset that tests may move forward).

Outside both zones. Only business time moves (session expiry, settlement days); webhook
signatures and retries always use real time.
"""

from __future__ import annotations

import time


class OffsetClock:
    """`Clock`: `time.time()` plus a non-negative, only-growing offset."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self._offset = offset_s

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += seconds
