"""noncde.readmodels (non-CDE): the double-entry ledger's values and posting rules; pure, no I/O.

LedgerDB is a projection of the event store: every posting comes from exactly one event
(`source_event_id`, unique), so replaying the store posts nothing twice and a rebuild from zero
posts the same transactions in the same order. Amounts are signed integers in minor units
(positive = debit, negative = credit); every transaction sums to zero in its one currency.

Accounts (per merchant and currency; noncde-events.md):

| account | normal side | moved by |
|---|---|---|
| `merchant:<id>:balance` | credit | captures (what the merchant is owed, gross) |
| `merchant:<id>:refunds` | debit (contra) | refunds paid back to buyers |
| `merchant:<id>:fees` | debit (contra) | PSP fees charged to the merchant (from settlement) |
| `merchant:<id>:pending` | — | never: an authorization moves no money (see below) |
| `psp:clearing` | debit | what the PSP owes us for captures, less refunds |
| `psp:fees` | credit | fees the PSP withholds from its settlement |

Authorizations post nothing: a hold at the issuer is not money the PSP owes anyone, and a memo
posting would need a reversal on every capture, cancel and expiry. Captures post when
`charge.captured` is recorded; refunds when `refund.succeeded` is.

Two event types of this module complete the ledger's inputs, so LedgerDB stays a pure function
of the event store: `settlement.fee_assessed` (appended by reconciliation for each fee line of a
settlement file; stream `settlement-<YYYY-MM-DD>`) and `ledger.reversal_requested` (appended by
the `reverse` command; stream `ledger-reversal-<seq>`, expected version 0, so a transaction can
be reversed once). Entries are immutable: corrections are reversing transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from noncde.api.domain import (
    ChargeCaptured,
    ChargeRequested,
    EventType,
    RefundSucceeded,
    parse_event,
)
from noncde.api.domain.ids import CHARGE_STREAM_PREFIX
from noncde.platform.domain import RecordedEvent

PSP_CLEARING = "psp:clearing"
PSP_FEES = "psp:fees"
SETTLEMENT_STREAM_PREFIX = "settlement-"
REVERSAL_STREAM_PREFIX = "ledger-reversal-"


class LedgerError(Exception):
    """Base of the ledger's errors."""


class UnbalancedTransaction(LedgerError):
    """A transaction whose entries do not sum to zero (a bug: nothing was written)."""


class UnknownCharge(LedgerError):
    """A money event for a charge whose `charge.requested` the ledger has not seen."""


class UnknownTransaction(LedgerError):
    """A reversal names a transaction that does not exist."""


class AccountKind(StrEnum):
    BALANCE = "balance"
    PENDING = "pending"
    REFUNDS = "refunds"
    FEES = "fees"


def merchant_account(merchant_id: str, kind: AccountKind) -> str:
    return f"merchant:{merchant_id}:{kind}"


def merchant_accounts(merchant_id: str) -> dict[AccountKind, str]:
    return {kind: merchant_account(merchant_id, kind) for kind in AccountKind}


class PostingKind(StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"
    FEE = "fee"
    REVERSAL = "reversal"


class LedgerEventType(StrEnum):
    FEE_ASSESSED = "settlement.fee_assessed"
    REVERSAL_REQUESTED = "ledger.reversal_requested"


def settlement_stream(day: date) -> str:
    return f"{SETTLEMENT_STREAM_PREFIX}{day.isoformat()}"


def reversal_stream(transaction: int) -> str:
    return f"{REVERSAL_STREAM_PREFIX}{transaction}"


@dataclass(frozen=True, slots=True)
class FeeAssessed:
    """A fee line of the PSP's settlement file for one of our captures (token-free)."""

    settlement_date: str
    balance_transaction: str
    psp_reference: str
    merchant_id: str
    amount: int
    currency: str
    charge_id: str | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "settlement_date": self.settlement_date,
            "balance_transaction": self.balance_transaction,
            "psp_reference": self.psp_reference,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
            "currency": self.currency,
        }
        if self.charge_id is not None:
            data["charge_id"] = self.charge_id
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> FeeAssessed:
        return cls(
            settlement_date=str(data["settlement_date"]),
            balance_transaction=str(data["balance_transaction"]),
            psp_reference=str(data["psp_reference"]),
            merchant_id=str(data["merchant_id"]),
            amount=int(data["amount"]),
            currency=str(data["currency"]),
            charge_id=data.get("charge_id"),
        )


