"""audit adapter: a PostgreSQL table per log (`postgresql://...`), append-only by trigger.

`audit_record` holds each stored line as text; the searchable columns are generated from the
line itself, so they can never disagree with what the chain covers. A trigger refuses UPDATE,
DELETE and TRUNCATE (PCI DSS 10.3.2); the application role should also hold INSERT and SELECT
only. Appends of one stream are serialised across processes by a transaction-level advisory
lock, and the tail is read inside that lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

from audit.config import Durability, DurabilityPolicy
from audit.domain import AuditUnavailable, ChainTail, genesis_hash, line_digest, sha256_hex
from audit.ports import LineBuilder

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_record (
    stream      text   NOT NULL,
    seq         bigint NOT NULL,
    line        text   NOT NULL,
    hash        text   GENERATED ALWAYS AS (substr(line, 10, 43)) STORED,
    time        text   GENERATED ALWAYS AS ((line::jsonb) ->> 'time') STORED,
    event_type  text   GENERATED ALWAYS AS ((line::jsonb) ->> 'event_type') STORED,
    actor_id    text   GENERATED ALWAYS AS ((line::jsonb) -> 'actor' ->> 'id') STORED,
    outcome     text   GENERATED ALWAYS AS ((line::jsonb) ->> 'outcome') STORED,
    target      text   GENERATED ALWAYS AS ((line::jsonb) ->> 'target') STORED,
    PRIMARY KEY (stream, seq)
);
CREATE INDEX IF NOT EXISTS audit_record_time ON audit_record (time);
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    id      bigserial PRIMARY KEY,
    stream  text NOT NULL,
    line    text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_checkpoint_stream ON audit_checkpoint (stream, id);
CREATE OR REPLACE FUNCTION fincore_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- Lock the stream, then read its tail with a snapshot taken after the lock (VOLATILE: a new
-- snapshot per statement), in one round trip.
CREATE OR REPLACE FUNCTION fincore_audit_tail(p_stream text, p_lock bigint)
RETURNS TABLE (tail_seq bigint, tail_hash text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    RETURN QUERY SELECT r.seq, r.hash FROM audit_record r
        WHERE r.stream = p_stream ORDER BY r.seq DESC LIMIT 1;
END;
$$;
CREATE OR REPLACE TRIGGER audit_record_append_only
    BEFORE UPDATE OR DELETE ON audit_record
    FOR EACH ROW EXECUTE FUNCTION fincore_audit_refuse_change();
CREATE OR REPLACE TRIGGER audit_record_no_truncate
    BEFORE TRUNCATE ON audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION fincore_audit_refuse_change();
CREATE OR REPLACE TRIGGER audit_checkpoint_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION fincore_audit_refuse_change();
CREATE OR REPLACE TRIGGER audit_checkpoint_no_truncate
    BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION fincore_audit_refuse_change();
"""

_SCHEMA_LOCK = 0x61756469  # "audi": serialises schema creation between first writers


def _lock_key(stream: str) -> int:
    """A stable signed 64-bit advisory-lock key per stream."""
    return int.from_bytes(
        bytes.fromhex(sha256_hex(f"fincore-audit:{stream}".encode())[:16]), "big", signed=True
    )


