"""noncde.workers adapters: the ledger as reconciliation sees it, over noncde.readmodels'
`LedgerService` (LedgerDB). Converts the ledger's transactions into reconciliation items (net
of reversals) and settlement fee lines into the ledger's `settlement.fee_assessed` events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from noncde.readmodels.domain.ledger import FeeAssessed, PostingKind, StoredTransaction
from noncde.readmodels.service.ledger import LedgerService
from noncde.workers.domain.reconciliation import FeeLine, LedgerItem, LineType

_KINDS = {PostingKind.CAPTURE: LineType.CHARGE, PostingKind.REFUND: LineType.REFUND}


def _cancelled(transactions: Sequence[StoredTransaction]) -> set[int]:
    """Seqs whose effect a (not itself reversed) reversal undoes."""
    reversal_of = {t.seq: t.reverses for t in transactions if t.reverses is not None}
    reversed_by: dict[int, list[int]] = {}
    for seq, original in reversal_of.items():
        reversed_by.setdefault(original, []).append(seq)

    def cancelled(seq: int, depth: int = 0) -> bool:
        if depth > 50:
            return False
        return any(not cancelled(r, depth + 1) for r in reversed_by.get(seq, ()))

    return {t.seq for t in transactions if cancelled(t.seq)}


def _items(transactions: Sequence[StoredTransaction]) -> list[LedgerItem]:
    gone = _cancelled(transactions)
    items = []
    for txn in transactions:
        kind = _KINDS.get(txn.kind)
        if kind is None or txn.seq in gone or not txn.psp_reference:
            continue
        items.append(
            LedgerItem(
                kind=kind,
                psp_reference=txn.psp_reference,
                amount=sum(e.amount for e in txn.entries if e.amount > 0),
                currency=txn.currency,
                merchant_id=txn.merchant_id,
                charge_id=txn.charge_id,
                refund_id=txn.refund_id,
                transactions=(txn.seq,),
                posted_at=txn.posted_at,
            )
        )
    return items


class LedgerServiceBook:
    """`LedgerBook` over noncde.readmodels' `LedgerService`."""

    def __init__(self, service: LedgerService) -> None:
        self.service = service

    def items_for(
        self, references: Sequence[tuple[LineType, str]]
    ) -> dict[tuple[LineType, str], list[LedgerItem]]:
        wanted = set(references)
        transactions = self.service.transactions_for_references(sorted({r for _, r in wanted}))
        found: dict[tuple[LineType, str], list[LedgerItem]] = {}
        for item in _items(transactions):
            key = (item.kind, item.psp_reference)
            if key in wanted:
                found.setdefault(key, []).append(item)
        return found

    def items_between(self, start: datetime, end: datetime) -> list[LedgerItem]:
        posted = self.service.transactions_between(
            start, end, [str(PostingKind.CAPTURE), str(PostingKind.REFUND)]
        )
        references = sorted({t.psp_reference for t in posted if t.psp_reference})
        related = self.service.transactions_for_references(references)
        in_window = {t.seq for t in posted}
        return [i for i in _items(related) if i.transactions[0] in in_window]

    def record_fees(self, day: date, fees: Sequence[FeeLine]) -> int:
        recorded = self.service.record_fees(
            day,
            [
                FeeAssessed(
                    settlement_date=fee.settlement_date,
                    balance_transaction=fee.balance_transaction,
                    psp_reference=fee.psp_reference,
                    merchant_id=fee.merchant_id,
                    amount=fee.amount,
                    currency=fee.currency,
                    charge_id=fee.charge_id,
                )
                for fee in fees
            ],
        )
        return recorded.appended

    def lag_events(self) -> int:
        return self.service.lag().events

    def catch_up(self) -> int:
        return self.service.catch_up()
