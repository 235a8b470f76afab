"""PostgreSQL for tests: the local server, or a throw-away one from the installed binaries."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fincore.netutil import free_port
from tests.harness.procs import ServerProcess


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=3)

    def create_database(self, prefix: str = "fincore_test") -> str:
        name = f"{prefix}_{secrets.token_hex(6)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(server: PgServer) -> bool:
    try:
        import psycopg

        with psycopg.connect(server.dsn("postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not this server"
        return False


def _binaries() -> Path | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def local_server() -> PgServer | None:
    server = PgServer(
        os.environ.get("FINCORE_TEST_PG_HOST", "127.0.0.1"),
        int(os.environ.get("FINCORE_TEST_PG_PORT", "5432")),
        os.environ.get("FINCORE_TEST_PG_USER", "postgres"),
    )
    return server if _answers(server) else None


def throwaway_server(workdir: Path) -> Iterator[PgServer] | None:
    """Start a private PostgreSQL from the installed binaries (initdb into `workdir`)."""
    bindir = _binaries()
    if bindir is None:
        return None

    def run() -> Iterator[PgServer]:
        as_root = os.geteuid() == 0
        # PostgreSQL refuses to run as root: then it runs as the postgres system user, in a
        # folder that user can reach (pytest's own temp folders are private to root).
        home = Path(tempfile.mkdtemp(prefix="fincore-pg-")) if as_root else workdir
        data = home / "pgdata"
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(home, "postgres")
        try:
            subprocess.run(
                [
                    *prefix,
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ],
                check=True,
                capture_output=True,
                cwd=home,
            )
            port = free_port()
            proc = ServerProcess(
                [
                    *prefix,
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(home),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ],
                name="postgres",
                log_path=workdir / "postgres.log",
                cwd=home,
            )
            server = PgServer("127.0.0.1", port, "postgres")
            try:
                proc.wait_until(lambda: _answers(server), timeout_s=30)
                yield server
            finally:
                proc.stop()
        finally:
            if as_root:
                shutil.rmtree(home, ignore_errors=True)

    return run()
