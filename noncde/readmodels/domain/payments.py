"""noncde.readmodels (non-CDE): PaymentDB's rows, folded from the event store; pure, no I/O.

A batch of events becomes a `PaymentChanges`: the charges, refunds and sessions it touched (as
`Charge`/`PaymentSession` snapshots of the published language), the merchant's event objects,
and the per-merchant count deltas. Nothing here reads a clock: rows depend on the events alone,
so a rebuild from zero produces identical contents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from noncde.api.domain import Charge, PaymentSession, Refund, event_object, unix
from noncde.api.domain.ids import CHARGE_STREAM_PREFIX, SESSION_STREAM_PREFIX
from noncde.platform.domain import RecordedEvent

CHARGES = "charges"
REFUNDS = "refunds"
SESSIONS = "sessions"


def dump(value: Any) -> str:
    """The one JSON form of stored snapshots (sorted keys: identical across rebuilds)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


@dataclass
class Tracked:
    """An object the batch touched: its snapshot now, and its status before the batch."""

    value: Any
    seq: int
    before: str | None
    new: bool

    @property
    def status_changed(self) -> bool:
        return self.new or self.before != str(self.value.status)


@dataclass
class PaymentChanges:
    """Everything one batch changes in PaymentDB."""

    charges: dict[str, Tracked] = field(default_factory=dict)
    refunds: dict[str, Tracked] = field(default_factory=dict)
    sessions: dict[str, Tracked] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def count_deltas(self) -> dict[tuple[str, str, str], int]:
        """(merchant, object kind, status) -> change in count."""
        deltas: dict[tuple[str, str, str], int] = {}

        def move(kind: str, tracked: Iterable[Tracked]) -> None:
            for item in tracked:
                merchant = item.value.merchant_id or ""
                now = str(item.value.status)
                if item.before == now:
                    continue
                if item.before is not None:
                    key = (merchant, kind, item.before)
                    deltas[key] = deltas.get(key, 0) - 1
                key = (merchant, kind, now)
                deltas[key] = deltas.get(key, 0) + 1

        move(CHARGES, self.charges.values())
        move(REFUNDS, self.refunds.values())
        move(SESSIONS, self.sessions.values())
        return {k: v for k, v in sorted(deltas.items()) if v != 0}


def charge_id_of(event: RecordedEvent) -> str | None:
    if event.stream.startswith(CHARGE_STREAM_PREFIX):
        return event.stream[len(CHARGE_STREAM_PREFIX) :]
    return None


def session_id_of(event: RecordedEvent) -> str | None:
    if event.stream.startswith(SESSION_STREAM_PREFIX):
        return event.stream[len(SESSION_STREAM_PREFIX) :]
    return None


def fold_batch(
    events: Iterable[RecordedEvent],
    charges: Mapping[str, tuple[Charge, int]],
    sessions: Mapping[str, tuple[PaymentSession, int]],
    *,
    livemode: bool = False,
) -> PaymentChanges:
    """Apply `events` (position order) onto the stored `charges`/`sessions` (snapshot, seq).

    A charge, refund or session first seen in the batch gets, as its `seq` (the list order,
    newest first), the position of the event that created it. Refunds live inside their
    charge's snapshot, so the stored charge says which refunds exist already.
    """
    changes = PaymentChanges()
    for event in events:
        charge_id = charge_id_of(event)
        if charge_id is not None:
            _charge_event(event, charge_id, charges, changes)
        session_id = session_id_of(event)
        if session_id is not None:
            _session_event(event, session_id, sessions, changes)
        if event.merchant_id:
            changes.events.append(
                {
                    "position": event.position,
                    "id": event.id,
                    "merchant_id": event.merchant_id,
                    "type": event.type,
                    "created": unix(event.recorded_at),
                    "body": dump(event_object(event, livemode)),
                }
            )
    return changes


def _charge_event(
    event: RecordedEvent,
    charge_id: str,
    stored: Mapping[str, tuple[Charge, int]],
    changes: PaymentChanges,
) -> None:
    tracked = changes.charges.get(charge_id)
    if tracked is None and charge_id in stored:
        loaded, seq = stored[charge_id]
        tracked = Tracked(loaded, seq, str(loaded.status), new=False)
        changes.charges[charge_id] = tracked
        for refund in loaded.refunds:
            # Existing rows keep their seq (the write never updates it): 0 is a placeholder.
            changes.refunds[refund.id] = Tracked(refund, 0, str(refund.status), new=False)
    if tracked is None:
        started = Charge.start(event, event.merchant_id)
        if started is None:
            return  # a stream that does not begin with charge.requested: not a charge
        changes.charges[charge_id] = Tracked(started, event.position, None, new=True)
        return
    charge: Charge = tracked.value
    known = {r.id for r in charge.refunds}
    charge.apply(event)
    for refund in charge.refunds:
        if refund.id not in known:
            changes.refunds[refund.id] = Tracked(refund, event.position, None, new=True)


def _session_event(
    event: RecordedEvent,
    session_id: str,
    stored: Mapping[str, tuple[PaymentSession, int]],
    changes: PaymentChanges,
) -> None:
    tracked = changes.sessions.get(session_id)
    if tracked is None and session_id in stored:
        session, seq = stored[session_id]
        tracked = Tracked(session, seq, str(session.status), new=False)
        changes.sessions[session_id] = tracked
    if tracked is None:
        started = PaymentSession.fold([event], event.merchant_id)
        if started is None:
            return
        changes.sessions[session_id] = Tracked(started, event.position, None, new=True)
        return
    tracked.value.apply(event)


def charge_row(charge: Charge, seq: int) -> dict[str, Any]:
    return {
        "id": charge.id,
        "merchant_id": charge.merchant_id,
        "seq": seq,
        "created": unix(charge.created),
        "status": str(charge.status),
        "amount": charge.amount,
        "currency": charge.currency,
        "amount_captured": charge.amount_captured,
        "amount_refunded": charge.amount_refunded,
        "psp_reference": charge.psp_reference,
        "dead_lettered": charge.dead_letter is not None,
        "version": charge.version,
        "state": dump(charge.to_state()),
    }


def refund_row(refund: Refund, seq: int) -> dict[str, Any]:
    return {
        "id": refund.id,
        "charge_id": refund.charge_id,
        "merchant_id": refund.merchant_id,
        "seq": seq,
        "created": unix(refund.created),
        "status": str(refund.status),
        "amount": refund.amount,
        "currency": refund.currency,
        "psp_reference": refund.psp_reference,
        "state": dump(refund.to_state()),
    }


def session_row(session: PaymentSession, seq: int) -> dict[str, Any]:
    return {
        "id": session.id,
        "merchant_id": session.merchant_id,
        "seq": seq,
        "created": unix(session.created),
        "status": str(session.status),
        "amount": session.amount,
        "currency": session.currency,
        "charge_id": session.charge_id,
        "version": session.version,
        "state": dump(session.to_state()),
    }
