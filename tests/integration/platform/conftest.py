"""Fixtures of the platform's multi-process tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fincore.netutil import free_port
from tests.harness.peers import ROOT, MotoServer
from tests.harness.procs import ServerProcess


@pytest.fixture
def serial_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A fresh moto server that serves one request at a time (see serial_moto.py), with boto3
    pointed at it through the environment (inherited by spawned worker processes)."""
    port = free_port()
    process = ServerProcess(
        [sys.executable, "-m", "tests.integration.platform.serial_moto", str(port)],
        name="serial-moto",
        log_path=tmp_path / "serial-moto.log",
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_until(lambda: httpx.get(url + "/moto-api/", timeout=1).status_code == 200)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": url,
        }.items():
            monkeypatch.setenv(name, value)
        yield MotoServer(url, process)
    finally:
        process.stop()
