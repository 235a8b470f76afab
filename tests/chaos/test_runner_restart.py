"""The runner's chaos helpers: `kill` is a kill -9 of one component, `restart` brings it back
with the same settings on the same port; `running(env=...)` is where those settings come from."""

from __future__ import annotations

import io
import os
import ssl
from pathlib import Path

import httpx
import pytest

from fincore.netutil import free_port
from fincore.runner import COMPONENTS, Plan, running

pytestmark = pytest.mark.e2e


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = {}
    for item in raw:
        key, _, value = item.decode().partition("=")
        if key:
            found[key] = value
    return found


def test_kill_then_restart_brings_the_same_component_back(tmp_path: Path) -> None:
    """After `kill` the process is gone and the port refuses; after `restart` a new process
    with the same environment answers /healthz on the same port."""
    plan = Plan(var_dir=tmp_path / "var", ports={n: free_port() for n in [*COMPONENTS, "psp-sftp"]})
    env = dict(os.environ, FINCORE_VAULT_RATE_PER_S="4321", FINCORE_API_NOT_FOR_THE_CDE="1")
    with running(plan, ["vault"], out=io.StringIO(), env=env) as runner:
        context = ssl.create_default_context(cafile=str(plan.ca_file))
        first = runner.child("vault").process
        before = _environ(first.pid)
        # The children's settings come from `env` (filtered by zone), not from os.environ.
        assert before["FINCORE_VAULT_RATE_PER_S"] == "4321"
        assert "FINCORE_API_NOT_FOR_THE_CDE" not in before
        died = runner.kill("vault")
        assert died == first.pid and first.poll() == -9
        with pytest.raises(httpx.ConnectError):
            httpx.get(plan.url("vault") + "/healthz", verify=context, timeout=2)
        second = runner.restart("vault").process
        assert second.pid != first.pid and runner.child("vault").process is second
        assert len(runner.children) == 1
        after = _environ(second.pid)
        assert after == before
        answer = httpx.get(plan.url("vault") + "/healthz", verify=context, timeout=5)
        assert answer.json()["component"] == "vault"
        # A restart of a running component kills it first.
        third = runner.restart("vault").process
        assert second.poll() == -9 and third.poll() is None
    assert third.poll() is not None


def test_unknown_component_is_a_key_error(tmp_path: Path) -> None:
    """Asking for a component the runner did not start fails loudly."""
    plan = Plan(var_dir=tmp_path / "var", ports={n: free_port() for n in [*COMPONENTS, "psp-sftp"]})
    with running(plan, ["vault"], out=io.StringIO()) as runner, pytest.raises(KeyError):
        runner.kill("api")
