"""cde.vault (CDE): the vault store on SQLAlchemy 2 (SQLite default, PostgreSQL in production).

Writes go through one writer thread per process that commits them in groups (group commit):
a tokenize request waits for its own commit without holding the event loop, and under load
one transaction carries many inserts (fewer fsyncs, no WAL checkpoint stalls on the loop; see
docs/vault.md "Performance"). Reads run on a small thread pool. The schema is created and
upgraded by Alembic (`cde/vault/adapters/migrations`).

SQLite runs in WAL mode with synchronous=NORMAL (a commit survives a process crash; a power
loss may lose the last few commits: docs/vault.md "Durability"), foreign keys on, and
`secure_delete` so deleted records and destroyed keys are zeroed in the file, not just
unlinked (PCI DSS 3.2.1, 3.7.x).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from cde.vault.domain import (
    Attestation,
    CardRecord,
    DataKey,
    Kek,
    KekState,
    KeyPurpose,
    StoredRecord,
)
from fincore.sqlite import use_wal

T = TypeVar("T")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them without an offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

keks_table = Table(
    "vault_keks",
    metadata,
    Column("kek_id", String(256), primary_key=True),
    Column("provider", String(40), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
)

data_keys_table = Table(
    "vault_data_keys",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("merchant_id", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("kek_id", String(256), nullable=False),
    Column("wrapped", LargeBinary(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("destroyed_at", UtcDateTime(), nullable=True),
    Index("ix_vault_data_keys_merchant", "merchant_id", "purpose"),
    Index("ix_vault_data_keys_kek", "kek_id"),
    Index(
        "ux_vault_data_keys_fingerprint",
        "merchant_id",
        unique=True,
        sqlite_where=text("purpose = 'fingerprint' AND destroyed_at IS NULL"),
        postgresql_where=text("purpose = 'fingerprint' AND destroyed_at IS NULL"),
    ),
)

records_table = Table(
    "vault_records",
    metadata,
    Column("token", String(40), primary_key=True),
    Column("merchant_id", String(64), nullable=False),
    Column("data_key_id", String(40), ForeignKey("vault_data_keys.key_id"), nullable=False),
    Column("ciphertext", LargeBinary(), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=False),
    Index("ix_vault_records_merchant", "merchant_id"),
    Index("ix_vault_records_data_key", "data_key_id"),
    Index("ix_vault_records_used_at", "used_at"),
)

attestations_table = Table(
    "vault_attestations",
    metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("expires_on", Date(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("recorded_by", String(120), nullable=False),
)


def _record_row(record: CardRecord) -> dict[str, Any]:
    return {
        "token": record.token,
        "merchant_id": record.merchant_id,
        "data_key_id": record.data_key_id,
        "ciphertext": record.ciphertext,
        "fingerprint": record.fingerprint,
        "created_at": record.created_at,
        "used_at": record.last_used_at or record.created_at,
    }


def _record(row: Any) -> CardRecord:
    used = row.used_at if row.used_at != row.created_at else None
    return CardRecord(
        token=row.token,
        merchant_id=row.merchant_id,
        data_key_id=row.data_key_id,
        ciphertext=bytes(row.ciphertext),
        fingerprint=row.fingerprint,
        created_at=row.created_at,
        last_used_at=used,
    )


def _data_key(row: Any) -> DataKey:
    return DataKey(
        key_id=row.key_id,
        merchant_id=row.merchant_id,
        purpose=KeyPurpose(row.purpose),
        kek_id=row.kek_id,
        wrapped=bytes(row.wrapped) if row.wrapped is not None else None,
        created_at=row.created_at,
        destroyed_at=row.destroyed_at,
    )


def _kek(row: Any) -> Kek:
    return Kek(
        kek_id=row.kek_id,
        provider=row.provider,
        state=KekState(row.state),
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


def _attestation(row: Any) -> Attestation:
    expires = row.expires_on
    if isinstance(expires, datetime):
        expires = expires.date()
    assert isinstance(expires, date)
    return Attestation(row.merchant_id, expires, row.recorded_at, row.recorded_by)


# ---------------------------------------------------------------- group-commit writer


@dataclass(slots=True)
class _Job:
    work: Callable[[Connection], Any] | None
    record: dict[str, Any] | None
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in outcomes:
        if future.done():
            continue  # the caller went away; its write still happened (or failed) as usual
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


RecordInserter = Callable[[Connection, list[dict[str, Any]]], None]


def _record_inserter(engine: Engine) -> RecordInserter:
    """How a batch of card-record rows is inserted on this engine.

    On SQLite, one prepared statement through the driver's `executemany`, each value passed
    through its column type's own bind processor (the same stored form as a Core insert):
    SQLAlchemy's per-execution work for a Core insert cost about a quarter of the writer
    thread's time per record. Elsewhere, the Core insert.
    """
    if engine.dialect.name != "sqlite":
        statement = insert(records_table)

        def core(conn: Connection, rows: list[dict[str, Any]]) -> None:
            conn.execute(statement, rows)

        return core
    dialect = engine.dialect
    compiled = insert(records_table).compile(dialect=dialect)  # qmark: positional parameters
    sql = str(compiled)
    if compiled.positiontup is None:  # pragma: no cover - SQLite's paramstyle is positional
        raise RuntimeError("expected positional parameters from the SQLite dialect")
    columns = [
        (name, records_table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        for name in compiled.positiontup
    ]

    def driver(conn: Connection, rows: list[dict[str, Any]]) -> None:
        conn.exec_driver_sql(
            sql,
            [
                tuple(row[name] if proc is None else proc(row[name]) for name, proc in columns)
                for row in rows
            ],
        )

    return driver


class _GroupCommitWriter:
    """One thread that runs every write of this process, many per transaction."""

    def __init__(self, engine: Engine, max_batch: int) -> None:
        self._engine = engine
        self._insert_records = _record_inserter(engine)
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="vault-sql-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.jobs = 0

    def submit_record(self, row: dict[str, Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Job(None, row, future, loop))
        return future

    def submit(self, work: Callable[[Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(work, None, future, loop))
        return future

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            stop = False
            while len(jobs) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
            self._commit(jobs)
            if stop:
                return

    def _execute(self, conn: Connection, jobs: Sequence[_Job]) -> list[Any]:
        results: list[Any] = []
        pending: list[dict[str, Any]] = []
        for job in jobs:
            if job.record is not None:
                pending.append(job.record)
                results.append(None)
                continue
            if pending:
                self._insert_records(conn, pending)
                pending = []
            assert job.work is not None
            results.append(job.work(conn))
        if pending:
            self._insert_records(conn, pending)
        return results

    def _commit(self, jobs: list[_Job]) -> None:
        self.batches += 1
        self.jobs += len(jobs)
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            with self._engine.begin() as conn:
                results = self._execute(conn, jobs)
            outcomes = [(job, result, None) for job, result in zip(jobs, results, strict=True)]
        except Exception:  # noqa: BLE001 - isolate the failing job: retry one by one
            outcomes = []
            for job in jobs:
                try:
                    with self._engine.begin() as conn:
                        (result,) = self._execute(conn, [job])
                    outcomes.append((job, result, None))
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    outcomes.append((job, None, _translate(exc)))
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for job, value, error in outcomes:
            by_loop.setdefault(job.loop, []).append((job.future, value, error))
        for loop, items in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, items)


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, IntegrityError):
        return ValueError("constraint violated (duplicate or unknown key)")
    return exc


# ---------------------------------------------------------------- the store


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver; SQLAlchemy's "begin" event below issues BEGIN IMMEDIATE so a
    # writer takes the lock up front (no deadlocking read-to-write upgrades between processes).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    use_wal(cursor, busy_timeout_ms=10_000)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers lock up front (BEGIN IMMEDIATE); readers start a plain deferred transaction,
    # which in WAL mode never waits for the writer.
    if conn.get_execution_options().get(_WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


_WRITE_OPTION = "fincore_vault_write"


def writer_engine(engine: Engine) -> Engine:
    """`engine` for write transactions (SQLite: BEGIN IMMEDIATE), sharing its pool."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def create_vault_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:///path or postgresql+psycopg://…), configured for the vault."""
    from sqlalchemy import create_engine

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            path = Path(database)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Created 0600 before SQLite opens it; SQLite gives its -wal/-shm files the same mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, pool_size=8
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_size=8, max_overflow=4, pool_pre_ping=True)
    raise ValueError("the vault store supports sqlite and postgresql")


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the vault schema to the newest Alembic revision (or `revision`)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are start-up noise
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with writer_engine(engine).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


