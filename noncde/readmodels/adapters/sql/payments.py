"""noncde.readmodels adapters, SQL: PaymentDB, the payment read model (charges, refunds,
payment sessions, the merchants' event objects and per-merchant counts) and its queries.

Writes: one transaction per batch (performance-limits.md: ~30k events/s batched against ~725/s
one event per transaction on PostgreSQL): read the position (row-locked on PostgreSQL), load the
touched objects in a few IN queries, fold the events with the published language's
`Charge`/`PaymentSession`, upsert the rows with executemany, move the position. Reads implement
the API's `PaymentQueries` port structurally: the API's composition root passes its `Page`
and `CursorNotFound` types in (this package may import only `noncde.api.domain` of the API).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select, Table, delete, or_, select

from noncde.api.domain import Charge, PaymentSession, Refund
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.platform.domain import RecordedEvent
from noncde.readmodels.adapters.sql.common import (
    chunks,
    read_position,
    table_digest,
    write_position,
)
from noncde.readmodels.adapters.sql.schema import (
    PAYMENT_TABLES,
    init_payments_schema,
    pdb_charges,
    pdb_counts,
    pdb_events,
    pdb_position,
    pdb_refunds,
    pdb_sessions,
)
from noncde.readmodels.domain.payments import (
    PaymentChanges,
    charge_id_of,
    charge_row,
    fold_batch,
    refund_row,
    session_id_of,
    session_row,
)

PROJECTION = "payments"


class ListPage:
    """The default page type when no API `Page` is injected: `data` and `has_more`."""

    def __init__(self, data: list[Any], has_more: bool) -> None:
        self.data = data
        self.has_more = has_more


class UnknownCursor(LookupError):
    """Default cursor error: `starting_after`/`ending_before` names no object of the merchant."""

    def __init__(self, param: str) -> None:
        super().__init__(param)
        self.param = param


def _upsert(db: SqlDatabase, table: Table, key: str, keep: Sequence[str] = ()) -> Any:
    statement = db.insert(table)
    fixed = {key, *keep}
    return statement.on_conflict_do_update(
        index_elements=[key],
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in fixed},
    )


def _count_upsert(db: SqlDatabase) -> Any:
    statement = db.insert(pdb_counts)
    return statement.on_conflict_do_update(
        index_elements=["merchant_id", "object", "status"],
        set_={"count": pdb_counts.c["count"] + statement.excluded["count"]},
    )


class SqlPaymentDb:
    """PaymentDB on SQLite or PostgreSQL: the `Projection` the projectionist feeds, and the
    queries behind the API's list endpoints."""

    def __init__(
        self,
        db: SqlDatabase,
        *,
        name: str = PROJECTION,
        livemode: bool = False,
        page: Callable[[list[Any], bool], Any] = ListPage,
        cursor_not_found: Callable[[str], Exception] = UnknownCursor,
        create_schema: bool = True,
    ) -> None:
        self.db = db
        self.name = name
        self.livemode = livemode
        self._page_type = page
        self._cursor_error = cursor_not_found
        if create_schema:
            init_payments_schema(db, [name])

    # ------------------------------------------------------------ writing

    def position(self) -> int:
        with self.db.read() as conn:
            return read_position(conn, pdb_position, self.name, lock=False)

    def apply(self, events: Sequence[RecordedEvent]) -> int:
        if not events:
            return 0
        with self.db.write() as conn:
            current = read_position(conn, pdb_position, self.name, lock=self.db.is_postgres)
            fresh = [e for e in events if e.position > current]
            if not fresh:
                return 0
            charge_ids = sorted({c for e in fresh if (c := charge_id_of(e)) is not None})
            session_ids = sorted({s for e in fresh if (s := session_id_of(e)) is not None})
            changes = fold_batch(
                fresh,
                self._load(conn, pdb_charges, charge_ids, Charge.from_state),
                self._load(conn, pdb_sessions, session_ids, PaymentSession.from_state),
                livemode=self.livemode,
            )
            self._write(conn, changes)
            write_position(conn, pdb_position, self.name, fresh[-1].position)
        return len(fresh)

    @staticmethod
    def _load(
        conn: Connection,
        table: Table,
        ids: Sequence[str],
        build: Callable[[Mapping[str, Any]], Any],
    ) -> dict[str, tuple[Any, int]]:
        found: dict[str, tuple[Any, int]] = {}
        for part in chunks(ids):
            query = select(table.c.id, table.c.seq, table.c.state).where(table.c.id.in_(part))
            for row in conn.execute(query):
                found[row.id] = (build(json.loads(row.state)), int(row.seq))
        return found

    def _write(self, conn: Connection, changes: PaymentChanges) -> None:
        db = self.db
        charges = [charge_row(t.value, t.seq) for t in changes.charges.values()]
        if charges:
            statement = db.prepared(
                "pdb.charges.upsert", lambda d: _upsert(d, pdb_charges, "id", ("seq", "created"))
            )
            conn.execute(statement, charges)
        refunds = [refund_row(t.value, t.seq) for t in changes.refunds.values() if t.status_changed]
        if refunds:
            statement = db.prepared(
                "pdb.refunds.upsert", lambda d: _upsert(d, pdb_refunds, "id", ("seq", "created"))
            )
            conn.execute(statement, refunds)
        sessions = [session_row(t.value, t.seq) for t in changes.sessions.values()]
        if sessions:
            statement = db.prepared(
                "pdb.sessions.upsert",
                lambda d: _upsert(d, pdb_sessions, "id", ("seq", "created")),
            )
            conn.execute(statement, sessions)
        if changes.events:
            statement = db.prepared(
                "pdb.events.insert",
                lambda d: d.insert(pdb_events).on_conflict_do_nothing(index_elements=["position"]),
            )
            conn.execute(statement, changes.events)
        deltas = [
            {"merchant_id": merchant, "object": kind, "status": status, "count": delta}
            for (merchant, kind, status), delta in changes.count_deltas().items()
        ]
        if deltas:
            conn.execute(db.prepared("pdb.counts.upsert", _count_upsert), deltas)
            # A count back at zero leaves no row, whatever the batch boundaries were: a
            # rebuild in other batch sizes must produce the same table.
            merchants = sorted({str(d["merchant_id"]) for d in deltas})
            for part in chunks(merchants):
                conn.execute(
                    delete(pdb_counts).where(
                        pdb_counts.c.merchant_id.in_(list(part)), pdb_counts.c["count"] == 0
                    )
                )

    def digest(self) -> dict[str, str]:
        with self.db.read() as conn:
            return {name: table_digest(conn, table) for name, (table, _) in PAYMENT_TABLES.items()}

    def close(self) -> None:
        self.db.dispose()

    # ------------------------------------------------------------ reading

    def _page(
        self,
        table: Table,
        key: str,
        merchant_id: str,
        page: Any,
        filters: Sequence[Any] = (),
    ) -> tuple[list[Any], bool]:
        """Rows of `table` for one merchant, newest first by `key`, with cursor and filters.

        `page` has `limit`, `starting_after`, `ending_before` and `created` (gt/gte/lt/lte).
        """
        column = table.c[key]
        query: Select[Any] = select(table).where(table.c.merchant_id == merchant_id, *filters)
        query = _created(query, table, getattr(page, "created", None))
        limit = max(1, int(page.limit))
        with self.db.read() as conn:
            # Both cursors: the objects between them, newest first (a bounded window, as the
            # API documents); `ending_before` alone pages backwards.
            ascending = page.ending_before is not None and page.starting_after is None
            if page.starting_after is not None:
                cursor = self._cursor(conn, table, key, merchant_id, page.starting_after)
                query = query.where(column < cursor)
            if page.ending_before is not None:
                cursor = self._cursor(
                    conn, table, key, merchant_id, page.ending_before, "ending_before"
                )
                query = query.where(column > cursor)
            order = column.asc() if ascending else column.desc()
            rows = list(conn.execute(query.order_by(order).limit(limit + 1)))
        has_more = len(rows) > limit
        rows = rows[:limit]
        if ascending:
            rows.reverse()
        return rows, has_more

    def _cursor(
        self,
        conn: Connection,
        table: Table,
        key: str,
        merchant_id: str,
        object_id: str,
        param: str = "starting_after",
    ) -> int:
        value = conn.execute(
            select(table.c[key]).where(table.c.id == object_id, table.c.merchant_id == merchant_id)
        ).scalar_one_or_none()
        if value is None:
            raise self._cursor_error(param)
        return int(value)

    def list_charges(self, merchant_id: str, page: Any, status: str | None = None) -> Any:
        filters = [pdb_charges.c.status == status] if status else []
        rows, more = self._page(pdb_charges, "seq", merchant_id, page, filters)
        return self._page_type([Charge.from_state(json.loads(r.state)) for r in rows], more)

    def list_refunds(self, merchant_id: str, page: Any, charge_id: str | None = None) -> Any:
        filters = [pdb_refunds.c.charge_id == charge_id] if charge_id else []
        rows, more = self._page(pdb_refunds, "seq", merchant_id, page, filters)
        return self._page_type([Refund.from_state(json.loads(r.state)) for r in rows], more)

    def list_sessions(self, merchant_id: str, page: Any, status: str | None = None) -> Any:
        filters = [pdb_sessions.c.status == status] if status else []
        rows, more = self._page(pdb_sessions, "seq", merchant_id, page, filters)
        return self._page_type([PaymentSession.from_state(json.loads(r.state)) for r in rows], more)

    def list_events(self, merchant_id: str, page: Any, types: Sequence[str] = ()) -> Any:
        filters: list[Any] = []
        if types:
            clauses = [
                pdb_events.c.type.startswith(t[:-1]) if t.endswith("*") else pdb_events.c.type == t
                for t in types
            ]
            filters.append(or_(*clauses))
        rows, more = self._page(pdb_events, "position", merchant_id, page, filters)
        return self._page_type([json.loads(r.body) for r in rows], more)

    def get_event(self, merchant_id: str, event_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            body = conn.execute(
                select(pdb_events.c.body).where(
                    pdb_events.c.id == event_id, pdb_events.c.merchant_id == merchant_id
                )
            ).scalar_one_or_none()
        return None if body is None else dict(json.loads(body))

    def refund_owner(self, refund_id: str) -> tuple[str, str | None] | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(pdb_refunds.c.charge_id, pdb_refunds.c.merchant_id).where(
                    pdb_refunds.c.id == refund_id
                )
            ).one_or_none()
        return None if row is None else (row.charge_id, row.merchant_id)

    def counts(self, merchant_id: str) -> dict[str, dict[str, int]]:
        """Per object kind (charges, refunds, sessions): count by status."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(pdb_counts.c.object, pdb_counts.c.status, pdb_counts.c["count"])
                .where(pdb_counts.c.merchant_id == merchant_id, pdb_counts.c["count"] != 0)
                .order_by(pdb_counts.c.object, pdb_counts.c.status)
            ).all()
        counts: dict[str, dict[str, int]] = {}
        for kind, status, count in rows:
            counts.setdefault(kind, {})[status] = int(count)
        return counts

    def charges_by_status(self) -> dict[str, int]:
        """All merchants: charges per status (operations and tests)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(pdb_counts.c.status, pdb_counts.c["count"]).where(
                    pdb_counts.c.object == "charges"
                )
            ).all()
        totals: dict[str, int] = {}
        for status, count in rows:
            totals[status] = totals.get(status, 0) + int(count)
        return {k: v for k, v in sorted(totals.items()) if v}

    def charge_states(self) -> list[dict[str, Any]]:
        """Every charge snapshot (operations and tests; small databases only)."""
        with self.db.read() as conn:
            rows = conn.execute(select(pdb_charges.c.state).order_by(pdb_charges.c.seq)).all()
        return [json.loads(r.state) for r in rows]


def _created(query: Select[Any], table: Table, created: Any) -> Select[Any]:
    if created is None:
        return query
    column = table.c.created
    for attr, op in (("gt", "__gt__"), ("gte", "__ge__"), ("lt", "__lt__"), ("lte", "__le__")):
        value = getattr(created, attr, None)
        if value is not None:
            query = query.where(getattr(column, op)(int(value)))
    return query
