"""psp_sandbox: the fault-injection plan for chaos tests (in memory).

Outside both zones.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

from psp_sandbox.domain import (
    Fault,
    FaultKind,
)


@dataclass(frozen=True, slots=True)
class ApiFaults:
    """What to do to one API request."""

    latency_ms: int = 0
    error_status: int | None = None
    timeout_hold_s: float | None = None
    timeout_execute: bool = True


class FaultInjector:
    """The active chaos plan (in memory; a restart clears it). Count-limited faults (`next`)
    are used up one request or event at a time; rate faults apply to a random share."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._held: dict[str, list[int]] = {}

    def add(self, fault: Fault) -> Fault:
        # One fault per kind: a new one replaces the old (simple to reason about in tests).
        self._faults = [f for f in self._faults if f.kind is not fault.kind]
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[Fault]:
        return list(self._faults)

    def _take(self, fault: Fault) -> bool:
        if fault.rate is not None:
            # Not a secret, but `secrets` keeps the banned `random` module out of the code base.
            return secrets.randbelow(1_000_000) < int(fault.rate * 1_000_000)
        if fault.next is None:
            return True
        if fault.next <= 0:
            return False
        fault.next -= 1
        if fault.next == 0 and fault.kind is not FaultKind.webhook_out_of_order:
            self._faults.remove(fault)
        return True

    def for_request(self, path: str) -> ApiFaults:
        latency = 0
        error: int | None = None
        hold: float | None = None
        execute = True
        for fault in list(self._faults):
            if not path.startswith(fault.path_prefix):
                continue
            if fault.kind is FaultKind.latency and self._take(fault):
                latency = fault.ms
            elif fault.kind is FaultKind.error and error is None and self._take(fault):
                error = fault.status
            elif (
                fault.kind is FaultKind.timeout
                and hold is None
                and error is None
                and self._take(fault)
            ):
                hold, execute = fault.hold_s, fault.execute
        return ApiFaults(latency, error, hold, execute)

    def for_webhook(self) -> tuple[str | None, Fault | None]:
        """'drop', 'duplicate', 'hold' (out of order) or None for the next event."""
        for fault in list(self._faults):
            if fault.kind is FaultKind.webhook_drop and self._take(fault):
                return "drop", fault
            if fault.kind is FaultKind.webhook_duplicate and self._take(fault):
                return "duplicate", fault
            if fault.kind is FaultKind.webhook_out_of_order and self._take(fault):
                return "hold", fault
        return None, None

    def hold(self, fault: Fault, delivery_ids: list[int]) -> list[int] | None:
        """Remember held deliveries; when the group is complete, return them (and end the
        fault) so the caller releases them in reverse order."""
        group = self._held.setdefault(fault.id, [])
        group.extend(delivery_ids)
        if fault.next is not None and fault.next <= 0:
            self._held.pop(fault.id, None)
            with contextlib.suppress(ValueError):
                self._faults.remove(fault)
            return group
        return None
