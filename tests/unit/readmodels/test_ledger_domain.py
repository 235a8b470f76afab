"""The ledger's posting rules and reports, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from noncde.api.domain import (
    ChargeCaptured,
    ChargeRequested,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    RefundSucceeded,
)
from noncde.platform.domain import RecordedEvent
from noncde.readmodels.domain.ledger import (
    PSP_CLEARING,
    PSP_FEES,
    AccountBalance,
    ChargeFacts,
    Entry,
    FeeAssessed,
    LedgerEventType,
    Posting,
    PostingKind,
    ReversalRequested,
    StoredTransaction,
    TrialBalance,
    UnbalancedTransaction,
    UnknownCharge,
    UnknownTransaction,
    end_of_day,
    facts_of,
    merchant_balances,
    postings_for,
)

WHEN = datetime(2026, 11, 27, 12, tzinfo=UTC)
FACTS = ChargeFacts("ch_OneOneOneOneOne", "mer_AlphaAlphaAlpha", "eur")


def _event(
    type_: str, data: dict, *, stream: str = "charge-ch_OneOneOneOneOne", position: int = 5
) -> RecordedEvent:
    return RecordedEvent(
        f"evt_{position}x",
        type_,
        stream,
        position,
        position,
        WHEN,
        data,
        merchant_id="mer_AlphaAlphaAlpha",
    )


def _post(event: RecordedEvent, txns: dict[int, StoredTransaction] | None = None) -> Posting | None:
    return postings_for(event, {FACTS.charge_id: FACTS}.get, (txns or {}).get)


def test_capture_debits_clearing_and_credits_the_merchant() -> None:
    """charge.captured: psp:clearing debit, merchant balance credit, in the charge's currency."""
    posting = _post(
        _event("charge.captured", ChargeCaptured(FACTS.charge_id, 700, 1000, "pi_1").to_data())
    )
    assert posting is not None and posting.kind is PostingKind.CAPTURE and posting.currency == "eur"
    assert posting.entries == (
        Entry(PSP_CLEARING, "eur", 700),
        Entry("merchant:mer_AlphaAlphaAlpha:balance", "eur", -700),
    )
    assert posting.psp_reference == "pi_1" and posting.amount == 700


def test_refund_debits_the_contra_account_and_credits_clearing() -> None:
    """refund.succeeded: merchant refunds (contra) debit, psp:clearing credit."""
    posting = _post(
        _event("refund.succeeded", RefundSucceeded("re_1", FACTS.charge_id, 250, "pre_1").to_data())
    )
    assert posting is not None
    assert posting.entries == (
        Entry("merchant:mer_AlphaAlphaAlpha:refunds", "eur", 250),
        Entry(PSP_CLEARING, "eur", -250),
    )
    assert posting.refund_id == "re_1"


def test_fee_and_reversal_postings() -> None:
    """A settlement fee charges the merchant's fee account against psp:fees; a reversal mirrors
    the original transaction."""
    fee = FeeAssessed(
        "2026-11-28", "txn_1", "pi_1", "mer_AlphaAlphaAlpha", 59, "eur", FACTS.charge_id
    )
    posting = _post(
        _event(LedgerEventType.FEE_ASSESSED, fee.to_data(), stream="settlement-2026-11-28")
    )
    assert posting is not None and posting.entries == (
        Entry("merchant:mer_AlphaAlphaAlpha:fees", "eur", 59),
        Entry(PSP_FEES, "eur", -59),
    )
    original = StoredTransaction(
        7,
        "evt_a",
        PostingKind.FEE,
        "eur",
        WHEN,
        posting.entries,
        merchant_id="mer_AlphaAlphaAlpha",
        psp_reference="pi_1",
    )
    request = ReversalRequested(7, "double fee", "ops")
    reversal = _post(
        _event(LedgerEventType.REVERSAL_REQUESTED, request.to_data(), stream="ledger-reversal-7"),
        {7: original},
    )
    assert reversal is not None and reversal.kind is PostingKind.REVERSAL and reversal.reverses == 7
    assert reversal.entries == tuple(
        Entry(e.account, e.currency, -e.amount) for e in posting.entries
    )
    with pytest.raises(UnknownTransaction):
        _post(
            _event(LedgerEventType.REVERSAL_REQUESTED, ReversalRequested(8, "x", "ops").to_data())
        )


def test_events_that_move_no_money_post_nothing_and_unknown_charges_stop_the_ledger() -> None:
    """Requests, authorizations and zero amounts post nothing; money for a charge never
    requested raises instead of guessing a currency."""
    method = PaymentMethodRef(PaymentMethodType.PSP_TOKEN, "pm_1")
    requested = _event(
        "charge.requested",
        ChargeRequested(
            FACTS.charge_id, 1000, "eur", True, method, Flow.SDK, "2026-11-27T12:00:00Z"
        ).to_data(),
    )
    assert _post(requested) is None
    assert facts_of(requested) == FACTS
    assert (
        _post(
            _event(
                "charge.authorized",
                {"charge_id": FACTS.charge_id, "amount_authorized": 5, "psp_reference": "pi"},
            )
        )
        is None
    )
    with pytest.raises(UnknownCharge):
        postings_for(
            _event("charge.captured", ChargeCaptured("ch_Other", 5, 5, "pi").to_data()),
            {}.get,
            {}.get,
        )


def test_unbalanced_or_mixed_currency_transactions_are_refused() -> None:
    """A posting must have two or more non-zero legs in one currency that sum to zero."""
    for entries in (
        (Entry("a", "usd", 5), Entry("b", "usd", -4)),
        (Entry("a", "usd", 5), Entry("b", "eur", -5)),
        (Entry("a", "usd", 5),),
        (Entry("a", "usd", 0), Entry("b", "usd", 0)),
    ):
        with pytest.raises(UnbalancedTransaction):
            Posting("evt_x", 1, PostingKind.CAPTURE, "usd", WHEN, entries)


def test_trial_balance_and_merchant_balance() -> None:
    """Totals per currency decide `balanced`; a merchant's net is captured - refunds - fees."""
    rows = (
        AccountBalance("merchant:m:balance", "usd", 0, 1000),
        AccountBalance("merchant:m:fees", "usd", 59, 0),
        AccountBalance("merchant:m:refunds", "usd", 200, 0),
        AccountBalance(PSP_CLEARING, "usd", 1000, 200),
        AccountBalance(PSP_FEES, "usd", 0, 59),
    )
    trial = TrialBalance(rows, None, 4)
    assert trial.balanced and trial.totals() == {"usd": (1259, 1259)}
    assert not TrialBalance(rows[:-1], None, 4).balanced
    (balance,) = merchant_balances("m", rows)
    assert (balance.captured, balance.refunded, balance.fees, balance.net) == (1000, 200, 59, 741)
    assert end_of_day(date(2026, 11, 27)) == datetime(2026, 11, 28, tzinfo=UTC)
