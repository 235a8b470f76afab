"""Shared by both zones: opening a SQLite connection in WAL mode when others may be at it too.

`PRAGMA journal_mode=WAL` needs a moment of exclusive access to the database file. When several
processes start together (the runner starts them all at once) and one of them is creating the
schema, the switch can answer "database is locked" at once, without waiting for the busy
timeout (a CI run lost its ledger process to it). `use_wal` sets the busy timeout first, then
retries the switch until that timeout has passed.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def use_wal(cursor: Any, *, busy_timeout_ms: int = 10_000, pause_s: float = 0.05) -> None:
    """Set the busy timeout on `cursor`'s connection, then switch it to WAL (retrying while
    the file is locked, up to the busy timeout). Raises the last `OperationalError` after."""
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause_s)
