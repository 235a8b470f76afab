"""Shared fixtures: real servers on loopback, started here when the machine lacks them.

PostgreSQL and Redis: the local servers when they answer, otherwise throw-away ones started from
the installed binaries; with no binaries, tests that need them skip (and fail under CI=true).
moto, localstripe and SFTP run as subprocesses on free ports for the session.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fincore.logs import reset_logging
from tests.harness import peers, postgres, redis
from tests.harness.procs import UNAVAILABLE, in_ci, unavailable

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if UNAVAILABLE:
        missing = ", ".join(sorted(set(UNAVAILABLE)))
        terminalreporter.write_sep("!", f"SERVERS UNAVAILABLE, TESTS SKIPPED: {missing}", red=True)


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """Each test starts and ends with default logging, whatever it configured."""
    yield
    reset_logging()


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.PgServer]:
    """A PostgreSQL server: the local one, or a throw-away one from the installed binaries."""
    local = postgres.local_server()
    if local is not None:
        yield local
        return
    started = postgres.throwaway_server(tmp_path_factory.mktemp("pg"))
    if started is None:
        unavailable("PostgreSQL")
    assert started is not None
    yield from started


@pytest.fixture(scope="session")
def postgres_url(pg_server: postgres.PgServer) -> Iterator[str]:
    """SQLAlchemy URL of a throw-away database for this test session (dropped afterwards)."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def fresh_postgres_url(pg_server: postgres.PgServer) -> Iterator[Callable[[], str]]:
    """Factory of empty databases for one test (all dropped after it)."""
    created: list[str] = []

    def make() -> str:
        name = pg_server.create_database()
        created.append(name)
        return pg_server.url(name)

    yield make
    for name in created:
        pg_server.drop_database(name)


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.RedisServer]:
    local = redis.local_server()
    if local is not None:
        yield local
        return
    started = redis.throwaway_server(tmp_path_factory.mktemp("redis"))
    if started is None:
        unavailable("Redis")
    assert started is not None
    yield from started


@pytest.fixture(scope="session")
def _redis_db(redis_server: redis.RedisServer) -> Iterator[int]:
    owner = f"{os.getpid()}-{secrets.token_hex(4)}"
    db = redis_server.acquire_db(owner)
    try:
        yield db
    finally:
        redis_server.client(db).flushdb()
        redis_server.release_db(db, owner)


@pytest.fixture
def redis_url(redis_server: redis.RedisServer, _redis_db: int) -> Iterator[str]:
    """URL of a Redis database reserved for this session, flushed before and after each test."""
    client = redis_server.client(_redis_db)
    client.flushdb()
    yield redis_server.url(_redis_db)
    client.flushdb()


# ---------------------------------------------------------------- AWS (moto server mode)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[peers.MotoServer]:
    yield from peers.moto_server(tmp_path_factory.mktemp("moto"))


@pytest.fixture
def aws(moto_server: peers.MotoServer, monkeypatch: pytest.MonkeyPatch) -> peers.MotoServer:
    """moto in server mode, reset, with boto3 pointed at it through the environment."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    return moto_server


# ---------------------------------------------------------------- localstripe


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[peers.LocalStripe]:
    yield from peers.localstripe(tmp_path_factory.mktemp("localstripe"))


@pytest.fixture
def localstripe(localstripe_server: peers.LocalStripe) -> peers.LocalStripe:
    """localstripe with an empty store."""
    localstripe_server.reset()
    return localstripe_server


# ---------------------------------------------------------------- SFTP


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[peers.SftpServer]:
    """A real SFTP server (asyncssh) serving `tmp_path / 'sftp-root'` read-only."""
    root = tmp_path / "sftp-root"
    root.mkdir()
    yield from peers.sftp_server(root, tmp_path)


# ---------------------------------------------------------------- Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium through Playwright (never a downloaded browser).

    Module-scoped on purpose: Playwright's sync API keeps an asyncio loop running in the main
    thread while it is open, which would break every later test that calls `asyncio.run`.
    """
    if not peers.CHROMIUM.exists():
        unavailable("Chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(peers.CHROMIUM), headless=True, args=peers.CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """A folder for this test's artifacts (screenshots, reports) under test-artifacts/."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.nodeid)
    folder = ARTIFACTS / safe[-120:]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def ci() -> bool:
    return in_ci()
