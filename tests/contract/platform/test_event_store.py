"""EventStore contract: every adapter (memory, SQLite, PostgreSQL, Kinesis feed) keeps it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import pytest

from noncde.platform.adapters.kinesis import KinesisEventStore
from noncde.platform.adapters.memory import MemoryBackend, MemoryEventStore
from noncde.platform.adapters.sql import SqlDatabase, SqlEventStore
from noncde.platform.domain import (
    CardDataRefused,
    ConcurrencyConflict,
    InvalidArgument,
    NewEvent,
)
from noncde.platform.ports import EventStore
from tests.contract.platform.support import sqlite_url

PAN = "4242424242424242"


def ev(kind: str = "charge.requested", **data: object) -> NewEvent:
    return NewEvent(kind, dict(data), merchant_id="mer_1")


class EventStoreContract:
    """The guarantees of `noncde.platform.ports.EventStore`."""

    def publish(self, store: EventStore) -> None:
        """Make appended events visible to subscriptions (a relay run, for feed adapters)."""

    def test_append_numbers_versions_and_positions(self, store: EventStore) -> None:
        """A new stream starts at version 1; positions are global, consecutive and increasing."""
        first = store.append("charge-a", [ev(), ev("charge.authorized")], expected_version=0)
        second = store.append("charge-b", [ev()], expected_version=0)
        assert [e.version for e in first] == [1, 2]
        assert [e.position for e in first + second] == [1, 2, 3]
        assert store.stream_version("charge-a") == 2
        assert store.stream_version("charge-missing") == 0
        assert store.head_position() == 3
        assert store.read_stream("charge-a") == first

    def test_recorded_events_carry_their_metadata(self, store: EventStore) -> None:
        """Id, UTC time, merchant, correlation and causation ids come back as written."""
        new = NewEvent(
            "charge.requested",
            {"amount": 1000, "currency": "eur", "card": {"token": "tok_1", "last4": "4242"}},
            merchant_id="mer_9",
            correlation_id="req_1",
            causation_id="cmd_1",
        )
        (written,) = store.append("charge-m", [new], expected_version=0)
        (read,) = store.read_stream("charge-m")
        assert read == written
        assert read.id.startswith("evt_") and len(read.id) > 20
        assert read.recorded_at.tzinfo is UTC
        assert (read.merchant_id, read.correlation_id, read.causation_id) == (
            "mer_9",
            "req_1",
            "cmd_1",
        )
        assert read.data["card"] == {"token": "tok_1", "last4": "4242"}

    def test_events_are_immutable(self, store: EventStore) -> None:
        """A recorded event cannot be changed in place, and reading it twice gives equal values."""
        (event,) = store.append("charge-i", [ev(amount=5)], expected_version=0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.type = "charge.failed"  # type: ignore[misc]
        assert store.read_all() == store.read_all()

    def test_wrong_expected_version_conflicts_and_writes_nothing(self, store: EventStore) -> None:
        """Expected versions behind or ahead of the stream raise ConcurrencyConflict."""
        store.append("charge-c", [ev()], expected_version=0)
        for wrong in (0, 2, 7):
            with pytest.raises(ConcurrencyConflict) as raised:
                store.append("charge-c", [ev("charge.failed")], expected_version=wrong)
            assert raised.value.stream == "charge-c"
        assert store.stream_version("charge-c") == 1
        assert store.head_position() == 1

    def test_expected_version_none_appends_at_the_end(self, store: EventStore) -> None:
        """Without an expected version the events go after whatever is there."""
        store.append("charge-n", [ev()], expected_version=None)
        (event,) = store.append("charge-n", [ev("charge.authorized")], expected_version=None)
        assert event.version == 2

    def test_append_is_all_or_nothing(self, store: EventStore) -> None:
        """If one event of a batch is refused, none of the batch is stored."""
        with pytest.raises(CardDataRefused):
            store.append("charge-x", [ev(), ev(note=f"card {PAN}")], expected_version=0)
        assert store.head_position() == 0
        assert store.read_stream("charge-x") == []

    @pytest.mark.parametrize(
        "data",
        [
            {"note": f"paid with {PAN}"},
            {"card": {"number": "tok_not_a_pan"}},
            {"digits": int(PAN)},
            {"nested": [{"x": "4242 4242 4242 4242"}]},
        ],
    )
    def test_card_data_is_refused_before_writing(
        self, store: EventStore, data: dict[str, object]
    ) -> None:
        """Card numbers (raw, grouped, as int) and card field names never reach the store."""
        with pytest.raises(CardDataRefused) as raised:
            store.append("charge-p", [NewEvent("charge.requested", data)], expected_version=0)
        assert PAN not in str(raised.value) and "4242 4242" not in str(raised.value)
        assert store.head_position() == 0

    def test_card_number_in_stream_name_is_refused(self, store: EventStore) -> None:
        """A PAN hidden in the stream name is refused too, and not echoed."""
        with pytest.raises(CardDataRefused) as raised:
            store.append(f"charge-{PAN}", [ev()], expected_version=0)
        assert PAN not in str(raised.value)

    def test_bad_names_are_refused(self, store: EventStore) -> None:
        """Event types are dotted lowercase names; stream names are simple identifiers."""
        with pytest.raises(InvalidArgument):
            store.append("charge-t", [NewEvent("ChargeRequested", {})], expected_version=0)
        with pytest.raises(InvalidArgument):
            store.append("bad stream!", [ev()], expected_version=0)
        with pytest.raises(InvalidArgument):
            store.append("charge-t", [], expected_version=0)

    def test_event_ids_are_unique(self, store: EventStore) -> None:
        """An event id supplied by the caller can be appended only once."""
        store.append("charge-u", [NewEvent("charge.requested", {}, id="evt_fixed")], 0)
        with pytest.raises(InvalidArgument):
            store.append("charge-v", [NewEvent("charge.requested", {}, id="evt_fixed")], 0)
        assert store.stream_version("charge-v") == 0

    def test_read_all_pages_through_everything_in_order(self, store: EventStore) -> None:
        """Paging read_all by last position + 1 returns every event once, in order."""
        for i in range(25):
            store.append(f"charge-{i % 4}", [ev(i=i)], expected_version=None)
        seen = []
        position = 1
        while page := store.read_all(position, limit=7):
            assert len(page) <= 7
            seen.extend(page)
            position = page[-1].position + 1
        assert [e.position for e in seen] == list(range(1, 26))
        assert [e.data["i"] for e in seen] == list(range(25))

    def test_read_all_filters_by_merchant(self, store: EventStore) -> None:
        """A merchant sees only its own events."""
        store.append("charge-1", [NewEvent("charge.requested", {}, merchant_id="mer_a")], 0)
        store.append("charge-2", [NewEvent("charge.requested", {}, merchant_id="mer_b")], 0)
        store.append("charge-3", [NewEvent("charge.requested", {}, merchant_id="mer_a")], 0)
        mine = store.read_all(merchant_id="mer_a")
        assert [e.stream for e in mine] == ["charge-1", "charge-3"]
        assert store.read_all(merchant_id="mer_c") == []

    def test_read_stream_from_version_and_limit(self, store: EventStore) -> None:
        """read_stream honours from_version and limit."""
        store.append("charge-r", [ev(i=i) for i in range(5)], expected_version=0)
        assert [e.version for e in store.read_stream("charge-r", from_version=3)] == [3, 4, 5]
        assert [e.version for e in store.read_stream("charge-r", 2, limit=2)] == [2, 3]

    def test_subscription_delivers_then_resumes_after_checkpoint(self, store: EventStore) -> None:
        """A subscriber gets every event once it commits, and a new instance resumes after it."""
        store.append("charge-s", [ev(i=i) for i in range(3)], expected_version=0)
        self.publish(store)
        sub = store.subscription("webhooks")
        assert [e.data["i"] for e in sub.fetch()] == [0, 1, 2]
        sub.commit()
        store.append("charge-s", [ev(i=3)], expected_version=3)
        self.publish(store)
        again = store.subscription("webhooks")
        assert [e.data["i"] for e in again.fetch()] == [3]
        assert again.fetch() == []

    def test_subscription_redelivers_what_was_not_committed(self, store: EventStore) -> None:
        """At least once: events fetched but not committed come again after a restart."""
        store.append("charge-s", [ev(i=i) for i in range(4)], expected_version=0)
        self.publish(store)
        first = store.subscription("ledger")
        assert len(first.fetch(limit=2)) == 2
        first.commit()
        assert [e.data["i"] for e in first.fetch(limit=2)] == [2, 3]
        # crash here: no commit
        restarted = store.subscription("ledger")
        assert [e.data["i"] for e in restarted.fetch()] == [2, 3]
        restarted.rewind()
        assert [e.data["i"] for e in restarted.fetch()] == [2, 3]

    def test_subscribers_are_independent(self, store: EventStore) -> None:
        """Each named subscriber keeps its own checkpoint."""
        store.append("charge-s", [ev(i=i) for i in range(2)], expected_version=0)
        self.publish(store)
        a = store.subscription("a")
        a.fetch()
        a.commit()
        assert len(store.subscription("b").fetch()) == 2
        assert store.subscription("a").fetch() == []


class TestMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> EventStore:
        return MemoryEventStore(MemoryBackend())


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        db = SqlDatabase(sqlite_url(tmp_path))
        db.init_schema()
        yield SqlEventStore(db)
        db.dispose()


@pytest.mark.postgres
class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, fresh_postgres_url: Callable[[], str]) -> Iterator[EventStore]:
        db = SqlDatabase(fresh_postgres_url())
        db.init_schema()
        yield SqlEventStore(db)
        db.dispose()


@pytest.mark.aws
class TestKinesisEventStore(EventStoreContract):
    """The record is SQLite; subscriptions read the Kinesis stream on moto."""

    @pytest.fixture
    def store(self, tmp_path: Path, aws: object) -> Iterator[EventStore]:
        db = SqlDatabase(sqlite_url(tmp_path))
        db.init_schema()
        yield KinesisEventStore.from_url("kinesis://fincore-events?create=1", SqlEventStore(db))
        db.dispose()

    def publish(self, store: EventStore) -> None:
        assert isinstance(store, KinesisEventStore)
        store.relay().run_once()

    def test_relay_duplicates_are_never_delivered(self, store: EventStore) -> None:
        """A relay that publishes the same events twice (crash before its checkpoint) adds
        nothing a subscriber can see."""
        assert isinstance(store, KinesisEventStore)
        store.append("charge-d", [ev(i=i) for i in range(3)], expected_version=0)
        relay = store.relay()
        assert relay.run_once() == 3
        store.record.save_checkpoint(relay._checkpoint, 0)  # forget: as if it crashed
        assert store.relay().run_once() == 3
        sub = store.subscription("dedup")
        assert [e.data["i"] for e in sub.fetch()] == [0, 1, 2]
        assert sub.fetch() == []

    def test_many_partitions_keep_each_stream_in_order(self, tmp_path: Path, aws: object) -> None:
        """With several buckets on several shards, every stream arrives complete and in order."""
        db = SqlDatabase(f"sqlite:///{tmp_path / 'multi.db'}")
        db.init_schema()
        store = KinesisEventStore.from_url(
            "kinesis://fincore-multi?create=1&shards=2&partitions=4", SqlEventStore(db)
        )
        for round_ in range(5):
            for stream in range(6):
                store.append(f"charge-{stream}", [ev(round=round_)], expected_version=round_)
            store.relay().run_once()
        sub = store.subscription("multi")
        got = []
        while batch := sub.fetch(limit=7):
            got.extend(batch)
        assert sorted(e.position for e in got) == list(range(1, 31))
        for stream in range(6):
            versions = [e.version for e in got if e.stream == f"charge-{stream}"]
            assert versions == [1, 2, 3, 4, 5]
        db.dispose()