def psycopg_dsn(url: str) -> str:
    """A libpq URL from a SQLAlchemy-style one (`postgresql+psycopg://` -> `postgresql://`)."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


class PostgresAuditSink:
    """One zone's log in PostgreSQL (see the module docstring)."""

    def __init__(self, url: str, zone: str, durability: DurabilityPolicy) -> None:
        self._dsn = psycopg_dsn(url)
        self._zone = zone
        self._durability = durability
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._schema_ready = False

    @property
    def zone(self) -> str:
        return self._zone

    @property
    def writer_stream(self) -> str:
        return self._zone

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
        if not self._schema_ready:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(SCHEMA)
            self._schema_ready = True
        return conn

    def _writer(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            if self._durability.mode is Durability.BATCH:
                # PostgreSQL bounds the loss itself: at most ~3 x wal_writer_delay of commits.
                self._conn.execute("SET synchronous_commit TO off")
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def append(self, build: LineBuilder) -> ChainTail:
        with self._lock:
            try:
                conn = self._writer()
                # Pipeline: BEGIN and the locked tail read go in one round trip, the INSERT
                # and COMMIT in another.
                with conn.pipeline(), conn.transaction():
                    row = conn.execute(
                        "SELECT tail_seq, tail_hash FROM fincore_audit_tail(%s, %s)",
                        (self._zone, _lock_key(self._zone)),
                    ).fetchone()
                    tail = (
                        ChainTail(int(row[0]), str(row[1]))
                        if row
                        else ChainTail(0, genesis_hash(self._zone, self._zone))
                    )
                    lines = build(tail)
                    if lines:
                        with conn.cursor() as cursor:
                            cursor.executemany(
                                "INSERT INTO audit_record (stream, seq, line) VALUES (%s, %s, %s)",
                                [
                                    (
                                        self._zone,
                                        tail.seq + i + 1,
                                        line.rstrip(b"\n").decode("utf-8"),
                                    )
                                    for i, line in enumerate(lines)
                                ],
                            )
                        tail = ChainTail(tail.seq + len(lines), line_digest(lines[-1]))
                return tail
            except psycopg.Error as exc:
                self._drop()
                raise AuditUnavailable(
                    f"audit PostgreSQL sink unavailable: {type(exc).__name__}"
                ) from exc

    def sync(self) -> None:
        # Commits are the durability unit: `always` commits synchronously; `batch` leaves the
        # bound to PostgreSQL's WAL writer.
        return None

    def put_checkpoint(self, line: bytes) -> None:
        with self._lock:
            try:
                conn = self._writer()
                conn.execute(
                    "INSERT INTO audit_checkpoint (stream, line) VALUES (%s, %s)",
                    (self._zone, line.rstrip(b"\n").decode("utf-8")),
                )
            except psycopg.Error as exc:
                self._drop()
                raise AuditUnavailable(
                    f"audit PostgreSQL sink unavailable: {type(exc).__name__}"
                ) from exc

    def streams(self) -> list[str]:
        try:
            with self._connect() as conn:
                row = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM audit_record WHERE stream = %s) "
                    "OR EXISTS (SELECT 1 FROM audit_checkpoint WHERE stream = %s)",
                    (self._zone, self._zone),
                ).fetchone()
        except psycopg.Error as exc:
            raise AuditUnavailable(
                f"audit PostgreSQL sink unavailable: {type(exc).__name__}"
            ) from exc
        return [self._zone] if row and row[0] else []

    def read(self, stream: str) -> Iterator[bytes]:
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            raise AuditUnavailable(
                f"audit PostgreSQL sink unavailable: {type(exc).__name__}"
            ) from exc
        return self._read(conn, stream)

    @staticmethod
    def _read(conn: psycopg.Connection[Any], stream: str) -> Iterator[bytes]:
        try:
            with conn, conn.transaction(), conn.cursor(name="audit_read") as cursor:
                cursor.itersize = 5000
                cursor.execute(
                    "SELECT line FROM audit_record WHERE stream = %s ORDER BY seq", (stream,)
                )
                for (line,) in cursor:
                    yield line.encode("utf-8") + b"\n"
        except psycopg.Error as exc:
            raise AuditUnavailable(
                f"audit PostgreSQL sink unavailable: {type(exc).__name__}"
            ) from exc

    def checkpoints(self, stream: str) -> list[bytes]:
        try:
            with self._connect() as conn:
                rows = conn.execute(
                    "SELECT line FROM audit_checkpoint WHERE stream = %s ORDER BY id", (stream,)
                ).fetchall()
        except psycopg.Error as exc:
            raise AuditUnavailable(
                f"audit PostgreSQL sink unavailable: {type(exc).__name__}"
            ) from exc
        return [row[0].encode("utf-8") + b"\n" for row in rows]

    def close(self) -> None:
        with self._lock:
            self._drop()
