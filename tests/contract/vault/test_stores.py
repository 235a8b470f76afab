"""One contract for every vault store: in-memory, SQLite (file) and PostgreSQL (the local
server), plus what only the SQL stores promise: the migrated schema, group commit and a dump
that shows no card data."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cde.vault.adapters.memory import MemoryVaultStore
from cde.vault.adapters.sql import (
    SqlVaultStore,
    create_vault_engine,
    metadata,
    upgrade_schema,
)
from cde.vault.domain import (
    Attestation,
    CardRecord,
    DataKey,
    Kek,
    KekState,
    KeyPurpose,
)
from cde.vault.domain.ids import new_data_key_id, new_token
from cde.vault.ports import VaultStore

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def data_key(
    merchant: str = "mer_a",
    purpose: KeyPurpose = KeyPurpose.RECORD,
    kek: str = "kek_one",
    at: datetime = T0,
) -> DataKey:
    return DataKey(new_data_key_id(), merchant, purpose, kek, os.urandom(60), at)


def record(key: DataKey, at: datetime = T0, token: str | None = None) -> CardRecord:
    return CardRecord(
        token=token or new_token(),
        merchant_id=key.merchant_id,
        data_key_id=key.key_id,
        ciphertext=b"FCV1" + os.urandom(80),
        fingerprint=os.urandom(32).hex(),
        created_at=at,
    )


class VaultStoreContract:
    """Every store keeps these promises (cde.vault.ports.VaultStore). Not collected."""

    @pytest.fixture
    def store(self) -> Iterator[VaultStore]:
        raise NotImplementedError

    def test_records_round_trip(self, store: VaultStore) -> None:
        """A stored record reads back exactly, with its key state; unknown tokens are None."""

        async def body() -> None:
            key = await store.add_data_key(data_key())
            stored = record(key)
            await store.add_record(stored)
            got = await store.get_record(stored.token)
            assert got is not None and got.record == stored and not got.key_destroyed
            assert await store.get_record(new_token()) is None

        run(body())

    def test_duplicates_and_unknown_keys_are_refused(self, store: VaultStore) -> None:
        """A duplicate token never overwrites; a record needs an existing data key."""

        async def body() -> None:
            key = await store.add_data_key(data_key())
            first = record(key)
            await store.add_record(first)
            with pytest.raises(ValueError, match=r"duplicate|constraint"):
                await store.add_record(record(key, token=first.token))
            with pytest.raises(ValueError, match=r"unknown|constraint"):
                await store.add_record(record(data_key()))
            got = await store.get_record(first.token)
            assert got is not None and got.record.ciphertext == first.ciphertext

        run(body())

    def test_concurrent_writes_all_land(self, store: VaultStore) -> None:
        """200 concurrent inserts are all durable when they return (group commit or not)."""

        async def body() -> None:
            key = await store.add_data_key(data_key())
            records = [record(key) for _ in range(200)]
            await asyncio.gather(*(store.add_record(r) for r in records))
            assert (await store.counts())["records"] == 200
            for item in records[::37]:
                assert await store.get_record(item.token) is not None

        run(body())

    def test_touch_and_delete(self, store: VaultStore) -> None:
        """touch_record moves the retention clock; delete is physical and reports absence."""

        async def body() -> None:
            key = await store.add_data_key(data_key())
            stored = record(key)
            await store.add_record(stored)
            await store.touch_record(stored.token, T0 + timedelta(days=3))
            got = await store.get_record(stored.token)
            assert got is not None and got.record.last_used_at == T0 + timedelta(days=3)
            assert await store.delete_record(stored.token)
            assert not await store.delete_record(stored.token)
            assert await store.get_record(stored.token) is None

        run(body())

    def test_one_fingerprint_key_per_merchant(self, store: VaultStore) -> None:
        """A second fingerprint key for a merchant returns the first (the winner)."""

        async def body() -> None:
            first = await store.add_data_key(data_key(purpose=KeyPurpose.FINGERPRINT))
            second = await store.add_data_key(data_key(purpose=KeyPurpose.FINGERPRINT))
            assert second.key_id == first.key_id
            found = await store.fingerprint_key("mer_a")
            assert found is not None and found.key_id == first.key_id
            other = await store.add_data_key(data_key("mer_b", KeyPurpose.FINGERPRINT))
            assert other.key_id != first.key_id
            assert await store.fingerprint_key("mer_zz") is None

        run(body())

    def test_kek_registry(self, store: VaultStore) -> None:
        """One primary at a time; the previous primary becomes active."""

        async def body() -> None:
            await store.put_kek(Kek("kek_one", "file", KekState.PRIMARY, T0))
            await store.put_kek(Kek("kek_two", "file", KekState.ACTIVE, T0 + timedelta(1)))
            await store.set_primary_kek("kek_two", T0)
            states = {k.kek_id: k.state for k in await store.keks()}
            assert states == {"kek_one": KekState.ACTIVE, "kek_two": KekState.PRIMARY}
            with pytest.raises(ValueError, match="unknown KEK"):
                await store.set_primary_kek("kek_unknown", T0)
            await store.put_kek(Kek("kek_one", "file", KekState.RETIRED, T0, T0))
            keks = await store.keks()
            assert [k.kek_id for k in keks] == ["kek_one", "kek_two"]
            assert keks[0].retired_at == T0

        run(body())

    def test_rewrap_is_conditional(self, store: VaultStore) -> None:
        """A data key is re-wrapped only if still wrapped by the expected KEK."""

        async def body() -> None:
            keys = [await store.add_data_key(data_key()) for _ in range(3)]
            todo = await store.data_keys_wrapped_by_other("kek_two", 10)
            assert {k.key_id for k in todo} == {k.key_id for k in keys}
            assert await store.rewrap_data_key(keys[0].key_id, "kek_one", "kek_two", b"new")
            assert not await store.rewrap_data_key(keys[0].key_id, "kek_one", "kek_two", b"x")
            got = await store.get_data_key(keys[0].key_id)
            assert got is not None and (got.kek_id, got.wrapped) == ("kek_two", b"new")
            assert await store.count_data_keys_by_kek() == {"kek_one": 2, "kek_two": 1}
            assert len(await store.data_keys_wrapped_by_other("kek_two", 1)) == 1

        run(body())

    def test_rekey_work_list_and_conditional_swap(self, store: VaultStore) -> None:
        """Records under keys older than the cutoff are listed; the swap is conditional."""

        async def body() -> None:
            old = await store.add_data_key(data_key(at=T0))
            new = await store.add_data_key(data_key(at=T0 + timedelta(hours=5)))
            old_record, new_record = record(old), record(new)
            await store.add_record(old_record)
            await store.add_record(new_record)
            todo = await store.records_keyed_before(T0 + timedelta(hours=1), 10)
            assert [r.token for r in todo] == [old_record.token]
            assert await store.replace_record_key(old_record.token, old.key_id, new.key_id, b"c2")
            assert not await store.replace_record_key(
                old_record.token, old.key_id, new.key_id, b"c3"
            )
            got = await store.get_record(old_record.token)
            assert got is not None and got.record.ciphertext == b"c2"
            assert await store.records_keyed_before(T0 + timedelta(hours=1), 10) == []

        run(body())

    def test_retention_purge(self, store: VaultStore) -> None:
        """Records unused since the cutoff go; unused keys of the given purposes go; used stay."""

        async def body() -> None:
            key = await store.add_data_key(data_key(at=T0))
            spare = await store.add_data_key(data_key(at=T0))
            fp = await store.add_data_key(data_key(purpose=KeyPurpose.FINGERPRINT, at=T0))
            stale, used = record(key, T0), record(key, T0)
            await store.add_record(stale)
            await store.add_record(used)
            await store.touch_record(used.token, T0 + timedelta(days=100))
            purged = await store.purge_records(T0 + timedelta(days=50), 10)
            assert purged == [stale.token]
            removed = await store.purge_data_keys(T0 + timedelta(days=1), [KeyPurpose.RECORD])
            assert removed == 1  # `spare`; `key` still has a record; the fingerprint key stays
            assert await store.get_data_key(spare.key_id) is None
            assert await store.get_data_key(key.key_id) is not None
            assert await store.get_data_key(fp.key_id) is not None

        run(body())

    def test_crypto_shredding(self, store: VaultStore) -> None:
        """Destroying a merchant's keys erases their material and marks its records."""

        async def body() -> None:
            mine = await store.add_data_key(data_key("mer_a"))
            theirs = await store.add_data_key(data_key("mer_b"))
            a, b = record(mine), record(theirs)
            await store.add_record(a)
            await store.add_record(b)
            destroyed = await store.destroy_merchant_keys("mer_a", T0)
            assert destroyed == [mine.key_id]
            gone = await store.get_data_key(mine.key_id)
            assert gone is not None and gone.wrapped is None and gone.destroyed
            got_a, got_b = await store.get_record(a.token), await store.get_record(b.token)
            assert got_a is not None and got_a.key_destroyed
            assert got_b is not None and not got_b.key_destroyed
            assert await store.data_keys_wrapped_by_other("kek_zz", 10) == [theirs]
            assert await store.delete_merchant_records("mer_a", 10) == 1
            assert await store.get_record(a.token) is None
            counts = await store.counts()
            assert (counts["records"], counts["data_keys"], counts["destroyed_keys"]) == (1, 1, 1)

        run(body())

    def test_attestation_register(self, store: VaultStore) -> None:
        """Put replaces, get reads, delete reports, list is sorted."""

        async def body() -> None:
            await store.put_attestation(Attestation("mer_b", date(2027, 1, 1), T0, "alice"))
            await store.put_attestation(Attestation("mer_a", date(2026, 12, 1), T0, "alice"))
            await store.put_attestation(Attestation("mer_a", date(2027, 3, 31), T0, "bob"))
            got = await store.get_attestation("mer_a")
            assert got == Attestation("mer_a", date(2027, 3, 31), T0, "bob")
            assert [a.merchant_id for a in await store.attestations()] == ["mer_a", "mer_b"]
            assert await store.delete_attestation("mer_a")
            assert not await store.delete_attestation("mer_a")
            assert await store.get_attestation("mer_a") is None
            assert await store.ping()

        run(body())


