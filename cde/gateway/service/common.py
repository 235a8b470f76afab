"""cde.gateway: what the use cases share: the caller, per-reference locks, audited PSP calls.

CDE. Every PSP call runs in the gateway's thread pool (the SDK blocks) between two CDE audit
records: the request, written first and fail-closed (no record, no call), and the result
(PCI DSS 10.2.1, 10.2.2). Neither record ever holds card data.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from audit.domain import Actor, ActorType, AuditUnavailable, EventType, Outcome
from cde.gateway.domain import (
    CheckoutSession,
    GatewayError,
    Operation,
    PaymentOutcome,
    PaymentStatus,
    PspError,
    PspPaymentMethod,
    RefundOutcome,
    RefundStatus,
)
from cde.gateway.ports import AuditTrail
from fincore.logs import get_logger

T = TypeVar("T")
_log = get_logger("cde.gateway")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks (a service identity, or `psp` for webhooks) and the request's correlation."""

    name: str
    request_id: str | None = None
    origin_ip: str | None = None
    kind: str = ActorType.SERVICE

    def actor(self, merchant_id: str | None = None) -> Actor:
        return Actor(id=self.name, type=self.kind, on_behalf_of=merchant_id)


class ReferenceLocks:
    """One asyncio lock per reference, so concurrent retries of one charge run one at a time
    in this process (across processes the PSP's Idempotency-Key still guarantees one payment)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, reference: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(reference, (asyncio.Lock(), 0))
        self._locks[reference] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[reference]
            if users <= 1:
                del self._locks[reference]
            else:
                self._locks[reference] = (lock, users - 1)


def summary(result: object) -> tuple[Outcome, dict[str, Any]]:
    """The audit outcome and details of one PSP answer: ids, statuses, codes and amounts."""
    if isinstance(result, PaymentOutcome):
        failed = result.status in (PaymentStatus.failed, PaymentStatus.unknown)
        details = {
            "status": result.status.value,
            "psp_reference": result.psp_reference,
            "decline_code": result.decline_code,
            "failure_code": result.failure_code,
        }
        return (Outcome.FAILURE if failed else Outcome.SUCCESS), details
    if isinstance(result, RefundOutcome):
        failed = result.status in (RefundStatus.failed, RefundStatus.unknown)
        details = {
            "status": result.status.value,
            "psp_reference": result.psp_reference,
            "failure_code": result.failure_code,
        }
        return (Outcome.FAILURE if failed else Outcome.SUCCESS), details
    if isinstance(result, CheckoutSession):
        return Outcome.SUCCESS, {
            "status": result.status.value,
            "psp_reference": result.psp_reference,
        }
    if isinstance(result, PspPaymentMethod):
        return Outcome.SUCCESS, {"psp_reference": result.psp_reference, "brand": result.brand}
    return Outcome.SUCCESS, {}


class Audited:
    """The gateway's audit writer plus its audited PSP-call runner."""

    def __init__(self, audit: AuditTrail, executor: Executor | None) -> None:
        self.audit = audit
        self.executor = executor

    def record(
        self,
        event: EventType,
        caller: Caller,
        outcome: Outcome,
        *,
        target: str | None,
        resource: str,
        details: Mapping[str, Any] | None = None,
        reason: str | None = None,
        merchant_id: str | None = None,
    ) -> None:
        self.audit.record(
            event,
            actor=caller.actor(merchant_id),
            outcome=outcome,
            target=target,
            resource=resource,
            details={k: v for k, v in (details or {}).items() if v is not None},
            request_id=caller.request_id,
            origin_ip=caller.origin_ip,
            reason=reason,
        )

    async def arecord(
        self, event: EventType, caller: Caller, outcome: Outcome, **fields: Any
    ) -> None:
        """`record` from the event loop: the write (an fsync under the default `always`
        durability) runs on the PSP executor, so a burst of refused or replayed requests
        cannot stall every other request behind the disk. Returns once it is written."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self.executor, functools.partial(self.record, event, caller, outcome, **fields)
        )

    async def refusal(
        self, caller: Caller, error: GatewayError, *, target: str | None
    ) -> GatewayError:
        """Audit a refused request (PCI DSS 10.2.1.4) and return the error to raise."""
        await self.arecord(
            EventType.ACCESS_DENIED,
            caller,
            Outcome.FAILURE,
            target=target,
            resource="gateway.api",
            reason=error.code,
        )
        return error

    async def psp_call(
        self,
        operation: Operation,
        reference: str,
        caller: Caller,
        call: Callable[[], T],
        *,
        merchant_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> T:
        """Run one blocking PSP call in the pool, audited before (fail closed) and after."""
        base = {"operation": operation.value, "phase": "request", **(details or {})}

        def work() -> T:
            # Fail closed: without the request record there is no PSP call (AuditUnavailable).
            self.record(
                EventType.PSP_CALL,
                caller,
                Outcome.SUCCESS,
                target=reference,
                resource="psp",
                details=base,
                merchant_id=merchant_id,
            )
            try:
                result = call()
            except PspError as exc:
                self._result(operation, reference, caller, merchant_id, Outcome.FAILURE, {}, exc)
                raise
            outcome, result_details = summary(result)
            self._result(operation, reference, caller, merchant_id, outcome, result_details, None)
            return result

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, work)

    def _result(
        self,
        operation: Operation,
        reference: str,
        caller: Caller,
        merchant_id: str | None,
        outcome: Outcome,
        details: Mapping[str, Any],
        error: PspError | None,
    ) -> None:
        try:
            self.record(
                EventType.PSP_CALL,
                caller,
                outcome,
                target=reference,
                resource="psp",
                details={"operation": operation.value, "phase": "result", **details},
                reason=(error.code or type(error).__name__) if error is not None else None,
                merchant_id=merchant_id,
            )
        except AuditUnavailable:
            # The call happened (money may have moved) and its request record exists; refusing
            # the answer now would only make the caller retry. Say so loudly instead.
            _log.error("psp_result_not_audited", operation=operation.value, reference=reference)
