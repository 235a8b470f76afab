"""RulesStore contract: every adapter (memory, SQLite, PostgreSQL, file, DynamoDB) keeps it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from noncde.platform.adapters.dynamodb import DynamoRulesStore
from noncde.platform.adapters.files import FileRulesStore
from noncde.platform.adapters.memory import MemoryBackend, MemoryRulesStore
from noncde.platform.adapters.sql import SqlDatabase, SqlRulesStore
from noncde.platform.domain import CardDataRefused, ConcurrencyConflict, InvalidArgument
from noncde.platform.ports import RulesStore
from noncde.platform.service import RulesCache
from tests.contract.platform.support import sqlite_url

BLOCK_HIGH = {"id": "block-high", "when": {"amount_gt": 500_000}, "action": "block"}
REVIEW_NEW = {"id": "review-new-country", "when": {"bin_country_not": "DE"}, "action": "review"}


class RulesStoreContract:
    """The guarantees of `noncde.platform.ports.RulesStore`."""

    # Why a test peer cannot run the concurrent race, or None.
    race_unsupported: str | None = None

    @pytest.fixture
    def other(self, store: RulesStore) -> RulesStore:
        """A second view of the same rules (another process)."""
        raise NotImplementedError

    def test_nothing_published_is_version_zero(self, store: RulesStore) -> None:
        """Before any publish the active set is empty, version 0."""
        assert store.active_version() == 0
        active = store.active()
        assert (active.version, active.rules, active.published_at) == (0, (), None)
        assert store.get(1) is None

    def test_publish_makes_a_new_active_version(self, store: RulesStore, other: RulesStore) -> None:
        """Each publish adds version + 1, seen by every reader; old versions stay readable."""
        first = store.publish([BLOCK_HIGH])
        second = store.publish([BLOCK_HIGH, REVIEW_NEW])
        assert (first.version, second.version) == (1, 2)
        assert other.active_version() == 2
        assert other.active().rules == (BLOCK_HIGH, REVIEW_NEW)
        old = other.get(1)
        assert old is not None and old.rules == (BLOCK_HIGH,)
        assert old.published_at is not None and old.published_at.utcoffset() is not None

    def test_expected_version_guards_against_lost_updates(
        self, store: RulesStore, other: RulesStore
    ) -> None:
        """Publishing on top of a version someone else replaced raises ConcurrencyConflict."""
        store.publish([BLOCK_HIGH], expected_version=0)
        other.publish([REVIEW_NEW], expected_version=1)
        with pytest.raises(ConcurrencyConflict):
            store.publish([BLOCK_HIGH, REVIEW_NEW], expected_version=1)
        assert store.active().rules == (REVIEW_NEW,)

    def test_racing_publishers_have_one_winner(self, store: RulesStore, other: RulesStore) -> None:
        """Of two publishers expecting the same version, exactly one succeeds."""
        if self.race_unsupported:
            pytest.skip(self.race_unsupported)
        store.publish([BLOCK_HIGH])
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def publish(view: RulesStore, rule: dict[str, object]) -> None:
            barrier.wait()
            try:
                view.publish([rule], expected_version=1)
                outcomes.append("won")
            except ConcurrencyConflict:
                outcomes.append("conflict")

        threads = [
            threading.Thread(target=publish, args=(store, BLOCK_HIGH)),
            threading.Thread(target=publish, args=(other, REVIEW_NEW)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["conflict", "won"]
        assert store.active_version() == 2

    def test_card_data_is_refused(self, store: RulesStore) -> None:
        """A rule that names a card number is refused; nothing is published."""
        with pytest.raises(CardDataRefused):
            store.publish([{"id": "block-card", "when": {"pan": "4242424242424242"}}])
        with pytest.raises(InvalidArgument):
            store.publish("not a list")  # type: ignore[arg-type]
        assert store.active_version() == 0

    def test_hot_reload_sees_a_new_version(self, store: RulesStore, other: RulesStore) -> None:
        """A RulesCache keeps its set between checks and picks up a publish after its interval."""
        now = [0.0]
        store.publish([BLOCK_HIGH])
        cache = RulesCache(store, check_interval_s=5, clock=lambda: now[0])
        assert cache.current().version == 1
        other.publish([REVIEW_NEW])
        now[0] = 4.0
        assert cache.current().version == 1
        now[0] = 5.0
        assert cache.current().rules == (REVIEW_NEW,)


class TestMemoryRulesStore(RulesStoreContract):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()

    @pytest.fixture
    def store(self, backend: MemoryBackend) -> RulesStore:
        return MemoryRulesStore(backend)

    @pytest.fixture
    def other(self, backend: MemoryBackend) -> RulesStore:
        return MemoryRulesStore(backend)


class SqlRulesStoreContract(RulesStoreContract):
    """SQL adapters: `other` is a second engine on the same database (another process)."""

    @pytest.fixture
    def store(self, db: SqlDatabase) -> RulesStore:
        return SqlRulesStore(db)

    @pytest.fixture
    def other(self, db: SqlDatabase) -> Iterator[RulesStore]:
        second = SqlDatabase(db.engine.url.render_as_string(hide_password=False))
        yield SqlRulesStore(second)
        second.dispose()


class TestSqliteRulesStore(SqlRulesStoreContract):
    @pytest.fixture
    def db(self, tmp_path: Path) -> Iterator[SqlDatabase]:
        db = SqlDatabase(sqlite_url(tmp_path))
        db.init_schema()
        yield db
        db.dispose()


@pytest.mark.postgres
class TestPostgresRulesStore(SqlRulesStoreContract):
    @pytest.fixture
    def db(self, fresh_postgres_url: Callable[[], str]) -> Iterator[SqlDatabase]:
        db = SqlDatabase(fresh_postgres_url())
        db.init_schema()
        yield db
        db.dispose()


class TestFileRulesStore(RulesStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> RulesStore:
        return FileRulesStore(tmp_path / "rules" / "risk.json")

    @pytest.fixture
    def other(self, tmp_path: Path) -> RulesStore:
        return FileRulesStore(tmp_path / "rules" / "risk.json")

    def test_file_is_replaced_atomically(self, store: RulesStore, tmp_path: Path) -> None:
        """The active file is always a whole rule set and every version is kept beside it."""
        store.publish([BLOCK_HIGH])
        store.publish([REVIEW_NEW])
        folder = tmp_path / "rules"
        assert sorted(p.name for p in (folder / "risk.json.versions").iterdir()) == [
            "1.json",
            "2.json",
        ]
        assert not list(folder.glob(".*.tmp"))
        assert '"version":2' in (folder / "risk.json").read_text()


@pytest.mark.aws
class TestDynamoRulesStore(RulesStoreContract):
    race_unsupported = (
        "moto's TransactWriteItems is not atomic under concurrent requests: a cancelled "
        "transaction restores a table snapshot taken before the winner wrote "
        "(moto/dynamodb/models/__init__.py transact_write_items); the conditions themselves "
        "are proven by test_expected_version_guards_against_lost_updates"
    )

    @pytest.fixture
    def store(self, aws: object) -> RulesStore:
        return DynamoRulesStore.from_url("dynamodb://fincore-rules?create=1")

    @pytest.fixture
    def other(self, store: RulesStore) -> RulesStore:
        return DynamoRulesStore.from_url("dynamodb://fincore-rules")
