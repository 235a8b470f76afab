"""PSP sandbox: the SQLite store (objects as JSON, exact-match attributes, idempotency
records, webhook endpoints and the durable delivery queue). One connection, WAL mode.

Outside both zones. The sandbox's own state; no card number is ever written here (the service
reduces cards to brand/last4/fingerprint before anything reaches the store).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fincore.sqlite import use_wal
from psp_sandbox.ports import (
    Delivery,
    IdempotencyRecord,
    StoredObject,
    WebhookEndpoint,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    data TEXT NOT NULL,
    private TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS objects_type_seq ON objects(type, seq);
CREATE INDEX IF NOT EXISTS objects_type_created ON objects(type, created, seq);
CREATE TABLE IF NOT EXISTS attrs (
    object_seq INTEGER NOT NULL REFERENCES objects(seq),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (object_seq, name)
);
CREATE INDEX IF NOT EXISTS attrs_lookup ON attrs(name, value, object_seq);
CREATE TABLE IF NOT EXISTS idempotency (
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    created REAL NOT NULL,
    PRIMARY KEY (account, key)
);
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created REAL NOT NULL,
    delivered_at REAL,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_attempt_at, id);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries(event_id);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    status INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts(delivery_id, attempt);
"""


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


class SqliteSandboxStore:
    """`SandboxStore` on one SQLite file (or `:memory:`), safe to share between threads."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            # The PSP's state is private to it (PCI DSS 7.2.1 spirit: least access).
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:",
            isolation_level=None,
            check_same_thread=False,
            timeout=10.0,
        )
        if path is not None:
            path.chmod(0o600)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        with self._lock:
            use_wal(self._db.cursor())
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> SqliteSandboxStore:
        """`sqlite:///relative/or/absolute.db`, `sqlite:////abs.db`, or `sqlite://` (memory)."""
        rest = url.split("://", 1)[1]
        if rest in ("", "/", "/:memory:"):
            return cls(None)
        return cls(Path(rest[1:] if rest.startswith("/") else rest))

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ objects

    @staticmethod
    def _row(row: sqlite3.Row) -> StoredObject:
        return StoredObject(
            id=row["id"],
            type=row["type"],
            created=row["created"],
            data=json.loads(row["data"]),
            private=json.loads(row["private"]),
        )

    def _set_attrs(self, seq: int, attrs: Mapping[str, str]) -> None:
        self._exec("DELETE FROM attrs WHERE object_seq = ?", (seq,))
        for name, value in attrs.items():
            self._exec(
                "INSERT INTO attrs (object_seq, name, value) VALUES (?, ?, ?)",
                (seq, name, str(value)),
            )

    def insert(
        self,
        obj_type: str,
        obj_id: str,
        created: int,
        data: Mapping[str, Any],
        private: Mapping[str, Any] | None = None,
        attrs: Mapping[str, str] | None = None,
    ) -> None:
        with self.transaction():
            cursor = self._exec(
                "INSERT INTO objects (id, type, created, data, private) VALUES (?, ?, ?, ?, ?)",
                (obj_id, obj_type, created, _dumps(data), _dumps(private or {})),
            )
            if attrs:
                assert cursor.lastrowid is not None
                self._set_attrs(cursor.lastrowid, attrs)

    def update(
        self,
        obj_id: str,
        data: Mapping[str, Any],
        private: Mapping[str, Any] | None = None,
        attrs: Mapping[str, str] | None = None,
    ) -> None:
        with self.transaction():
            if private is None:
                self._exec("UPDATE objects SET data = ? WHERE id = ?", (_dumps(data), obj_id))
            else:
                self._exec(
                    "UPDATE objects SET data = ?, private = ? WHERE id = ?",
                    (_dumps(data), _dumps(private), obj_id),
                )
            if attrs is not None:
                row = self._exec("SELECT seq FROM objects WHERE id = ?", (obj_id,)).fetchone()
                if row is not None:
                    self._set_attrs(row["seq"], attrs)

    def get(self, obj_id: str) -> StoredObject | None:
        row = self._exec("SELECT * FROM objects WHERE id = ?", (obj_id,)).fetchone()
        return self._row(row) if row is not None else None

    def list_objects(
        self,
        obj_type: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: Mapping[str, int] | None = None,
        attrs: Mapping[str, str] | None = None,
    ) -> tuple[list[StoredObject], bool]:
        where = ["o.type = ?"]
        args: list[Any] = [obj_type]
        operators = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        for op, value in (created or {}).items():
            where.append(f"o.created {operators[op]} ?")  # op is from a fixed allow-list
            args.append(value)
        for name, text in (attrs or {}).items():
            where.append(
                "EXISTS (SELECT 1 FROM attrs a WHERE a.object_seq = o.seq "
                "AND a.name = ? AND a.value = ?)"
            )
            args.extend((name, text))
        order = "DESC"
        if starting_after:
            where.append("o.seq < (SELECT seq FROM objects WHERE id = ?)")
            args.append(starting_after)
        elif ending_before:
            where.append("o.seq > (SELECT seq FROM objects WHERE id = ?)")
            args.append(ending_before)
            order = "ASC"
        sql = (
            "SELECT o.* FROM objects o WHERE "  # noqa: S608 - clauses above are fixed strings
            + " AND ".join(where)
            + f" ORDER BY o.seq {order} LIMIT ?"
        )
        rows = self._exec(sql, [*args, limit + 1]).fetchall()
        has_more = len(rows) > limit
        items = [self._row(row) for row in rows[:limit]]
        if order == "ASC":
            items.reverse()
        return items, has_more

    def objects_between(self, obj_type: str, start: int, end: int) -> list[StoredObject]:
        rows = self._exec(
            "SELECT * FROM objects WHERE type = ? AND created >= ? AND created < ? ORDER BY seq",
            (obj_type, start, end),
        ).fetchall()
        return [self._row(row) for row in rows]

    def count(self, obj_type: str) -> int:
        row = self._exec("SELECT count(*) AS n FROM objects WHERE type = ?", (obj_type,)).fetchone()
        return int(row["n"])

    # ------------------------------------------------------------------ idempotency

    def idempotency_get(self, account: str, key: str) -> IdempotencyRecord | None:
        row = self._exec(
            "SELECT * FROM idempotency WHERE account = ? AND key = ?", (account, key)
        ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            account=row["account"],
            key=row["key"],
            fingerprint=row["fingerprint"],
            state=row["state"],
            status=row["status"],
            body=row["body"],
            created=row["created"],
        )

    def idempotency_begin(self, account: str, key: str, fingerprint: str, now: float) -> bool:
        cursor = self._exec(
            "INSERT OR IGNORE INTO idempotency (account, key, fingerprint, state, created) "
            "VALUES (?, ?, ?, 'in_progress', ?)",
            (account, key, fingerprint, now),
        )
        return cursor.rowcount == 1

    def idempotency_finish(self, account: str, key: str, status: int, body: bytes) -> None:
        self._exec(
            "UPDATE idempotency SET state = 'done', status = ?, body = ? "
            "WHERE account = ? AND key = ?",
            (status, body, account, key),
        )

    def idempotency_forget(self, account: str, key: str) -> None:
        self._exec("DELETE FROM idempotency WHERE account = ? AND key = ?", (account, key))

    def idempotency_purge(self, older_than: float) -> int:
        return self._exec(
            "DELETE FROM idempotency WHERE created < ? AND state = 'done'", (older_than,)
        ).rowcount

    # ------------------------------------------------------------------ webhooks

    def replace_endpoints(self, source: str, endpoints: Sequence[WebhookEndpoint]) -> None:
        with self.transaction():
            self._exec("DELETE FROM webhook_endpoints WHERE source = ?", (source,))
            for endpoint in endpoints:
                self._exec(
                    "INSERT OR REPLACE INTO webhook_endpoints (id, url, secret, events, source) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (endpoint.id, endpoint.url, endpoint.secret, ",".join(endpoint.events), source),
                )

    def endpoints(self) -> list[WebhookEndpoint]:
        rows = self._exec("SELECT * FROM webhook_endpoints ORDER BY source, id").fetchall()
        return [
            WebhookEndpoint(
                id=row["id"],
                url=row["url"],
                secret=row["secret"],
                events=tuple(row["events"].split(",")),
                source=row["source"],
            )
            for row in rows
        ]

    def enqueue_delivery(
        self,
        event_id: str,
        endpoint: WebhookEndpoint,
        payload: bytes,
        due: float,
        state: str,
        now: float,
    ) -> int:
        cursor = self._exec(
            "INSERT INTO deliveries (event_id, endpoint_id, url, secret, payload, state, "
            "next_attempt_at, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, endpoint.id, endpoint.url, endpoint.secret, payload, state, due, now),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @staticmethod
    def _delivery(row: sqlite3.Row) -> Delivery:
        return Delivery(
            id=row["id"],
            event_id=row["event_id"],
            endpoint_id=row["endpoint_id"],
            url=row["url"],
            secret=row["secret"],
            payload=bytes(row["payload"]),
            state=row["state"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            created=row["created"],
            delivered_at=row["delivered_at"],
            last_status=row["last_status"],
            last_error=row["last_error"],
        )

    def due_deliveries(self, now: float, limit: int, exclude: Sequence[int]) -> list[Delivery]:
        rows = self._exec(
            "SELECT * FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit + len(exclude)),
        ).fetchall()
        skip = set(exclude)
        return [self._delivery(row) for row in rows if row["id"] not in skip][:limit]

    def next_due(self) -> float | None:
        row = self._exec(
            "SELECT min(next_attempt_at) AS due FROM deliveries WHERE state = 'pending'"
        ).fetchone()
        return None if row["due"] is None else float(row["due"])

    def record_attempt(
        self,
        delivery_id: int,
        *,
        at: float,
        status: int | None,
        error: str | None,
        delivered: bool,
        next_attempt_at: float | None,
        give_up: bool,
    ) -> None:
        with self.transaction():
            row = self._exec(
                "SELECT attempts FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            attempt = (row["attempts"] if row else 0) + 1
            self._exec(
                "INSERT INTO attempts (delivery_id, attempt, at, status, error) "
                "VALUES (?, ?, ?, ?, ?)",
                (delivery_id, attempt, at, status, error),
            )
            state = "delivered" if delivered else ("failed" if give_up else "pending")
            self._exec(
                "UPDATE deliveries SET attempts = ?, state = ?, last_status = ?, last_error = ?, "
                "next_attempt_at = coalesce(?, next_attempt_at), "
                "delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END WHERE id = ?",
                (attempt, state, status, error, next_attempt_at, delivered, at, delivery_id),
            )

    def held_deliveries(self) -> list[Delivery]:
        rows = self._exec("SELECT * FROM deliveries WHERE state = 'held' ORDER BY id").fetchall()
        return [self._delivery(row) for row in rows]

    def set_delivery(self, delivery_id: int, *, state: str, next_attempt_at: float) -> None:
        self._exec(
            "UPDATE deliveries SET state = ?, next_attempt_at = ? WHERE id = ?",
            (state, next_attempt_at, delivery_id),
        )

    def deliveries(self, event_id: str | None = None, limit: int = 100) -> list[Delivery]:
        if event_id is None:
            rows = self._exec(
                "SELECT * FROM deliveries ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        else:
            rows = self._exec(
                "SELECT * FROM deliveries WHERE event_id = ? ORDER BY id LIMIT ?",
                (event_id, limit),
            ).fetchall()
        return [self._delivery(row) for row in rows]

    def attempts(self, delivery_id: int) -> list[dict[str, Any]]:
        rows = self._exec(
            "SELECT attempt, at, status, error FROM attempts WHERE delivery_id = ? "
            "ORDER BY attempt",
            (delivery_id,),
        ).fetchall()
        return [dict(row) for row in rows]
