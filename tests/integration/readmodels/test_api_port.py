"""PaymentDB's query side fits the API's `PaymentQueries` port: given the API's `Page` and
`CursorNotFound`, it answers every list call exactly as the API's own interim read model does
for the same events, so the API's composition root can switch to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from noncde.api.adapters.sql.projection import SqlPaymentProjection
from noncde.api.adapters.sql.schema import init_schema
from noncde.api.ports import CreatedRange, CursorNotFound, Page, PageRequest, PaymentQueries
from noncde.platform.adapters.sql.schema import SqlDatabase
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
def ours(tmp_path: Path, platform: Platform) -> Iterator[SqlPaymentDb]:
    env = {
        "FINCORE_VAR_DIR": str(tmp_path / "var"),
        "FINCORE_READMODELS_PAYMENTDB_URL": f"sqlite:///{tmp_path / 'payments.db'}",
    }
    queries = payment_queries(env=env, page=Page, cursor_not_found=CursorNotFound)
    Projector(platform.events, queries).catch_up()
    yield queries
    queries.close()


@pytest.fixture
def theirs(tmp_path: Path, platform: Platform) -> Iterator[SqlPaymentProjection]:
    db = SqlDatabase(f"sqlite:///{tmp_path / 'api.db'}")
    init_schema(db)
    projection = SqlPaymentProjection(db)
    events = platform.events.read_all(1, 100_000)
    projection.apply(events)
    yield projection
    db.dispose()


def test_lists_match_the_apis_own_read_model(
    ours: SqlPaymentDb, theirs: SqlPaymentProjection
) -> None:
    """Charges, refunds, sessions and events, page by page with filters, are the same objects
    in the same order, in the API's `Page` type."""
    port: PaymentQueries = ours  # type-checks structurally against the API's port
    for merchant in scenario.MERCHANTS:
        for request in (
            PageRequest(limit=5),
            PageRequest(limit=100),
            PageRequest(limit=3, created=CreatedRange(gte=0)),
        ):
            mine = port.list_charges(merchant, request)
            assert isinstance(mine, Page)
            assert [c.to_api() for c in mine.data] == [
                c.to_api() for c in theirs.list_charges(merchant, request).data
            ]
            assert mine.has_more == theirs.list_charges(merchant, request).has_more
            assert [
                c.to_api() for c in port.list_charges(merchant, request, status="succeeded").data
            ] == [
                c.to_api() for c in theirs.list_charges(merchant, request, status="succeeded").data
            ]
            assert [r.to_api() for r in port.list_refunds(merchant, request).data] == [
                r.to_api() for r in theirs.list_refunds(merchant, request).data
            ]
            assert [s.id for s in port.list_sessions(merchant, request).data] == [
                s.id for s in theirs.list_sessions(merchant, request).data
            ]
            assert (
                port.list_events(merchant, request, ["charge.*"]).data
                == theirs.list_events(merchant, request, ["charge.*"]).data
            )
        first = port.list_charges(merchant, PageRequest(limit=2)).data[-1].id
        after = PageRequest(limit=4, starting_after=first)
        assert [c.id for c in port.list_charges(merchant, after).data] == [
            c.id for c in theirs.list_charges(merchant, after).data
        ]
    assert port.position() == theirs.position()


def test_unknown_cursors_raise_the_apis_error(ours: SqlPaymentDb) -> None:
    """A cursor naming another merchant's charge raises the API's `CursorNotFound` with the
    parameter, which the API turns into a 400."""
    other = ours.list_charges(scenario.MERCHANTS[1], PageRequest(limit=1)).data[0].id
    with pytest.raises(CursorNotFound) as raised:
        ours.list_charges(scenario.MERCHANTS[0], PageRequest(ending_before=other))
    assert raised.value.param == "ending_before"
