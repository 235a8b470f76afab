"""fincore.sqlite.use_wal: the switch to WAL waits for a database another connection has locked
(processes starting together), and gives up with the error after the busy timeout."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fincore.sqlite import use_wal


@contextmanager
def locked_elsewhere(path: Path) -> Iterator[tuple[sqlite3.Connection, threading.Event]]:
    """Another connection holds `path` in an exclusive transaction until the event is set;
    yields a fresh connection of ours (no busy timeout of its own) and that event."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN EXCLUSIVE")
        other.execute("CREATE TABLE t (x)")
        held.set()
        release.wait(10)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    mine = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        yield mine, release
    finally:
        release.set()
        holder.join()
        mine.close()


def test_the_switch_waits_for_a_lock_held_by_another_connection(tmp_path: Path) -> None:
    with locked_elsewhere(tmp_path / "db.sqlite") as (mine, release):
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            mine.execute("PRAGMA journal_mode=WAL")  # what a plain switch does meanwhile
        threading.Timer(0.3, release.set).start()
        use_wal(mine.cursor(), busy_timeout_ms=5_000)
        assert mine.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_switch_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    with (
        locked_elsewhere(tmp_path / "db.sqlite") as (mine, _release),
        pytest.raises(sqlite3.OperationalError, match="locked"),
    ):
        use_wal(mine.cursor(), busy_timeout_ms=200)
