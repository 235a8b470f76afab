"""noncde.api adapters, SQL: the API's own payment read model (charges, refunds, sessions and
the merchant's events, for lists), fed from the event store by the projector.

Each row keeps the folded entity as a JSON snapshot plus the columns lists filter and sort on;
`seq` is the event-store position of the object's first event (newest first = `seq` desc, a
stable cursor). Rows and the projection's position change in one transaction, and events at or
below the stored position are skipped, so a re-delivered batch or a second projector process
changes nothing. This model is deliberately simple and replaceable: PaymentDB of
noncde.readmodels (issue #8) implements the same `PaymentQueries` port.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, Table, or_, select, update

from noncde.api.adapters.sql.schema import (
    PROJECTION,
    pay_charges,
    pay_events,
    pay_projection,
    pay_refunds,
    pay_sessions,
)
from noncde.api.domain.entities import Charge, PaymentSession, Refund, event_object
from noncde.api.domain.ids import CHARGE_STREAM_PREFIX, SESSION_STREAM_PREFIX
from noncde.api.domain.time import unix
from noncde.api.ports import CreatedRange, CursorNotFound, Page, PageRequest
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.platform.domain import RecordedEvent

_POSITION = select(pay_projection.c.position).where(pay_projection.c.name == PROJECTION)


def _dump(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


class SqlPaymentProjection:
    """PaymentProjection (and PaymentQueries) on the API database."""

    def __init__(self, db: SqlDatabase, *, livemode: bool = False) -> None:
        self.db = db
        self.livemode = livemode

    # ------------------------------------------------------------ writing

    def position(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(_POSITION).scalar_one_or_none() or 0)

    def apply(self, events: Sequence[RecordedEvent]) -> int:
        if not events:
            return 0
        with self.db.write() as conn:
            # FOR UPDATE: a second projector (another API process) waits here, then skips
            # what this one applied. On SQLite BEGIN IMMEDIATE already serializes writers.
            query = _POSITION.with_for_update() if self.db.is_postgres else _POSITION
            current = int(conn.execute(query).scalar_one_or_none() or 0)
            fresh = [e for e in events if e.position > current]
            if not fresh:
                return 0
            charges: dict[str, Charge | None] = {}
            sessions: dict[str, PaymentSession | None] = {}
            new_charges: dict[str, int] = {}
            new_sessions: dict[str, int] = {}
            refund_seq: dict[str, int] = {}
            event_rows: list[dict[str, Any]] = []
            for event in fresh:
                if event.stream.startswith(CHARGE_STREAM_PREFIX):
                    self._charge_event(conn, event, charges, new_charges, refund_seq)
                elif event.stream.startswith(SESSION_STREAM_PREFIX):
                    self._session_event(conn, event, sessions, new_sessions)
                if event.merchant_id:
                    event_rows.append(
                        {
                            "position": event.position,
                            "id": event.id,
                            "merchant_id": event.merchant_id,
                            "type": event.type,
                            "created": unix(event.recorded_at),
                            "body": _dump(event_object(event, self.livemode)),
                        }
                    )
            self._write_charges(conn, charges, new_charges, refund_seq)
            self._write_sessions(conn, sessions, new_sessions)
            if event_rows:
                conn.execute(
                    self.db.insert(pay_events).on_conflict_do_nothing(index_elements=["position"]),
                    event_rows,
                )
            conn.execute(
                update(pay_projection)
                .where(pay_projection.c.name == PROJECTION)
                .values(position=fresh[-1].position)
            )
            return len(fresh)

    def _charge_event(
        self,
        conn: Connection,
        event: RecordedEvent,
        charges: dict[str, Charge | None],
        new_charges: dict[str, int],
        refund_seq: dict[str, int],
    ) -> None:
        charge_id = event.stream[len(CHARGE_STREAM_PREFIX) :]
        if charge_id not in charges:
            row = conn.execute(
                select(pay_charges.c.state).where(pay_charges.c.id == charge_id)
            ).scalar_one_or_none()
            charges[charge_id] = Charge.from_state(json.loads(row)) if row else None
        charge = charges[charge_id]
        if charge is None:
            charge = Charge.start(event, event.merchant_id)
            if charge is None:
                return  # a stream that does not start with charge.requested: not ours
            charges[charge_id] = charge
            new_charges[charge_id] = event.position
            return
        known = {r.id for r in charge.refunds}
        charge.apply(event)
        for refund in charge.refunds:
            if refund.id not in known:
                refund_seq[refund.id] = event.position

    def _session_event(
        self,
        conn: Connection,
        event: RecordedEvent,
        sessions: dict[str, PaymentSession | None],
        new_sessions: dict[str, int],
    ) -> None:
        session_id = event.stream[len(SESSION_STREAM_PREFIX) :]
        if session_id not in sessions:
            row = conn.execute(
                select(pay_sessions.c.state).where(pay_sessions.c.id == session_id)
            ).scalar_one_or_none()
            sessions[session_id] = PaymentSession.from_state(json.loads(row)) if row else None
        session = sessions[session_id]
        if session is None:
            session = PaymentSession.fold([event], event.merchant_id)
            if session is None:
                return
            sessions[session_id] = session
            new_sessions[session_id] = event.position
            return
        session.apply(event)

    @staticmethod
    def _write(
        conn: Connection,
        table: Table,
        object_id: str,
        values: dict[str, Any],
        *,
        new_seq: int | None,
        merchant_id: str | None,
        created: int,
    ) -> None:
        """Insert an object first seen in this batch (at `new_seq`), else update its row."""
        if new_seq is not None:
            conn.execute(
                table.insert().values(
                    id=object_id, merchant_id=merchant_id, seq=new_seq, created=created, **values
                )
            )
        else:
            conn.execute(update(table).where(table.c.id == object_id).values(values))

    def _write_charges(
        self,
        conn: Connection,
        charges: dict[str, Charge | None],
        new_charges: dict[str, int],
        refund_seq: dict[str, int],
    ) -> None:
        for charge_id, charge in charges.items():
            if charge is None:
                continue
            values = {
                "status": str(charge.status),
                "version": charge.version,
                "state": _dump(charge.to_state()),
            }
            self._write(
                conn,
                pay_charges,
                charge_id,
                values,
                new_seq=new_charges.get(charge_id),
                merchant_id=charge.merchant_id,
                created=unix(charge.created),
            )
            for refund in charge.refunds:
                refund_values = {
                    "status": str(refund.status),
                    "state": _dump(refund.to_state()),
                    "charge_id": charge_id,
                }
                self._write(
                    conn,
                    pay_refunds,
                    refund.id,
                    refund_values,
                    new_seq=refund_seq.get(refund.id),
                    merchant_id=charge.merchant_id,
                    created=unix(refund.created),
                )

    def _write_sessions(
        self,
        conn: Connection,
        sessions: dict[str, PaymentSession | None],
        new_sessions: dict[str, int],
    ) -> None:
        for session_id, session in sessions.items():
            if session is None:
                continue
            values = {
                "status": str(session.status),
                "version": session.version,
                "state": _dump(session.to_state()),
            }
            self._write(
                conn,
                pay_sessions,
                session_id,
                values,
                new_seq=new_sessions.get(session_id),
                merchant_id=session.merchant_id,
                created=unix(session.created),
            )

    # ------------------------------------------------------------ reading

    def _page(
        self,
        table: Table,
        key: str,
        merchant_id: str,
        page: PageRequest,
        filters: Sequence[Any] = (),
    ) -> tuple[list[Any], bool]:
        """Rows of `table` for one merchant, newest first by `key`, with cursor and filters."""
        column = table.c[key]
        query: Select[Any] = select(table).where(table.c.merchant_id == merchant_id, *filters)
        query = _created(query, table, page.created)
        with self.db.read() as conn:
            # Both cursors: the objects between them, newest first (a bounded window).
            ascending = page.ending_before is not None and page.starting_after is None
            if page.starting_after is not None:
                cursor = _cursor(
                    conn, table, key, merchant_id, page.starting_after, "starting_after"
                )
                query = query.where(column < cursor)
            if page.ending_before is not None:
                cursor = _cursor(conn, table, key, merchant_id, page.ending_before, "ending_before")
                query = query.where(column > cursor)
            order = column.asc() if ascending else column.desc()
            rows = list(conn.execute(query.order_by(order).limit(page.limit + 1)))
        has_more = len(rows) > page.limit
        rows = rows[: page.limit]
        if ascending:
            rows.reverse()
        return rows, has_more

    def list_charges(
        self, merchant_id: str, page: PageRequest, status: str | None = None
    ) -> Page[Charge]:
        filters = [pay_charges.c.status == status] if status else []
        rows, more = self._page(pay_charges, "seq", merchant_id, page, filters)
        return Page([Charge.from_state(json.loads(r.state)) for r in rows], more)

    def list_refunds(
        self, merchant_id: str, page: PageRequest, charge_id: str | None = None
    ) -> Page[Refund]:
        filters = [pay_refunds.c.charge_id == charge_id] if charge_id else []
        rows, more = self._page(pay_refunds, "seq", merchant_id, page, filters)
        return Page([Refund.from_state(json.loads(r.state)) for r in rows], more)

    def list_sessions(
        self, merchant_id: str, page: PageRequest, status: str | None = None
    ) -> Page[PaymentSession]:
        filters = [pay_sessions.c.status == status] if status else []
        rows, more = self._page(pay_sessions, "seq", merchant_id, page, filters)
        return Page([PaymentSession.from_state(json.loads(r.state)) for r in rows], more)

    def list_events(
        self, merchant_id: str, page: PageRequest, types: Sequence[str] = ()
    ) -> Page[dict[str, Any]]:
        filters: list[Any] = []
        if types:
            clauses = [
                pay_events.c.type.startswith(t[:-1]) if t.endswith("*") else pay_events.c.type == t
                for t in types
            ]

            filters.append(or_(*clauses))
        rows, more = self._page(pay_events, "position", merchant_id, page, filters)
        return Page([json.loads(r.body) for r in rows], more)

    def get_event(self, merchant_id: str, event_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            body = conn.execute(
                select(pay_events.c.body).where(
                    pay_events.c.id == event_id, pay_events.c.merchant_id == merchant_id
                )
            ).scalar_one_or_none()
        return None if body is None else dict(json.loads(body))

    def refund_owner(self, refund_id: str) -> tuple[str, str | None] | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(pay_refunds.c.charge_id, pay_refunds.c.merchant_id).where(
                    pay_refunds.c.id == refund_id
                )
            ).one_or_none()
        return None if row is None else (row.charge_id, row.merchant_id)


def _cursor(
    conn: Connection, table: Table, key: str, merchant_id: str, object_id: str, param: str
) -> int:
    value = conn.execute(
        select(table.c[key]).where(table.c.id == object_id, table.c.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if value is None:
        raise CursorNotFound(param)
    return int(value)


def _created(query: Select[Any], table: Table, created: CreatedRange) -> Select[Any]:
    column = table.c.created
    if created.gt is not None:
        query = query.where(column > created.gt)
    if created.gte is not None:
        query = query.where(column >= created.gte)
    if created.lt is not None:
        query = query.where(column < created.lt)
    if created.lte is not None:
        query = query.where(column <= created.lte)
    return query