class SqlVaultStore:
    """`VaultStore` on SQLAlchemy Core; one group-commit writer thread, pooled readers."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        readers: int = 2,
        inline_reads: bool | None = None,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite reads take tens of microseconds and never wait for the writer (WAL): run them
        # on the caller's thread. PostgreSQL reads are network round trips: off the loop.
        self._inline_reads = self.dialect == "sqlite" if inline_reads is None else inline_reads
        self._writer = _GroupCommitWriter(writer_engine(engine), max_batch)
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="vault-sql-r")
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SqlVaultStore:
        return cls(create_vault_engine(url), **kwargs)

    @property
    def writer_stats(self) -> tuple[int, int]:
        """(transactions, writes) so far: writes per transaction shows the grouping."""
        return self._writer.batches, self._writer.jobs

    async def _read(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.engine.connect() as conn:
                result = work(conn)
                conn.rollback()
                return result

        if self._inline_reads:
            return run()
        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def _write(self, work: Callable[[Connection], T]) -> T:
        return await self._writer.submit(work)

    # ------------------------------------------------------------ records

    async def add_record(self, record: CardRecord) -> None:
        await self._writer.submit_record(_record_row(record))

    async def get_record(self, token: str) -> StoredRecord | None:
        def work(conn: Connection) -> StoredRecord | None:
            row = conn.execute(
                select(records_table, data_keys_table.c.destroyed_at, data_keys_table.c.wrapped)
                .join(data_keys_table, data_keys_table.c.key_id == records_table.c.data_key_id)
                .where(records_table.c.token == token)
            ).first()
            if row is None:
                return None
            destroyed = row.destroyed_at is not None or row.wrapped is None
            return StoredRecord(_record(row), destroyed)

        return await self._read(work)

    async def touch_record(self, token: str, at: datetime) -> None:
        def work(conn: Connection) -> None:
            conn.execute(
                update(records_table).where(records_table.c.token == token).values(used_at=at)
            )

        await self._write(work)

    async def delete_record(self, token: str) -> bool:
        def work(conn: Connection) -> bool:
            result = conn.execute(delete(records_table).where(records_table.c.token == token))
            return bool(result.rowcount)

        return await self._write(work)

    # ------------------------------------------------------------ data keys

    async def add_data_key(self, key: DataKey) -> DataKey:
        row = {
            "key_id": key.key_id,
            "merchant_id": key.merchant_id,
            "purpose": str(key.purpose),
            "kek_id": key.kek_id,
            "wrapped": key.wrapped,
            "created_at": key.created_at,
            "destroyed_at": key.destroyed_at,
        }

        def work(conn: Connection) -> DataKey:
            savepoint = conn.begin_nested()
            try:
                conn.execute(insert(data_keys_table), row)
                savepoint.commit()
                return key
            except IntegrityError:
                savepoint.rollback()
                if key.purpose is not KeyPurpose.FINGERPRINT:
                    raise
            winner = conn.execute(
                select(data_keys_table).where(
                    data_keys_table.c.merchant_id == key.merchant_id,
                    data_keys_table.c.purpose == str(KeyPurpose.FINGERPRINT),
                    data_keys_table.c.destroyed_at.is_(None),
                )
            ).first()
            if winner is None:
                raise ValueError("duplicate data key")
            return _data_key(winner)

        return await self._write(work)

    async def get_data_key(self, key_id: str) -> DataKey | None:
        def work(conn: Connection) -> DataKey | None:
            row = conn.execute(
                select(data_keys_table).where(data_keys_table.c.key_id == key_id)
            ).first()
            return _data_key(row) if row is not None else None

        return await self._read(work)

    async def fingerprint_key(self, merchant_id: str) -> DataKey | None:
        def work(conn: Connection) -> DataKey | None:
            row = conn.execute(
                select(data_keys_table).where(
                    data_keys_table.c.merchant_id == merchant_id,
                    data_keys_table.c.purpose == str(KeyPurpose.FINGERPRINT),
                    data_keys_table.c.destroyed_at.is_(None),
                )
            ).first()
            return _data_key(row) if row is not None else None

        return await self._read(work)

    # ------------------------------------------------------------ KEK registry

    async def keks(self) -> list[Kek]:
        def work(conn: Connection) -> list[Kek]:
            rows = conn.execute(
                select(keks_table).order_by(keks_table.c.created_at, keks_table.c.kek_id)
            )
            return [_kek(row) for row in rows]

        return await self._read(work)

    async def put_kek(self, kek: Kek) -> None:
        values = {
            "provider": kek.provider,
            "state": str(kek.state),
            "created_at": kek.created_at,
            "retired_at": kek.retired_at,
        }

        def work(conn: Connection) -> None:
            result = conn.execute(
                update(keks_table).where(keks_table.c.kek_id == kek.kek_id).values(**values)
            )
            if not result.rowcount:
                conn.execute(insert(keks_table), {"kek_id": kek.kek_id, **values})

        await self._write(work)

    async def set_primary_kek(self, kek_id: str, at: datetime) -> None:
        def work(conn: Connection) -> None:
            found = conn.execute(
                select(keks_table.c.kek_id).where(keks_table.c.kek_id == kek_id)
            ).first()
            if found is None:
                raise ValueError("unknown KEK")
            conn.execute(
                update(keks_table)
                .where(keks_table.c.state == str(KekState.PRIMARY), keks_table.c.kek_id != kek_id)
                .values(state=str(KekState.ACTIVE))
            )
            conn.execute(
                update(keks_table)
                .where(keks_table.c.kek_id == kek_id)
                .values(state=str(KekState.PRIMARY))
            )

        await self._write(work)

    async def data_keys_wrapped_by_other(self, kek_id: str, limit: int) -> list[DataKey]:
        def work(conn: Connection) -> list[DataKey]:
            rows = conn.execute(
                select(data_keys_table)
                .where(
                    data_keys_table.c.kek_id != kek_id,
                    data_keys_table.c.destroyed_at.is_(None),
                    data_keys_table.c.wrapped.is_not(None),
                )
                .order_by(data_keys_table.c.key_id)
                .limit(limit)
            )
            return [_data_key(row) for row in rows]

        return await self._read(work)

    async def rewrap_data_key(
        self, key_id: str, expected_kek_id: str, new_kek_id: str, wrapped: bytes
    ) -> bool:
        def work(conn: Connection) -> bool:
            result = conn.execute(
                update(data_keys_table)
                .where(
                    data_keys_table.c.key_id == key_id,
                    data_keys_table.c.kek_id == expected_kek_id,
                    data_keys_table.c.destroyed_at.is_(None),
                )
                .values(kek_id=new_kek_id, wrapped=wrapped)
            )
            return bool(result.rowcount)

        return await self._write(work)

    async def count_data_keys_by_kek(self) -> dict[str, int]:
        def work(conn: Connection) -> dict[str, int]:
            rows = conn.execute(
                select(data_keys_table.c.kek_id, func.count())
                .where(data_keys_table.c.destroyed_at.is_(None))
                .group_by(data_keys_table.c.kek_id)
            )
            return {row[0]: int(row[1]) for row in rows}

        return await self._read(work)

    # ------------------------------------------------------------ re-keying and retention

    async def records_keyed_before(self, cutoff: datetime, limit: int) -> list[CardRecord]:
        def work(conn: Connection) -> list[CardRecord]:
            rows = conn.execute(
                select(records_table)
                .join(data_keys_table, data_keys_table.c.key_id == records_table.c.data_key_id)
                .where(
                    data_keys_table.c.created_at < cutoff,
                    data_keys_table.c.destroyed_at.is_(None),
                )
                .order_by(records_table.c.token)
                .limit(limit)
            )
            return [_record(row) for row in rows]

        return await self._read(work)

    async def replace_record_key(
        self, token: str, expected_key_id: str, new_key_id: str, ciphertext: bytes
    ) -> bool:
        def work(conn: Connection) -> bool:
            result = conn.execute(
                update(records_table)
                .where(
                    records_table.c.token == token,
                    records_table.c.data_key_id == expected_key_id,
                )
                .values(data_key_id=new_key_id, ciphertext=ciphertext)
            )
            return bool(result.rowcount)

        return await self._write(work)

    async def purge_records(self, unused_since: datetime, limit: int) -> list[str]:
        def work(conn: Connection) -> list[str]:
            tokens = [
                row[0]
                for row in conn.execute(
                    select(records_table.c.token)
                    .where(records_table.c.used_at < unused_since)
                    .order_by(records_table.c.used_at)
                    .limit(limit)
                )
            ]
            if tokens:
                conn.execute(delete(records_table).where(records_table.c.token.in_(tokens)))
            return tokens

        return await self._write(work)

    async def purge_data_keys(
        self, created_before: datetime, purposes: Sequence[KeyPurpose]
    ) -> int:
        names = [str(p) for p in purposes]

        def work(conn: Connection) -> int:
            in_use = exists().where(records_table.c.data_key_id == data_keys_table.c.key_id)
            result = conn.execute(
                delete(data_keys_table).where(
                    and_(
                        data_keys_table.c.purpose.in_(names),
                        data_keys_table.c.created_at < created_before,
                        ~in_use,
                    )
                )
            )
            return int(result.rowcount or 0)

        return await self._write(work)

    async def destroy_merchant_keys(self, merchant_id: str, at: datetime) -> list[str]:
        def work(conn: Connection) -> list[str]:
            ids = [
                row[0]
                for row in conn.execute(
                    select(data_keys_table.c.key_id).where(
                        data_keys_table.c.merchant_id == merchant_id,
                        data_keys_table.c.destroyed_at.is_(None),
                    )
                )
            ]
            if ids:
                conn.execute(
                    update(data_keys_table)
                    .where(data_keys_table.c.key_id.in_(ids))
                    .values(wrapped=None, destroyed_at=at)
                )
            return ids

        return await self._write(work)

    async def delete_merchant_records(self, merchant_id: str, limit: int) -> int:
        def work(conn: Connection) -> int:
            tokens = [
                row[0]
                for row in conn.execute(
                    select(records_table.c.token)
                    .where(records_table.c.merchant_id == merchant_id)
                    .limit(limit)
                )
            ]
            if tokens:
                conn.execute(delete(records_table).where(records_table.c.token.in_(tokens)))
            return len(tokens)

        return await self._write(work)

    # ------------------------------------------------------------ attestation register

    async def get_attestation(self, merchant_id: str) -> Attestation | None:
        def work(conn: Connection) -> Attestation | None:
            row = conn.execute(
                select(attestations_table).where(attestations_table.c.merchant_id == merchant_id)
            ).first()
            return _attestation(row) if row is not None else None

        return await self._read(work)

    async def put_attestation(self, attestation: Attestation) -> None:
        values = {
            "expires_on": attestation.expires_on,
            "recorded_at": attestation.recorded_at,
            "recorded_by": attestation.recorded_by,
        }

        def work(conn: Connection) -> None:
            result = conn.execute(
                update(attestations_table)
                .where(attestations_table.c.merchant_id == attestation.merchant_id)
                .values(**values)
            )
            if not result.rowcount:
                conn.execute(
                    insert(attestations_table),
                    {"merchant_id": attestation.merchant_id, **values},
                )

        await self._write(work)

    async def delete_attestation(self, merchant_id: str) -> bool:
        def work(conn: Connection) -> bool:
            result = conn.execute(
                delete(attestations_table).where(attestations_table.c.merchant_id == merchant_id)
            )
            return bool(result.rowcount)

        return await self._write(work)

    async def attestations(self) -> list[Attestation]:
        def work(conn: Connection) -> list[Attestation]:
            rows = conn.execute(
                select(attestations_table).order_by(attestations_table.c.merchant_id)
            )
            return [_attestation(row) for row in rows]

        return await self._read(work)

    # ------------------------------------------------------------ housekeeping

    async def counts(self) -> dict[str, int]:
        def work(conn: Connection) -> dict[str, int]:
            def count(query: Any) -> int:
                return int(conn.execute(query).scalar_one())

            return {
                "records": count(select(func.count()).select_from(records_table)),
                "data_keys": count(
                    select(func.count())
                    .select_from(data_keys_table)
                    .where(data_keys_table.c.destroyed_at.is_(None))
                ),
                "destroyed_keys": count(
                    select(func.count())
                    .select_from(data_keys_table)
                    .where(data_keys_table.c.destroyed_at.is_not(None))
                ),
                "attestations": count(select(func.count()).select_from(attestations_table)),
            }

        return await self._read(work)

    async def ping(self) -> bool:
        def work(conn: Connection) -> bool:
            return bool(conn.execute(select(1)).scalar_one() == 1)

        try:
            return await self._read(work)
        except Exception:  # noqa: BLE001 - readiness: any failure means "not ready"
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._writer.stop)
        self._readers.shutdown(wait=True)
        self.engine.dispose()
