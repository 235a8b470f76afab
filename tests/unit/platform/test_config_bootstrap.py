"""Settings and the composition root: one URL per port, allow-listed schemes, production refusals,
schema creation on a fresh database, the command line and the subscription helper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from fincore.settings import SettingsError
from noncde.platform import app
from noncde.platform.adapters.memory import MemoryEventStore
from noncde.platform.adapters.sql import SqlDatabase, SqlEventStore, SqlJobQueue
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig
from noncde.platform.domain import NewEvent, SchemaTooNew
from noncde.platform.service import drain_once


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"FINCORE_VAR_DIR": str(tmp_path / "var"), **extra}


def test_defaults_are_one_sqlite_file_under_var(tmp_path: Path) -> None:
    """With nothing set, every port uses var/noncde/platform.db with WAL NORMAL."""
    config = PlatformConfig.from_env(env_for(tmp_path))
    expected = f"sqlite:///{(tmp_path / 'var' / 'noncde' / 'platform.db').resolve()}"
    assert config.db_url == expected
    assert set(config.port_urls().values()) == {expected}
    assert config.sqlite_synchronous == "NORMAL"
    assert config.retry.max_attempts == 5


def test_a_sql_port_must_use_the_platform_database(tmp_path: Path) -> None:
    """Two SQL databases would split the unit of work, so it is refused."""
    with pytest.raises(SettingsError, match="JOB_QUEUE_URL"):
        PlatformConfig.from_env(
            env_for(tmp_path, FINCORE_NONCDE_JOB_QUEUE_URL=f"sqlite:///{tmp_path / 'other.db'}")
        )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FINCORE_NONCDE_SQLITE_SYNCHRONOUS", "OFF", "SYNCHRONOUS"),
        ("FINCORE_NONCDE_IDEMPOTENCY_RETENTION_S", "3600", "24 h"),
        ("FINCORE_NONCDE_JOB_MAX_ATTEMPTS", "0", "JOB_MAX_ATTEMPTS"),
        ("FINCORE_NONCDE_JOB_BACKOFF_BASE_S", "500", "BACKOFF"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, name: str, value: str, message: str) -> None:
    """Invalid settings fail at start with the variable's name."""
    with pytest.raises(SettingsError, match=message):
        PlatformConfig.from_env(env_for(tmp_path, **{name: value}))


def test_unknown_schemes_are_refused(tmp_path: Path) -> None:
    """Only allow-listed schemes pick an adapter."""
    config = PlatformConfig.for_database(f"sqlite:///{tmp_path / 'p.db'}", rules_url="http://x")
    with pytest.raises(SettingsError, match="RULES_URL"):
        build_platform(config)
    with pytest.raises(SettingsError, match="DB_URL"):
        build_platform(PlatformConfig.for_database("mysql://db/x"))
    with pytest.raises(SettingsError, match="mixes"):
        PlatformConfig.for_database("memory://", job_queue_url="sqs://q.fifo")


def test_production_refuses_sqlite_and_memory(tmp_path: Path) -> None:
    """FINCORE_ENV=production refuses the development backends."""
    with pytest.raises(SettingsError, match="SQLite"):
        PlatformConfig.from_env(env_for(tmp_path, FINCORE_ENV="production"))
    with pytest.raises(SettingsError, match="memory"):
        PlatformConfig.from_env(
            env_for(tmp_path, FINCORE_ENV="production", FINCORE_NONCDE_DB_URL="memory://")
        )
    config = PlatformConfig.from_env(
        env_for(
            tmp_path,
            FINCORE_ENV="production",
            FINCORE_NONCDE_DB_URL="postgresql://fincore@db.internal/fincore",
        )
    )
    assert config.event_store_url.startswith("postgresql://")


def test_memory_platform(tmp_path: Path) -> None:
    """memory:// builds in-memory adapters for every port."""
    platform = build_platform(PlatformConfig.for_database("memory://"))
    assert isinstance(platform.events, MemoryEventStore)
    assert platform.relays == ()


def test_fresh_sqlite_file_gets_the_schema(tmp_path: Path) -> None:
    """A new SQLite file (in a folder that does not exist yet) is created and usable."""
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'platform.db'}"
    platform = build_platform(PlatformConfig.for_database(url))
    assert isinstance(platform.events, SqlEventStore) and isinstance(platform.jobs, SqlJobQueue)
    assert all(check() for check in platform.readiness.values())
    platform.events.append("charge-1", [NewEvent("charge.requested", {})], 0)
    platform.close()
    again = build_platform(PlatformConfig.for_database(url))  # idempotent on an existing file
    assert again.events.head_position() == 1
    again.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    """SQLite connections use WAL, synchronous NORMAL (or FULL when asked) and a busy timeout."""
    for level, expected in (("NORMAL", 1), ("FULL", 2)):
        db = SqlDatabase(f"sqlite:///{tmp_path / level}.db", synchronous=level)
        with db.read() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == expected
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 30_000
        db.dispose()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database stamped by a newer release is not touched."""
    db = SqlDatabase(f"sqlite:///{tmp_path / 'p.db'}")
    db.init_schema()
    with db.write() as conn:
        conn.execute(text("UPDATE platform_schema SET version = 99"))
    with pytest.raises(SchemaTooNew):
        db.init_schema()
    db.dispose()


def test_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """init-schema, counts, dead-letters and replay work against the configured database."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FINCORE_NONCDE_DB_URL", url)
    monkeypatch.setenv("FINCORE_NONCDE_JOB_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("FINCORE_LOG_DIR", str(tmp_path / "log"))
    assert app.main(["init-schema"]) == 0
    platform = build_platform()
    platform.jobs.enqueue("webhook.deliver", {"endpoint": "we_1"})
    (job,) = platform.jobs.lease("w1")
    platform.jobs.nack(job, "HTTP 500 from merchant")
    platform.close()
    capsys.readouterr()
    app.main(["counts"])
    assert json.loads(capsys.readouterr().out)["dead"] == 1
    app.main(["dead-letters"])
    letter = json.loads(capsys.readouterr().out)
    assert letter["job_id"] == job.id and letter["last_error"] == "HTTP 500 from merchant"
    app.main(["replay", job.id])
    assert json.loads(capsys.readouterr().out) == {"replayed": 1}
    app.main(["relay", "--once"])
    assert json.loads(capsys.readouterr().out) == {}


def test_drain_once_redelivers_when_the_handler_fails(tmp_path: Path) -> None:
    """A failing handler commits nothing; the batch comes again on the next drain."""
    platform = build_platform(PlatformConfig.for_database("memory://"))
    platform.events.append("charge-1", [NewEvent("charge.requested", {})], 0)
    sub = platform.events.subscription("projector")
    seen: list[int] = []

    def failing(events: object) -> None:
        raise RuntimeError("projection bug")

    with pytest.raises(RuntimeError):
        drain_once(sub, failing)
    assert drain_once(sub, lambda events: seen.extend(e.position for e in events)) == 1
    assert drain_once(platform.events.subscription("projector"), failing) == 0
    assert seen == [1]
