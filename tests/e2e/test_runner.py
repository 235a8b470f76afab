"""The local runner starts real processes, checks health, and never leaves orphans."""

from __future__ import annotations

import io
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fincore.netutil import free_port
from fincore.runner import COMPONENTS, Plan, running

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAMES = ["vault", "gateway"]


def _ports() -> dict[str, int]:
    return {name: free_port() for name in [*COMPONENTS, "psp-sftp"]}


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"FINCORE_PARENT_PID={pid}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_running_starts_healthy_processes_and_stops_them(tmp_path: Path) -> None:
    """Components answer /healthz over TLS while running and are gone afterwards."""
    plan = Plan(var_dir=tmp_path / "var", ports=_ports())
    out = io.StringIO()
    with running(plan, NAMES, out=out) as runner:
        pids = [child.process.pid for child in runner.children]
        with httpx.Client(verify=ssl.create_default_context(cafile=str(plan.ca_file))) as client:
            for name in NAMES:
                assert client.get(plan.url(name) + "/healthz").json()["component"] == name
    assert all(not _alive(pid) for pid in pids)
    assert "vault" in out.getvalue()
    assert (tmp_path / "var" / "log" / "vault.log").exists()


def test_killed_runner_leaves_no_orphans(tmp_path: Path) -> None:
    """kill -9 of `fincore run` takes every child down within seconds."""
    env = dict(os.environ, FINCORE_VAR_DIR=str(tmp_path / "var"))
    ports = _ports()
    for name, port in ports.items():
        env[f"FINCORE_PORT_{name.upper().replace('-', '_')}"] = str(port)
    runner = subprocess.Popen(
        [sys.executable, "-m", "fincore", "run", "--only", ",".join(NAMES)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        while time.monotonic() < deadline:
            children = _children_of(runner.pid)
            ready = len(children) == len(NAMES)
            if ready:
                try:
                    httpx.get(
                        f"https://127.0.0.1:{ports['gateway']}/healthz",
                        verify=ssl.create_default_context(
                            cafile=str(tmp_path / "var" / "pki" / "ca.crt")
                        ),
                    )
                    break
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        assert len(children) == len(NAMES), "runner did not start its children"
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.2)
        assert not any(_alive(p) for p in children), "children outlived a killed runner"
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in _children_of(runner.pid):
            os.kill(pid, signal.SIGKILL)


def test_runner_exits_cleanly_on_sigint(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) stops all children and the runner exits 0."""
    env = dict(os.environ, FINCORE_VAR_DIR=str(tmp_path / "var"))
    for name, port in _ports().items():
        env[f"FINCORE_PORT_{name.upper().replace('-', '_')}"] = str(port)
    runner = subprocess.Popen(
        [sys.executable, "-m", "fincore", "run", "--only", "vault"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    output = ""
    assert runner.stdout is not None
    while time.monotonic() < deadline:
        line = runner.stdout.readline()
        output += line
        if "FinCore is running" in line:
            break
    children = _children_of(runner.pid)
    assert children, output
    runner.send_signal(signal.SIGINT)
    rest, _ = runner.communicate(timeout=30)
    assert runner.returncode == 0, output + rest
    assert not any(_alive(p) for p in children)
