"""Third-party test peers as real servers on loopback: moto, localstripe, SFTP, Chromium."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from fincore.netutil import free_port, wait_for_port
from tests.harness.procs import ServerProcess

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@dataclass
class MotoServer:
    endpoint_url: str
    process: ServerProcess

    def reset(self) -> None:
        httpx.post(self.endpoint_url + "/moto-api/reset", timeout=10).raise_for_status()


def moto_server(workdir: Path) -> Iterator[MotoServer]:
    port = free_port()
    proc = ServerProcess(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        name="moto",
        log_path=workdir / "moto.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_until(lambda: httpx.get(url + "/moto-api/", timeout=1).status_code == 200)
        yield MotoServer(url, proc)
    finally:
        proc.stop()


@dataclass
class LocalStripe:
    url: str
    api_key: str
    process: ServerProcess

    def reset(self) -> None:
        httpx.delete(self.url + "/_config/data", timeout=10).raise_for_status()


def localstripe(workdir: Path) -> Iterator[LocalStripe]:
    port = free_port()
    proc = ServerProcess(
        [sys.executable, str(HERE / "run_localstripe.py"), "--port", str(port)],
        name="localstripe",
        log_path=workdir / "localstripe.log",
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    key = "sk_test_localstripe"
    try:
        proc.wait_until(
            lambda: httpx.get(url + "/v1/balance", auth=(key, ""), timeout=1).status_code == 200
        )
        yield LocalStripe(url, key, proc)
    finally:
        proc.stop()


@dataclass
class SftpServer:
    host: str
    port: int
    username: str
    root: Path
    client_key: Path
    host_key_pub: Path
    process: ServerProcess

    @property
    def url(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}/"

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key_pub.read_text().strip()}"


def sftp_server(root: Path, workdir: Path) -> Iterator[SftpServer]:
    from psp_sandbox.adapters.sftp import ensure_keys

    host_key, client_key, authorized = ensure_keys(workdir / "sftp-keys")
    port = free_port()
    proc = ServerProcess(
        [
            sys.executable,
            "-m",
            "psp_sandbox.adapters.sftp",
            "--root",
            str(root),
            "--port",
            str(port),
            "--host-key",
            str(host_key),
            "--authorized-keys",
            str(authorized),
        ],
        name="sftp",
        log_path=workdir / "sftp.log",
        cwd=ROOT,
    )
    try:
        proc.wait_until(lambda: wait_for_port(port, timeout_s=0.2) or True)
        yield SftpServer(
            "127.0.0.1", port, "fincore", root, client_key, Path(str(host_key) + ".pub"), proc
        )
    finally:
        proc.stop()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