@dataclass(frozen=True, slots=True)
class ReversalRequested:
    """An operator's correction: post the mirror image of transaction `transaction`."""

    transaction: int
    reason: str
    requested_by: str

    def to_data(self) -> dict[str, Any]:
        return {
            "transaction": self.transaction,
            "reason": self.reason,
            "requested_by": self.requested_by,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ReversalRequested:
        return cls(int(data["transaction"]), str(data["reason"]), str(data["requested_by"]))


@dataclass(frozen=True, slots=True)
class Entry:
    """One leg: `amount` > 0 debits `account`, < 0 credits it."""

    account: str
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class Posting:
    """A balanced transaction derived from one event."""

    source_event_id: str
    position: int
    kind: PostingKind
    currency: str
    posted_at: datetime
    entries: tuple[Entry, ...]
    merchant_id: str | None = None
    psp_reference: str | None = None
    charge_id: str | None = None
    refund_id: str | None = None
    memo: str | None = None
    reverses: int | None = None

    def __post_init__(self) -> None:
        if len(self.entries) < 2:
            raise UnbalancedTransaction("a transaction has at least two entries")
        if any(e.currency != self.currency for e in self.entries):
            raise UnbalancedTransaction("a transaction is in one currency")
        if any(e.amount == 0 for e in self.entries):
            raise UnbalancedTransaction("an entry moves a non-zero amount")
        if sum(e.amount for e in self.entries) != 0:
            raise UnbalancedTransaction(f"transaction from {self.source_event_id} does not balance")

    @property
    def amount(self) -> int:
        """The transaction's size: the sum of its debits."""
        return sum(e.amount for e in self.entries if e.amount > 0)


@dataclass(frozen=True, slots=True)
class ChargeFacts:
    """What the ledger remembers of a charge (from `charge.requested`): owner and currency."""

    charge_id: str
    merchant_id: str
    currency: str


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """A posted transaction as read back (for reversals and reports)."""

    seq: int
    source_event_id: str
    kind: PostingKind
    currency: str
    posted_at: datetime
    entries: tuple[Entry, ...]
    merchant_id: str | None = None
    psp_reference: str | None = None
    charge_id: str | None = None
    refund_id: str | None = None
    memo: str | None = None
    reverses: int | None = None


def facts_of(event: RecordedEvent) -> ChargeFacts | None:
    """The charge facts a `charge.requested` event establishes (None for other events)."""
    if event.type != EventType.CHARGE_REQUESTED or not event.stream.startswith(
        CHARGE_STREAM_PREFIX
    ):
        return None
    parsed = parse_event(event.type, event.data)
    if not isinstance(parsed, ChargeRequested) or not event.merchant_id:
        return None
    return ChargeFacts(parsed.charge_id, event.merchant_id, parsed.currency)


def postings_for(
    event: RecordedEvent,
    charges: Callable[[str], ChargeFacts | None],
    transactions: Callable[[int], StoredTransaction | None],
) -> Posting | None:
    """The posting one event causes, or None when it moves no money.

    `charges` and `transactions` look up what earlier events established. Raises
    `UnknownCharge` for a money event of a charge never requested (the store is inconsistent:
    stop rather than guess a currency) and `UnbalancedTransaction` for a bug.
    """
    if event.type == EventType.CHARGE_CAPTURED:
        captured = parse_event(event.type, event.data)
        assert isinstance(captured, ChargeCaptured)
        if captured.amount_captured <= 0:
            return None
        facts = _charge(charges, captured.charge_id, event)
        return _two_legs(
            event,
            PostingKind.CAPTURE,
            facts.currency,
            captured.amount_captured,
            debit=PSP_CLEARING,
            credit=merchant_account(facts.merchant_id, AccountKind.BALANCE),
            merchant_id=facts.merchant_id,
            psp_reference=captured.psp_reference,
            charge_id=captured.charge_id,
        )
    if event.type == EventType.REFUND_SUCCEEDED:
        refunded = parse_event(event.type, event.data)
        assert isinstance(refunded, RefundSucceeded)
        if refunded.amount <= 0:
            return None
        facts = _charge(charges, refunded.charge_id, event)
        return _two_legs(
            event,
            PostingKind.REFUND,
            facts.currency,
            refunded.amount,
            debit=merchant_account(facts.merchant_id, AccountKind.REFUNDS),
            credit=PSP_CLEARING,
            merchant_id=facts.merchant_id,
            psp_reference=refunded.psp_reference,
            charge_id=refunded.charge_id,
            refund_id=refunded.refund_id,
        )
    if event.type == LedgerEventType.FEE_ASSESSED:
        fee = FeeAssessed.from_data(event.data)
        if fee.amount == 0:
            return None
        return _two_legs(
            event,
            PostingKind.FEE,
            fee.currency,
            fee.amount,
            debit=merchant_account(fee.merchant_id, AccountKind.FEES),
            credit=PSP_FEES,
            merchant_id=fee.merchant_id,
            psp_reference=fee.psp_reference,
            charge_id=fee.charge_id,
            memo=f"settlement {fee.settlement_date} {fee.balance_transaction}",
        )
    if event.type == LedgerEventType.REVERSAL_REQUESTED:
        request = ReversalRequested.from_data(event.data)
        original = transactions(request.transaction)
        if original is None:
            raise UnknownTransaction(f"transaction {request.transaction} does not exist")
        return Posting(
            source_event_id=event.id,
            position=event.position,
            kind=PostingKind.REVERSAL,
            currency=original.currency,
            posted_at=event.recorded_at,
            entries=tuple(Entry(e.account, e.currency, -e.amount) for e in original.entries),
            merchant_id=original.merchant_id,
            psp_reference=original.psp_reference,
            charge_id=original.charge_id,
            refund_id=original.refund_id,
            memo=f"reversal of {original.seq}: {request.reason}"[:500],
            reverses=original.seq,
        )
    return None


def _two_legs(
    event: RecordedEvent,
    kind: PostingKind,
    currency: str,
    amount: int,
    *,
    debit: str,
    credit: str,
    **refs: Any,
) -> Posting:
    """The common posting: `amount` from `credit` to `debit`, at the event's time."""
    return Posting(
        source_event_id=event.id,
        position=event.position,
        kind=kind,
        currency=currency,
        posted_at=event.recorded_at,
        entries=(Entry(debit, currency, amount), Entry(credit, currency, -amount)),
        **refs,
    )


def _charge(
    charges: Callable[[str], ChargeFacts | None], charge_id: str, event: RecordedEvent
) -> ChargeFacts:
    facts = charges(charge_id)
    if facts is None:
        raise UnknownCharge(
            f"event {event.id} (position {event.position}) moves money of charge {charge_id}, "
            "which the ledger never saw requested"
        )
    return facts


# ---------------------------------------------------------------- reports


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account: str
    currency: str
    debits: int
    credits: int

    @property
    def balance(self) -> int:
        """Debits minus credits (a credit-normal account shows a negative balance)."""
        return self.debits - self.credits


@dataclass(frozen=True, slots=True)
class TrialBalance:
    """Every account's debits and credits up to `at` (None: everything)."""

    accounts: tuple[AccountBalance, ...]
    at: datetime | None
    transactions: int

    def totals(self) -> dict[str, tuple[int, int]]:
        """Per currency: (total debits, total credits)."""
        totals: dict[str, tuple[int, int]] = {}
        for row in self.accounts:
            debits, credits = totals.get(row.currency, (0, 0))
            totals[row.currency] = (debits + row.debits, credits + row.credits)
        return dict(sorted(totals.items()))

    @property
    def balanced(self) -> bool:
        return all(debits == credits for debits, credits in self.totals().values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() if self.at else None,
            "transactions": self.transactions,
            "balanced": self.balanced,
            "totals": {c: {"debits": d, "credits": k} for c, (d, k) in self.totals().items()},
            "accounts": [
                {
                    "account": a.account,
                    "currency": a.currency,
                    "debits": a.debits,
                    "credits": a.credits,
                    "balance": a.balance,
                }
                for a in self.accounts
            ],
        }


@dataclass(frozen=True, slots=True)
class MerchantBalance:
    """A merchant's position in one currency at a moment: gross captured, refunds, fees."""

    merchant_id: str
    currency: str
    captured: int
    refunded: int
    fees: int

    @property
    def net(self) -> int:
        return self.captured - self.refunded - self.fees

    def to_dict(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "currency": self.currency,
            "captured": self.captured,
            "refunded": self.refunded,
            "fees": self.fees,
            "net": self.net,
        }


def merchant_balances(merchant_id: str, rows: Sequence[AccountBalance]) -> list[MerchantBalance]:
    """Fold a merchant's account rows into one balance per currency."""
    accounts = merchant_accounts(merchant_id)
    by_currency: dict[str, dict[str, int]] = {}
    for row in rows:
        slot = by_currency.setdefault(row.currency, {"captured": 0, "refunded": 0, "fees": 0})
        if row.account == accounts[AccountKind.BALANCE]:
            slot["captured"] += -row.balance
        elif row.account == accounts[AccountKind.REFUNDS]:
            slot["refunded"] += row.balance
        elif row.account == accounts[AccountKind.FEES]:
            slot["fees"] += row.balance
    return [
        MerchantBalance(merchant_id, currency, **values)
        for currency, values in sorted(by_currency.items())
    ]


def end_of_day(day: date) -> datetime:
    """The first instant after `day` (UTC): "balance at a date" includes the whole day."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
