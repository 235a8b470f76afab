"""Non-CDE platform adapters, SQL: the tables and the database handle (SQLite or PostgreSQL
through SQLAlchemy 2 Core).

Schema management is an idempotent `create_all` under a lock plus a version stamp
(`platform_schema`): it works on a fresh SQLite file and a fresh PostgreSQL database, is safe
when several processes start at once, and refuses a database stamped by a newer release.
Keys are monotonic integers (`position`, `seq`): appends touch the right edge of the B-tree
only (performance-limits.md section 2: 209k vs 26k rows/s against random keys).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from fincore.sqlite import use_wal
from noncde.platform.domain import BackendUnavailable, InvalidArgument, SchemaTooNew

SCHEMA_VERSION = 1
# Any constant: the PostgreSQL advisory lock that serializes concurrent schema creation.
_SCHEMA_LOCK_KEY = 0x46494E434F5245

# SQLite makes only `INTEGER PRIMARY KEY` the rowid alias (monotonic, no extra index).
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

platform_schema = Table(
    "platform_schema",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("position", BIG_ID, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False),
    Column("stream", String(200), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("type", String(100), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("merchant_id", String(64)),
    Column("correlation_id", String(64)),
    Column("causation_id", String(64)),
    Column("data", Text, nullable=False),
    UniqueConstraint("stream", "version", name="uq_events_stream_version"),
    UniqueConstraint("id", name="uq_events_id"),
    Index("ix_events_merchant_position", "merchant_id", "position"),
)

# One row (id 1): the last assigned global position. Updating it in the appending transaction
# serializes appenders on PostgreSQL until commit, so positions become visible in order and a
# reader never skips a position that commits later (the eventsourcing library's LOCK TABLE,
# narrowed to one row).
event_position = Table(
    "event_position",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)

subscription_checkpoints = Table(
    "subscription_checkpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("state", Text),
)

jobs = Table(
    "jobs",
    metadata,
    Column("seq", BIG_ID, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False),
    Column("type", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(8), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", BigInteger, nullable=False),
    Column("enqueued_at", BigInteger, nullable=False),
    Column("lease_token", String(32)),
    Column("leased_by", String(64)),
    Column("last_error", Text),
    Column("dead_at", BigInteger),
    UniqueConstraint("id", name="uq_jobs_id"),
    Index(
        "ix_jobs_ready",
        "available_at",
        "seq",
        postgresql_where=text("state = 'ready'"),
        sqlite_where=text("state = 'ready'"),
    ),
    Index(
        "ix_jobs_dead",
        "dead_at",
        postgresql_where=text("state = 'dead'"),
        sqlite_where=text("state = 'dead'"),
    ),
)

job_dedup = Table(
    "job_dedup",
    metadata,
    Column("dedup_id", String(128), primary_key=True),
    Column("job_id", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_job_dedup_expires", "expires_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BIG_ID, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("available_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("message_id", name="uq_outbox_message_id"),
    Index("ix_outbox_due", "available_at", "seq"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(128), nullable=False),
    Column("token", String(32)),
    Column("locked_until", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("response", Text),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_idempotency_expires", "expires_at"),
)

rule_sets = Table(
    "rule_sets",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("rules", Text, nullable=False),
    Column("published_at", BigInteger, nullable=False),
)


class SqlDatabase:
    """One SQLite file or PostgreSQL database: engine, write/read transactions, schema.

    SQLite runs in WAL mode with `synchronous=NORMAL` by default: a commit survives a crash of
    the process (the case the tests prove) but the last commits can be lost on power loss;
    `synchronous="FULL"` fsyncs every commit at ~1/2.7 of the speed (performance-limits.md
    section 2). Writes start with BEGIN IMMEDIATE so two writers never deadlock upgrading a
    read lock; `busy_timeout` makes writers queue instead of failing.
    """

    def __init__(
        self,
        url: str,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 30_000,
        pool_size: int = 5,
    ) -> None:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if synchronous.upper() not in {"NORMAL", "FULL"}:
            raise InvalidArgument("SQLite synchronous must be NORMAL or FULL")
        self.dialect = backend
        if backend == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise InvalidArgument("SQLite needs a file path (use memory:// for in-memory)")
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
                pool_size=pool_size,
                max_overflow=10,
            )
            _sqlite_setup(self.engine, synchronous.upper(), busy_timeout_ms)
        elif backend == "postgresql":
            self.engine = create_engine(
                parsed.set(drivername="postgresql+psycopg"),
                pool_size=pool_size,
                max_overflow=10,
                connect_args={"connect_timeout": 5, "application_name": "fincore-platform"},
            )
        else:
            raise InvalidArgument(f"unsupported SQL backend {backend!r}")
        self.url = parsed.render_as_string(hide_password=True)
        self._statements: dict[str, Any] = {}
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._writer = threading.Lock() if backend == "sqlite" else None

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def prepared(self, key: str, build: Callable[[SqlDatabase], Any]) -> Any:
        """A statement built once per database (with bind parameters, no literal values).

        Building SQLAlchemy statements per call costs more than running them on SQLite
        (cache-key generation of literal values), so the hot paths build theirs once.
        """
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = build(self)
        return statement

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT (it has `on_conflict_do_nothing` / `on_conflict_do_update`)."""
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        conn = self.connect()
        try:
            with translate_errors(self.dialect):
                yield conn
                conn.commit()
        finally:
            self.close(conn)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot (a deferred transaction on SQLite: never blocks writers)."""
        with translate_errors(self.dialect), self.engine.connect() as conn:
            yield conn.execution_options(sqlite_begin="DEFERRED")

    def connect(self) -> Connection:
        """A connection in a new write transaction (the caller commits, then calls `close`).

        SQLite has one writer at a time. Writers of this process first queue on a lock, so a
        waiting thread resumes as soon as the writer before it finishes; SQLite's own busy
        handler (for writers in other processes) sleeps in steps of up to 100 ms, which under
        in-process contention turns into p99 latencies of hundreds of milliseconds.
        """
        if self._writer is not None and not self._writer.acquire(timeout=self._busy_timeout_s):
            raise BackendUnavailable("sqlite database busy (another writer held it too long)")
        try:
            with translate_errors(self.dialect):
                conn = self.engine.connect()
                try:
                    conn.begin()
                except BaseException:
                    conn.close()
                    raise
                return conn
        except BaseException:
            if self._writer is not None:
                self._writer.release()
            raise

    def close(self, conn: Connection) -> None:
        """End a connection from `connect` (rolling back anything uncommitted)."""
        try:
            conn.close()
        finally:
            if self._writer is not None:
                self._writer.release()

    @contextmanager
    def creating_schema(
        self,
        metadata: MetaData,
        lock_key: int,
        *,
        stamp: Table | None = None,
        version: int = SCHEMA_VERSION,
        what: str = "the database",
    ) -> Iterator[Connection]:
        """One write transaction that creates `metadata`'s missing tables (idempotent, and
        serialized across starting processes on PostgreSQL by the advisory lock `lock_key`)
        and, with `stamp`, stamps its row with `version`, refusing a database stamped by a
        newer release (`SchemaTooNew`, naming `what`). The block adds its own rows."""
        with self.write() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
            metadata.create_all(conn, checkfirst=True)
            if stamp is not None:
                stamped = conn.execute(
                    select(stamp.c.version).where(stamp.c.id == 1)
                ).scalar_one_or_none()
                if stamped is not None and stamped > version:
                    raise SchemaTooNew(
                        f"{what} has schema version {stamped}; this release knows up to {version}"
                    )
                conn.execute(
                    self.insert(stamp)
                    .values(id=1, version=version)
                    .on_conflict_do_nothing(index_elements=["id"])
                )
            yield conn

    def init_schema(self) -> None:
        """Create missing tables and the counter row; idempotent and safe to race."""
        with self.creating_schema(
            metadata, _SCHEMA_LOCK_KEY, stamp=platform_schema, what="the platform database"
        ) as conn:
            conn.execute(
                self.insert(event_position)
                .values(id=1, value=0)
                .on_conflict_do_nothing(index_elements=["id"])
            )

    def ping(self) -> bool:
        try:
            with self.read() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except BackendUnavailable:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_setup(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit BEGIN is
        # DEFERRED and cannot be made IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        use_wal(cursor, busy_timeout_ms=busy_timeout_ms)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")


@contextmanager
def translate_errors(dialect: str) -> Iterator[None]:
    """Connection-level failures become `BackendUnavailable` (no URL or password in the text)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise BackendUnavailable(
            f"{dialect} database unavailable ({type(exc.orig).__name__})"
        ) from exc


def constraint_of(exc: DBAPIError) -> str:
    """The violated constraint's name (PostgreSQL) or the failing columns (SQLite)."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return str(name) if name else str(orig)
