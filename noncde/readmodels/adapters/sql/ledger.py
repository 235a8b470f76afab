"""noncde.readmodels adapters, SQL: LedgerDB, the double-entry journal posted from events.

One database transaction per batch: read the position (row-locked on PostgreSQL), derive each
event's posting with the pure rules of `domain.ledger`, skip any whose source event is already
posted (the unique `source_event_id` is the last line of defence), number transactions and
entries max + 1, insert, move the position. The journal tables refuse UPDATE and DELETE in the
database (triggers, see schema.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from noncde.api.domain import EventType
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.platform.domain import RecordedEvent, from_micros, to_micros
from noncde.readmodels.adapters.sql.common import (
    chunks,
    read_position,
    table_digest,
    write_position,
)
from noncde.readmodels.adapters.sql.schema import (
    LEDGER_TABLES,
    init_ledger_schema,
    ledger_charges,
    ledger_entries,
    ledger_position,
    ledger_transactions,
)
from noncde.readmodels.domain.ledger import (
    AccountBalance,
    ChargeFacts,
    Entry,
    LedgerEventType,
    Posting,
    PostingKind,
    ReversalRequested,
    StoredTransaction,
    facts_of,
    postings_for,
)

PROJECTION = "ledger"
_MONEY_EVENTS = {EventType.CHARGE_CAPTURED, EventType.REFUND_SUCCEEDED}
_POSTING_EVENTS = {
    *_MONEY_EVENTS,
    LedgerEventType.FEE_ASSESSED,
    LedgerEventType.REVERSAL_REQUESTED,
}


def _money_charge_id(event: RecordedEvent) -> str | None:
    # Only the id is needed here (the posting rules parse the event in full).
    if event.type not in _MONEY_EVENTS:
        return None
    charge_id = event.data.get("charge_id")
    return charge_id if isinstance(charge_id, str) else None


class SqlLedger:
    """LedgerDB on SQLite or PostgreSQL: the `Projection` the ledger writer feeds, and
    `LedgerQueries`."""

    def __init__(
        self, db: SqlDatabase, *, name: str = PROJECTION, create_schema: bool = True
    ) -> None:
        self.db = db
        self.name = name
        if create_schema:
            init_ledger_schema(db, [name])

    # ------------------------------------------------------------ writing

    def position(self) -> int:
        with self.db.read() as conn:
            return read_position(conn, ledger_position, self.name, lock=False)

    def apply(self, events: Sequence[RecordedEvent]) -> int:
        if not events:
            return 0
        with self.db.write() as conn:
            current = read_position(conn, ledger_position, self.name, lock=self.db.is_postgres)
            fresh = [e for e in events if e.position > current]
            if not fresh:
                return 0
            self._post(conn, fresh)
            write_position(conn, ledger_position, self.name, fresh[-1].position)
        return len(fresh)

    def _post(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        facts = self._charge_facts(conn, events)
        new_facts: list[dict[str, Any]] = []
        # Only events that post can collide with an earlier posting (the unique source id is
        # the last line of defence behind the position; a lost position replays them).
        posted = self._posted_sources(conn, [e.id for e in events if e.type in _POSTING_EVENTS])
        wanted = [
            ReversalRequested.from_data(e.data).transaction
            for e in events
            if e.type == LedgerEventType.REVERSAL_REQUESTED
        ]
        known = {t.seq: t for t in self._transactions(conn, seqs=wanted)} if wanted else {}
        txn_seq = int(
            conn.execute(select(func.coalesce(func.max(ledger_transactions.c.seq), 0))).scalar_one()
        )
        entry_seq = int(
            conn.execute(select(func.coalesce(func.max(ledger_entries.c.seq), 0))).scalar_one()
        )
        txn_rows: list[dict[str, Any]] = []
        entry_rows: list[dict[str, Any]] = []
        for event in events:
            established = facts_of(event)
            if established is not None and established.charge_id not in facts:
                facts[established.charge_id] = established
                new_facts.append(
                    {
                        "charge_id": established.charge_id,
                        "merchant_id": established.merchant_id,
                        "currency": established.currency,
                    }
                )
            if event.id in posted:
                continue
            posting = postings_for(event, facts.get, known.get)
            if posting is None:
                continue
            posted.add(event.id)
            txn_seq += 1
            posted_at = to_micros(posting.posted_at.timestamp())
            txn_rows.append(_transaction_row(txn_seq, posting, posted_at))
            for entry in posting.entries:
                entry_seq += 1
                entry_rows.append(
                    {
                        "seq": entry_seq,
                        "txn_seq": txn_seq,
                        "account": entry.account,
                        "currency": entry.currency,
                        "amount": entry.amount,
                        "posted_at": posted_at,
                    }
                )
            known[txn_seq] = _stored(txn_seq, posting)
        if new_facts:
            conn.execute(
                self.db.prepared(
                    "ledger.charges.insert",
                    lambda d: d.insert(ledger_charges).on_conflict_do_nothing(
                        index_elements=["charge_id"]
                    ),
                ),
                new_facts,
            )
        if txn_rows:
            conn.execute(ledger_transactions.insert(), txn_rows)
            conn.execute(ledger_entries.insert(), entry_rows)

    def _charge_facts(
        self, conn: Connection, events: Sequence[RecordedEvent]
    ) -> dict[str, ChargeFacts]:
        wanted = sorted({c for e in events if (c := _money_charge_id(e)) is not None})
        found: dict[str, ChargeFacts] = {}
        for part in chunks(wanted):
            for row in conn.execute(
                select(ledger_charges).where(ledger_charges.c.charge_id.in_(part))
            ):
                found[row.charge_id] = ChargeFacts(row.charge_id, row.merchant_id, row.currency)
        return found

    @staticmethod
    def _posted_sources(conn: Connection, event_ids: Sequence[str]) -> set[str]:
        posted: set[str] = set()
        for part in chunks(event_ids):
            posted.update(
                conn.execute(
                    select(ledger_transactions.c.source_event_id).where(
                        ledger_transactions.c.source_event_id.in_(part)
                    )
                ).scalars()
            )
        return posted

    def digest(self) -> dict[str, str]:
        with self.db.read() as conn:
            return {name: table_digest(conn, table) for name, (table, _) in LEDGER_TABLES.items()}

    def close(self) -> None:
        self.db.dispose()

    # ------------------------------------------------------------ reading

    def account_balances(
        self, *, at: datetime | None = None, prefix: str | None = None
    ) -> list[AccountBalance]:
        debit = func.sum(case((ledger_entries.c.amount > 0, ledger_entries.c.amount), else_=0))
        credit = func.sum(case((ledger_entries.c.amount < 0, -ledger_entries.c.amount), else_=0))
        query = select(ledger_entries.c.account, ledger_entries.c.currency, debit, credit)
        if at is not None:
            query = query.where(ledger_entries.c.posted_at < to_micros(at.timestamp()))
        if prefix:
            query = query.where(ledger_entries.c.account.startswith(prefix, autoescape=True))
        query = query.group_by(ledger_entries.c.account, ledger_entries.c.currency).order_by(
            ledger_entries.c.account, ledger_entries.c.currency
        )
        with self.db.read() as conn:
            return [
                AccountBalance(account, currency, int(d or 0), int(c or 0))
                for account, currency, d, c in conn.execute(query)
            ]

    def transaction_count(self, *, at: datetime | None = None) -> int:
        query = select(func.count()).select_from(ledger_transactions)
        if at is not None:
            query = query.where(ledger_transactions.c.posted_at < to_micros(at.timestamp()))
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def unbalanced_transactions(self) -> list[int]:
        """Transactions whose entries do not sum to zero (always empty unless tampered with
        below the application: the writer refuses to post one)."""
        query = (
            select(ledger_entries.c.txn_seq)
            .group_by(ledger_entries.c.txn_seq)
            .having(func.sum(ledger_entries.c.amount) != 0)
        )
        with self.db.read() as conn:
            return [int(s) for s in conn.execute(query).scalars()]

    def transaction(self, seq: int) -> StoredTransaction | None:
        with self.db.read() as conn:
            found = self._transactions(conn, seqs=[seq])
        return found[0] if found else None

    def transactions_for_references(self, psp_references: Sequence[str]) -> list[StoredTransaction]:
        found: list[StoredTransaction] = []
        with self.db.read() as conn:
            for part in chunks(sorted(set(psp_references))):
                found.extend(
                    self._transactions(
                        conn, where=ledger_transactions.c.psp_reference.in_(list(part))
                    )
                )
        return sorted(found, key=lambda t: t.seq)

    def transactions_between(
        self, start: datetime, end: datetime, kinds: Sequence[str] = ()
    ) -> list[StoredTransaction]:
        condition = (ledger_transactions.c.posted_at >= to_micros(start.timestamp())) & (
            ledger_transactions.c.posted_at < to_micros(end.timestamp())
        )
        if kinds:
            condition = condition & ledger_transactions.c.kind.in_(list(kinds))
        with self.db.read() as conn:
            return self._transactions(conn, where=condition)

    @staticmethod
    def _transactions(
        conn: Connection, *, seqs: Sequence[int] | None = None, where: Any = None
    ) -> list[StoredTransaction]:
        query = select(ledger_transactions).order_by(ledger_transactions.c.seq)
        if seqs is not None:
            query = query.where(ledger_transactions.c.seq.in_(list(seqs)))
        if where is not None:
            query = query.where(where)
        rows = list(conn.execute(query))
        entries: dict[int, list[Entry]] = {}
        for part in chunks([r.seq for r in rows]):
            for entry in conn.execute(
                select(ledger_entries)
                .where(ledger_entries.c.txn_seq.in_(list(part)))
                .order_by(ledger_entries.c.seq)
            ):
                entries.setdefault(entry.txn_seq, []).append(
                    Entry(entry.account, entry.currency, int(entry.amount))
                )
        return [
            StoredTransaction(
                seq=int(r.seq),
                source_event_id=r.source_event_id,
                kind=PostingKind(r.kind),
                currency=r.currency,
                posted_at=from_micros(r.posted_at),
                entries=tuple(entries.get(r.seq, ())),
                merchant_id=r.merchant_id,
                psp_reference=r.psp_reference,
                charge_id=r.charge_id,
                refund_id=r.refund_id,
                memo=r.memo,
                reverses=None if r.reverses is None else int(r.reverses),
            )
            for r in rows
        ]


def _transaction_row(seq: int, posting: Posting, posted_at: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "source_event_id": posting.source_event_id,
        "event_position": posting.position,
        "kind": str(posting.kind),
        "merchant_id": posting.merchant_id,
        "currency": posting.currency,
        "amount": posting.amount,
        "psp_reference": posting.psp_reference,
        "charge_id": posting.charge_id,
        "refund_id": posting.refund_id,
        "posted_at": posted_at,
        "memo": posting.memo,
        "reverses": posting.reverses,
    }


def _stored(seq: int, posting: Posting) -> StoredTransaction:
    return StoredTransaction(
        seq=seq,
        source_event_id=posting.source_event_id,
        kind=posting.kind,
        currency=posting.currency,
        posted_at=posting.posted_at,
        entries=posting.entries,
        merchant_id=posting.merchant_id,
        psp_reference=posting.psp_reference,
        charge_id=posting.charge_id,
        refund_id=posting.refund_id,
        memo=posting.memo,
        reverses=posting.reverses,
    )