class TestMemoryVaultStore(VaultStoreContract):
    @pytest.fixture
    def store(self) -> VaultStore:
        return MemoryVaultStore()


class SqlStoreExtras:
    """What only the SQL stores promise. Not collected."""

    url: str

    def test_schema_matches_the_migrations(self, store: SqlVaultStore) -> None:
        """The Alembic revisions create exactly the tables and indexes the adapter uses."""
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": "vault_alembic_version"}
            )
            diff = compare_metadata(context, metadata)
        assert diff == []

    def test_writes_are_grouped(self, store: SqlVaultStore) -> None:
        """Under concurrency one transaction carries many writes (group commit)."""

        async def body() -> None:
            key = await store.add_data_key(data_key())
            before = store.writer_stats
            await asyncio.gather(*(store.add_record(record(key)) for _ in range(300)))
            after = store.writer_stats
            transactions, writes = after[0] - before[0], after[1] - before[1]
            assert writes == 300
            assert transactions < 150

        run(body())


class TestSqliteVaultStore(VaultStoreContract, SqlStoreExtras):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlVaultStore]:
        engine = create_vault_engine(f"sqlite:///{tmp_path / 'cde' / 'vault.db'}")
        upgrade_schema(engine)
        store = SqlVaultStore(engine)
        yield store
        run(store.close())

    def test_sqlite_files_are_private_and_durable_settings_hold(
        self, store: SqlVaultStore, tmp_path: Path
    ) -> None:
        """The database file is 0600; WAL, NORMAL sync, foreign keys and secure_delete are on."""
        path = tmp_path / "cde" / "vault.db"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        with store.engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "secure_delete")
            }
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 1,
            "foreign_keys": 1,
            "secure_delete": 1,
        }

    def test_v0001_database_upgrades_in_place(self, tmp_path: Path) -> None:
        """A database made by the first revision keeps its records through the upgrade, and
        finding a merchant's records (crypto-shredding) then uses the merchant index; no
        index is keyed by the fingerprint (it only cost a random page write per insert)."""
        engine = create_vault_engine(f"sqlite:///{tmp_path / 'old.db'}")
        upgrade_schema(engine, "v0001")
        old = SqlVaultStore(engine)

        async def fill() -> list[CardRecord]:
            key = await old.add_data_key(data_key())
            records = [record(key) for _ in range(5)]
            for item in records:
                await old.add_record(item)
            return records

        records = run(fill())
        run(old.close())
        upgrade_schema(engine)
        store = SqlVaultStore(engine)
        try:
            for item in records:
                got = run(store.get_record(item.token))
                assert got is not None and got.record.ciphertext == item.ciphertext
            with engine.connect() as conn:
                plan = " ".join(
                    str(row[-1])
                    for row in conn.exec_driver_sql(
                        "EXPLAIN QUERY PLAN SELECT token FROM vault_records WHERE merchant_id = ?",
                        ("mer_a",),
                    )
                )
                indexes = {
                    row[1]: [col[2] for col in conn.exec_driver_sql(f"PRAGMA index_info({row[1]})")]
                    for row in conn.exec_driver_sql("PRAGMA index_list(vault_records)")
                }
            assert "ix_vault_records_merchant" in plan
            assert not any("fingerprint" in columns for columns in indexes.values())
            assert run(store.delete_merchant_records(records[0].merchant_id, 100)) == 5
        finally:
            run(store.close())

    def test_batched_inserts_store_what_a_core_insert_stores(
        self, store: SqlVaultStore, tmp_path: Path
    ) -> None:
        """The writer's driver-level batch insert leaves the same row, value and SQLite type
        for type, as SQLAlchemy's Core insert of the same record in another database."""
        from sqlalchemy import insert

        from cde.vault.adapters.sql import _record_row, records_table

        async def body() -> CardRecord:
            key = await store.add_data_key(data_key())
            stored = record(key, at=datetime(2026, 11, 28, 4, 5, 6, 789_012, tzinfo=UTC))
            await asyncio.gather(store.add_record(stored), store.add_record(record(key)))
            return stored

        stored = run(body())
        other = create_vault_engine(f"sqlite:///{tmp_path / 'core.db'}")
        upgrade_schema(other)
        with sqlite3.connect(tmp_path / "cde" / "vault.db") as mine:
            keys = mine.execute("SELECT * FROM vault_data_keys").fetchall()
        with other.begin() as conn:
            for key_row in keys:  # the record's data key, as stored (foreign key)
                conn.exec_driver_sql(
                    f"INSERT INTO vault_data_keys VALUES ({', '.join('?' * len(key_row))})",
                    key_row,
                )
            conn.execute(insert(records_table), [_record_row(stored)])
        query = "SELECT *, typeof(created_at), typeof(ciphertext) FROM vault_records WHERE token=?"
        with sqlite3.connect(tmp_path / "cde" / "vault.db") as mine:
            batched = mine.execute(query, (stored.token,)).fetchall()
        with sqlite3.connect(tmp_path / "core.db") as theirs:
            core = theirs.execute(query, (stored.token,)).fetchall()
        assert batched == core and len(batched) == 1
        assert run(store.get_record(stored.token)).record == stored  # type: ignore[union-attr]

    def test_deleted_ciphertext_is_zeroed_in_the_file(
        self, store: SqlVaultStore, tmp_path: Path
    ) -> None:
        """After delete and a checkpoint the ciphertext bytes are gone from the file."""

        async def body() -> bytes:
            key = await store.add_data_key(data_key())
            stored = record(key)
            await store.add_record(stored)
            await store.delete_record(stored.token)
            return stored.ciphertext

        ciphertext = run(body())
        with sqlite3.connect(tmp_path / "cde" / "vault.db") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert ciphertext not in (tmp_path / "cde" / "vault.db").read_bytes()


@pytest.mark.postgres
class TestPostgresVaultStore(VaultStoreContract, SqlStoreExtras):
    @pytest.fixture
    def store(self, fresh_postgres_url: Callable[[], str]) -> Iterator[SqlVaultStore]:
        engine = create_vault_engine(fresh_postgres_url())
        upgrade_schema(engine)
        upgrade_schema(engine)  # idempotent
        store = SqlVaultStore(engine)
        yield store
        run(store.close())
