"""PaymentDB's batch fold: snapshots, refunds, sessions, event objects and count deltas."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fincore.settings import SettingsError
from noncde.api.domain import (
    ChargeCaptured,
    ChargeRequested,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    PaymentSessionCreated,
    PaymentSessionExpired,
    RefundRequested,
    RefundSucceeded,
)
from noncde.platform.domain import RecordedEvent
from noncde.readmodels.config import ReadModelsConfig
from noncde.readmodels.domain.payments import fold_batch

WHEN = datetime(2026, 11, 27, 12, tzinfo=UTC)
M = "mer_AlphaAlphaAlpha"


def _events(*pairs: tuple[str, object]) -> list[RecordedEvent]:
    versions: dict[str, int] = {}
    out = []
    for position, (stream, event) in enumerate(pairs, start=1):
        versions[stream] = versions.get(stream, 0) + 1
        out.append(
            RecordedEvent(
                f"evt_{position}z",
                event.type,
                stream,
                versions[stream],
                position,  # type: ignore[attr-defined]
                WHEN,
                event.to_data(),
                merchant_id=M,
            )
        )  # type: ignore[attr-defined]
    return out


def _requested(charge_id: str) -> ChargeRequested:
    return ChargeRequested(
        charge_id,
        1000,
        "usd",
        True,
        PaymentMethodRef(PaymentMethodType.PSP_TOKEN, "pm_1"),
        Flow.SDK,
        "2026-11-27T12:00:00Z",
    )


def test_a_batch_folds_charges_refunds_and_counts() -> None:
    """A charge requested, captured and partly refunded in one batch counts once as succeeded,
    its refund once as succeeded, and each event becomes an event object."""
    s = "charge-ch_One"
    events = _events(
        (s, _requested("ch_One")),
        (s, ChargeCaptured("ch_One", 1000, 1000, "pi_1")),
        (s, RefundRequested("re_1", "ch_One", 300)),
        (s, RefundSucceeded("re_1", "ch_One", 300, "pre_1")),
    )
    changes = fold_batch(events, {}, {})
    charge = changes.charges["ch_One"].value
    assert str(charge.status) == "succeeded" and charge.amount_refunded == 300
    assert changes.refunds["re_1"].seq == 3
    assert changes.count_deltas() == {
        (M, "charges", "succeeded"): 1,
        (M, "refunds", "succeeded"): 1,
    }
    assert [e["position"] for e in changes.events] == [1, 2, 3, 4]


def test_counts_move_between_statuses_across_batches() -> None:
    """A charge stored as processing that succeeds in a later batch moves one count."""
    s = "charge-ch_Two"
    first = _events((s, _requested("ch_Two")))
    stored = fold_batch(first, {}, {}).charges["ch_Two"]
    later = _events((s, _requested("ch_Two")), (s, ChargeCaptured("ch_Two", 1000, 1000, "pi_2")))[
        1:
    ]
    changes = fold_batch(later, {"ch_Two": (stored.value, stored.seq)}, {})
    assert changes.count_deltas() == {
        (M, "charges", "processing"): -1,
        (M, "charges", "succeeded"): 1,
    }
    assert changes.charges["ch_Two"].seq == 1  # keeps the position of its first event


def test_sessions_and_foreign_streams() -> None:
    """Sessions fold to their status; a stream that does not start with charge.requested is
    not a charge."""
    session = "payment_session-ps_One"
    events = _events(
        (
            session,
            PaymentSessionCreated(
                "ps_One",
                500,
                "eur",
                "https://a/ok",
                "https://a/no",
                "2030-01-01T00:00:00Z",
                "https://psp/pay",
                "cs_1",
            ),
        ),
        (session, PaymentSessionExpired("ps_One")),
        ("charge-ch_Orphan", ChargeCaptured("ch_Orphan", 5, 5, "pi_x")),
    )
    changes = fold_batch(events, {}, {})
    assert str(changes.sessions["ps_One"].value.status) == "expired"
    assert changes.charges == {}
    assert changes.count_deltas() == {(M, "sessions", "expired"): 1}


def test_config_refuses_shared_or_unknown_databases() -> None:
    """PaymentDB and LedgerDB are separate SQL databases; production refuses SQLite."""
    with pytest.raises(SettingsError):
        ReadModelsConfig("sqlite:///x.db", "sqlite:///x.db")
    with pytest.raises(SettingsError):
        ReadModelsConfig("redis://x", "sqlite:///y.db")
    env = {"FINCORE_ENV": "production", "FINCORE_VAR_DIR": "/srv/fincore"}
    with pytest.raises(SettingsError, match="development defaults"):
        ReadModelsConfig.from_env(env)
    ok = ReadModelsConfig.from_env(
        {
            **env,
            "FINCORE_READMODELS_PAYMENTDB_URL": "postgresql://h/p",
            "FINCORE_READMODELS_LEDGERDB_URL": "postgresql://h/l",
        }
    )
    assert ok.batch_size == 1000
