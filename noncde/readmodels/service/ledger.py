"""noncde.readmodels (non-CDE): the ledger's use cases: trial balance, a merchant's balance at a
date, corrections (reversing transactions), and the settlement fees reconciliation records.

Every input of LedgerDB is an event, so corrections and fees are appended to the event store
here and posted by the ledger projection like everything else: a rebuild from zero reproduces
them. A correction is audited (PCI DSS 10.2.1.2: administrative action) before it is appended;
if the audit log cannot write, nothing is changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from audit.domain import EventType as AuditEvent
from audit.domain import Outcome
from noncde.api.domain.ids import new_id
from noncde.platform.domain import ConcurrencyConflict, NewEvent
from noncde.platform.ports import EventStore
from noncde.readmodels.domain.ledger import (
    FeeAssessed,
    LedgerError,
    LedgerEventType,
    MerchantBalance,
    ReversalRequested,
    StoredTransaction,
    TrialBalance,
    end_of_day,
    merchant_balances,
    reversal_stream,
    settlement_stream,
)
from noncde.readmodels.ports import AuditTrail, LedgerQueries
from noncde.readmodels.service.projector import Lag, Projector


class AlreadyReversed(LedgerError):
    """The transaction was reversed before (a transaction is reversed at most once)."""


@dataclass(frozen=True, slots=True)
class FeesRecorded:
    """What `record_fees` did for one settlement day."""

    day: date
    appended: int
    already: int


class LedgerService:
    """Reads and corrections over LedgerDB; `projector` posts what is appended."""

    def __init__(
        self,
        events: EventStore,
        ledger: LedgerQueries,
        projector: Projector,
        audit: AuditTrail | None = None,
    ) -> None:
        self.events = events
        self.ledger = ledger
        self.projector = projector
        self.audit = audit

    # ------------------------------------------------------------ reads

    def trial_balance(self, at: date | datetime | None = None) -> TrialBalance:
        """Every account's debits and credits up to the end of `at` (a date) or strictly
        before `at` (a datetime); all of time when None."""
        moment = end_of_day(at) if isinstance(at, date) and not isinstance(at, datetime) else at
        return TrialBalance(
            accounts=tuple(self.ledger.account_balances(at=moment)),
            at=moment,
            transactions=self.ledger.transaction_count(at=moment),
        )

    def merchant_balance(
        self, merchant_id: str, at: date | datetime | None = None
    ) -> list[MerchantBalance]:
        moment = end_of_day(at) if isinstance(at, date) and not isinstance(at, datetime) else at
        rows = self.ledger.account_balances(at=moment, prefix=f"merchant:{merchant_id}:")
        return merchant_balances(merchant_id, rows)

    def transactions_for_references(self, psp_references: Sequence[str]) -> list[StoredTransaction]:
        return self.ledger.transactions_for_references(psp_references)

    def transactions_between(
        self, start: datetime, end: datetime, kinds: Sequence[str] = ()
    ) -> list[StoredTransaction]:
        return self.ledger.transactions_between(start, end, kinds)

    def lag(self) -> Lag:
        return self.projector.lag()

    def catch_up(self) -> int:
        """Post everything the event store holds now (the ledger writer does this
        continuously; commands call it to see their own appends posted)."""
        return self.projector.catch_up()

    # ------------------------------------------------------------ corrections

    def request_reversal(self, seq: int, *, reason: str, actor: str) -> int:
        """Ask for the reversing transaction of `seq`; returns the event-store position of the
        request. Raises `LedgerError` for an unknown transaction, `AlreadyReversed` if it was
        reversed before, `audit.domain.AuditUnavailable` when it cannot be audited."""
        reason = reason.strip()
        if not reason:
            raise LedgerError("a reversal needs a reason")
        original = self.ledger.transaction(seq)
        if original is None:
            raise LedgerError(f"transaction {seq} does not exist")
        if self.audit is not None:
            self.audit.record(
                AuditEvent.ADMIN_ACTION,
                actor=actor,
                outcome=Outcome.SUCCESS,
                target=f"ledger-transaction:{seq}",
                resource="ledger",
                details={"action": "reversal_requested", "kind": str(original.kind)},
                reason=reason[:200],
            )
        request = ReversalRequested(seq, reason[:500], actor[:64])
        try:
            recorded = self.events.append(
                reversal_stream(seq),
                [
                    NewEvent(
                        LedgerEventType.REVERSAL_REQUESTED,
                        request.to_data(),
                        id=new_id("evt"),
                    )
                ],
                expected_version=0,
            )
        except ConcurrencyConflict:
            raise AlreadyReversed(f"transaction {seq} was reversed before") from None
        return recorded[-1].position

    # ------------------------------------------------------------ settlement fees

    def record_fees(self, day: date, fees: Sequence[FeeAssessed]) -> FeesRecorded:
        """Append a `settlement.fee_assessed` event for each fee line of `day` not recorded yet
        (by balance transaction), then post them. Idempotent: a second call appends nothing."""
        stream = settlement_stream(day)
        for _attempt in range(10):
            existing = self.events.read_stream(stream)
            seen = {
                FeeAssessed.from_data(e.data).balance_transaction
                for e in existing
                if e.type == LedgerEventType.FEE_ASSESSED
            }
            todo: dict[str, FeeAssessed] = {}
            for fee in fees:
                if fee.balance_transaction not in seen:
                    todo.setdefault(fee.balance_transaction, fee)
            if not todo:
                self.catch_up()
                return FeesRecorded(day, 0, len(seen))
            try:
                self.events.append(
                    stream,
                    [
                        NewEvent(LedgerEventType.FEE_ASSESSED, fee.to_data(), id=new_id("evt"))
                        for fee in todo.values()
                    ],
                    expected_version=existing[-1].version if existing else 0,
                )
            except ConcurrencyConflict:
                continue  # another reconciliation of the same day appended first: re-read
            self.catch_up()
            return FeesRecorded(day, len(todo), len(seen))
        raise LedgerError(f"could not record the fees of {day}: too many concurrent writers")
