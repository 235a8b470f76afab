"""Redis for tests: the local server, or a throw-away `redis-server` on a free port."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fincore.netutil import free_port
from tests.harness.procs import ServerProcess

_LOCK_PREFIX = "fincore:test:dblock:"


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def client(self, db: int = 0):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=5)

    def acquire_db(self, owner: str) -> int:
        """Reserve one of DBs 1-15 for this test session (several sessions may share a server)."""
        admin = self.client(0)
        for db in range(1, 16):
            if admin.set(_LOCK_PREFIX + str(db), owner, nx=True, ex=3 * 3600):
                return db
        raise RuntimeError("all Redis test databases are in use")

    def release_db(self, db: int, owner: str) -> None:
        admin = self.client(0)
        if admin.get(_LOCK_PREFIX + str(db)) == owner.encode():
            admin.delete(_LOCK_PREFIX + str(db))


def _answers(server: RedisServer) -> bool:
    try:
        return bool(server.client().ping())
    except Exception:  # noqa: BLE001 - any failure means "not this server"
        return False


def local_server() -> RedisServer | None:
    server = RedisServer(
        os.environ.get("FINCORE_TEST_REDIS_HOST", "127.0.0.1"),
        int(os.environ.get("FINCORE_TEST_REDIS_PORT", "6379")),
    )
    return server if _answers(server) else None


def throwaway_server(workdir: Path) -> Iterator[RedisServer] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None

    def run() -> Iterator[RedisServer]:
        port = free_port()
        proc = ServerProcess(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            name="redis",
            log_path=workdir / "redis.log",
        )
        server = RedisServer("127.0.0.1", port)
        try:
            proc.wait_until(lambda: _answers(server), timeout_s=15)
            yield server
        finally:
            proc.stop()

    return run()
