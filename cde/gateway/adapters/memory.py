"""cde.gateway: `GatewayStore` in memory (tests, and a throw-away local run: nothing survives
a restart, so never the choice where the outbox must be durable)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cde.gateway.domain import PaymentRecord, RefundRecord, RelayItem, SessionRecord


@dataclass
class _Row:
    item: RelayItem
    state: str
    next_attempt_at: float
    locked_until: float | None = None
    delivered_at: float | None = None
    last_error: str | None = None


class MemoryGatewayStore:
    """Plain dicts; every method completes without awaiting, so each is atomic."""

    def __init__(self) -> None:
        self.payments: dict[str, PaymentRecord] = {}
        self.refunds: dict[str, RefundRecord] = {}
        self.sessions: dict[str, SessionRecord] = {}
        self.seen: dict[str, float] = {}
        self.outbox: dict[int, _Row] = {}
        self._next_id = 1

    async def claim_payment(self, record: PaymentRecord) -> tuple[PaymentRecord, bool]:
        existing = self.payments.get(record.charge_id)
        if existing is not None:
            return existing, False
        self.payments[record.charge_id] = record
        return record, True

    async def save_payment(self, record: PaymentRecord) -> None:
        self.payments[record.charge_id] = record

    async def payment(self, charge_id: str) -> PaymentRecord | None:
        return self.payments.get(charge_id)

    async def payment_by_psp_reference(self, psp_reference: str) -> PaymentRecord | None:
        found = [p for p in self.payments.values() if p.psp_reference == psp_reference]
        return min(found, key=lambda p: p.created_at) if found else None

    async def claim_refund(self, record: RefundRecord) -> tuple[RefundRecord, bool]:
        existing = self.refunds.get(record.refund_id)
        if existing is not None:
            return existing, False
        self.refunds[record.refund_id] = record
        return record, True

    async def save_refund(self, record: RefundRecord) -> None:
        self.refunds[record.refund_id] = record

    async def refund(self, refund_id: str) -> RefundRecord | None:
        return self.refunds.get(refund_id)

    async def refund_by_psp_reference(self, psp_reference: str) -> RefundRecord | None:
        return next((r for r in self.refunds.values() if r.psp_reference == psp_reference), None)

    async def claim_session(self, record: SessionRecord) -> tuple[SessionRecord, bool]:
        existing = self.sessions.get(record.session_id)
        if existing is not None:
            return existing, False
        self.sessions[record.session_id] = record
        return record, True

    async def save_session(self, record: SessionRecord) -> None:
        self.sessions[record.session_id] = record

    async def session(self, session_id: str) -> SessionRecord | None:
        return self.sessions.get(session_id)

    async def session_by_psp_reference(self, psp_reference: str) -> SessionRecord | None:
        return next(
            (
                s
                for s in self.sessions.values()
                if psp_reference in (s.psp_session_id, s.payment_reference)
            ),
            None,
        )

    async def event_seen(self, psp_event_id: str) -> bool:
        return psp_event_id in self.seen

    async def accept_event(
        self, psp_event_id: str, event_type: str, now: float, relay: tuple[str, str] | None
    ) -> bool:
        if psp_event_id in self.seen:
            return False
        self.seen[psp_event_id] = now
        if relay is not None and not any(r.item.event_id == relay[0] for r in self.outbox.values()):
            item = RelayItem(self._next_id, relay[0], relay[1], 0, now)
            self.outbox[item.id] = _Row(item, "pending", now)
            self._next_id += 1
        return True

    async def claim_due(self, now: float, limit: int, lease_s: float) -> list[RelayItem]:
        due = [
            row
            for row in sorted(self.outbox.values(), key=lambda r: r.item.id)
            if row.state == "pending"
            and row.next_attempt_at <= now
            and (row.locked_until is None or row.locked_until <= now)
        ][:limit]
        for row in due:
            row.locked_until = now + lease_s
        return [row.item for row in due]

    async def release(self, item_ids: list[int]) -> None:
        for item_id in item_ids:
            if item_id in self.outbox:
                self.outbox[item_id].locked_until = None

    async def mark_delivered(self, item_id: int, now: float) -> None:
        row = self.outbox[item_id]
        row.state, row.delivered_at, row.locked_until = "delivered", now, None

    async def mark_failed(
        self, item_id: int, attempts: int, next_attempt_at: float, error: str, dead: bool
    ) -> None:
        row = self.outbox[item_id]
        row.item = replace(row.item, attempts=attempts)
        row.next_attempt_at = next_attempt_at
        row.last_error = error[:500]
        row.locked_until = None
        row.state = "dead" if dead else "pending"

    async def requeue_dead(self, now: float) -> int:
        rows = [row for row in self.outbox.values() if row.state == "dead"]
        for row in rows:
            row.state, row.next_attempt_at = "pending", now
            row.item = replace(row.item, attempts=0, created_at=now)
        return len(rows)

    async def outbox_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        for row in self.outbox.values():
            counts[row.state] += 1
        return counts

    async def purge(self, delivered_before: float, seen_before: float) -> int:
        gone = [
            i
            for i, row in self.outbox.items()
            if row.state == "delivered" and (row.delivered_at or 0) < delivered_before
        ]
        for item_id in gone:
            del self.outbox[item_id]
        old = [e for e, at in self.seen.items() if at < seen_before]
        for event_id in old:
            del self.seen[event_id]
        return len(gone) + len(old)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
