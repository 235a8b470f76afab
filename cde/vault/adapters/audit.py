"""cde.vault (CDE): the CDE audit log as the vault uses it: off the event loop, fail-closed.

`AuditLog.record` blocks until the record is durable under the audit durability policy (file
lock, write, and an fsync now and then). On the request path the vault awaits `arecord`,
which runs the write on one audit thread, so the event loop keeps serving other requests while
this one waits for its record; the caller still does not proceed until the record is written
(`AuditUnavailable` is raised to it otherwise; PCI DSS 10.2.1, 10.7.2). One thread keeps the
records of this process in the order they were submitted. `available` tells readiness whether
the last write succeeded. The records that queue up while one is written go together in the
next append (`AuditLog.record_many`: one lock, one write, one chain step for all of them).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Mapping
from typing import Any

from audit.domain import Actor, AuditUnavailable, EventType, Outcome
from audit.service import AuditLog
from cde.vault.ports import AuditRecorder

_Item = tuple[EventType, dict[str, Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class ThreadedAuditTrail:
    """`AuditTrail` over an `AuditLog` (or any trail): sync `record`, async `arecord`."""

    def __init__(self, log: AuditRecorder, *, owned: AuditLog | None = None) -> None:
        self._log = log
        self._owned = owned
        self.available = True
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(
        self,
        event_type: EventType,
        *,
        actor: Actor | str,
        outcome: Outcome,
        target: str | None = None,
        resource: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        origin_ip: str | None = None,
        reason: str | None = None,
    ) -> Any:
        try:
            result = self._log.record(
                event_type,
                actor=actor,
                outcome=outcome,
                target=target,
                resource=resource,
                details=details,
                request_id=request_id,
                origin_ip=origin_ip,
                reason=reason,
            )
        except AuditUnavailable:
            self.available = False
            raise
        self.available = True
        return result

    async def arecord(self, event_type: EventType, **fields: Any) -> Any:
        """`record` on the audit thread; returns (or raises) once the record is written."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._ensure_thread()
        self._queue.put((event_type, fields, future, loop))
        return await future

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vault-audit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            items = [item]
            while len(items) < 256:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                items.append(more)
            by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
            for (_event, _fields, future, loop), outcome in zip(
                items, self._write(items), strict=True
            ):
                by_loop.setdefault(loop, []).append((future, *outcome))
            for loop, outcomes in by_loop.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, outcomes)

    def _write(self, items: list[_Item]) -> list[tuple[Any, BaseException | None]]:
        """The records of everything queued, in one append when the log can (group commit)."""
        many = getattr(self._log, "record_many", None)
        if many is None or len(items) == 1:
            outcomes: list[tuple[Any, BaseException | None]] = []
            for event_type, fields, _future, _loop in items:
                try:
                    outcomes.append((self.record(event_type, **fields), None))
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    outcomes.append((None, exc))
            return outcomes
        try:
            results = many([(event_type, fields) for event_type, fields, _f, _l in items])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
            results = [exc] * len(items)
        self.available = not any(isinstance(r, AuditUnavailable) for r in results)
        return [(None, r) if isinstance(r, Exception) else (r, None) for r in results]

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        if self._owned is not None:
            self._owned.close()
