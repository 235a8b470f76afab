"""PaymentDB is the API's read model: its query side fits the API's `PaymentQueries` port (with
the API's `Page` and `CursorNotFound`), and the API's composition root lists from the PaymentDB
the projectionist writes (`FINCORE_READMODELS_PAYMENTDB_URL`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from noncde.api.bootstrap import build_runtime
from noncde.api.ports import CursorNotFound, Page, PageRequest, PaymentQueries
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.ports import Platform
from noncde.readmodels.adapters.sql.payments import SqlPaymentDb
from noncde.readmodels.bootstrap import payment_queries
from noncde.readmodels.service.projector import Projector
from tests.integration.readmodels import scenario


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    built = build_platform(PlatformConfig.for_database(f"sqlite:///{tmp_path / 'platform.db'}"))
    scenario.write(built.events, charges=40)
    yield built
    built.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "FINCORE_VAR_DIR": str(tmp_path / "var"),
        "FINCORE_ENV": "test",
        "FINCORE_READMODELS_PAYMENTDB_URL": f"sqlite:///{tmp_path / 'payments.db'}",
    }


@pytest.fixture
def ours(env: dict[str, str], platform: Platform) -> Iterator[SqlPaymentDb]:
    """PaymentDB filled by the projectionist's projector."""
    queries = payment_queries(env=env, page=Page, cursor_not_found=CursorNotFound)
    Projector(platform.events, queries).catch_up()
    yield queries
    queries.close()


def test_the_api_lists_from_the_projectionists_paymentdb(
    ours: SqlPaymentDb, env: dict[str, str], platform: Platform
) -> None:
    """An API runtime built on the same settings answers its lists from that PaymentDB: it has
    nothing left to apply, and its pages are PaymentDB's rows in the API's `Page` type."""
    port: PaymentQueries = ours  # type-checks structurally against the API's port
    runtime = build_runtime(env=env, platform=platform)
    try:
        assert runtime.projector.lag() == 0
        assert runtime.projector.run_once() == 0, "the projectionist applied everything already"
        for merchant in scenario.MERCHANTS:
            request = PageRequest(limit=100)
            mine = port.list_charges(merchant, request)
            assert isinstance(mine, Page) and mine.data
            listed = runtime.payments.list_charges(merchant, request)
            assert [c["id"] for c in listed["data"]] == [c.id for c in mine.data]
            events = runtime.payments.list_events(merchant, PageRequest(limit=5), ["charge.*"])
            assert (
                events["data"]
                == port.list_events(merchant, PageRequest(limit=5), ["charge.*"]).data
            )
    finally:
        runtime.close()


def test_both_cursors_give_the_window_between_them(ours: SqlPaymentDb) -> None:
    """`starting_after` and `ending_before` together: the objects between them, newest first
    (the API's documented window)."""
    merchant = scenario.MERCHANTS[0]
    ids = [c.id for c in ours.list_charges(merchant, PageRequest(limit=100)).data]
    window = ours.list_charges(
        merchant, PageRequest(limit=100, starting_after=ids[1], ending_before=ids[5])
    )
    assert [c.id for c in window.data] == ids[2:5]


def test_unknown_cursors_raise_the_apis_error(ours: SqlPaymentDb) -> None:
    """A cursor naming another merchant's charge raises the API's `CursorNotFound` with the
    parameter, which the API turns into a 400."""
    other = ours.list_charges(scenario.MERCHANTS[1], PageRequest(limit=1)).data[0].id
    with pytest.raises(CursorNotFound) as raised:
        ours.list_charges(scenario.MERCHANTS[0], PageRequest(ending_before=other))
    assert raised.value.param == "ending_before"
