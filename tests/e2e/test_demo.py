"""`fincore demo` (what `make demo` runs) as a user runs it: a subprocess on free ports with its
own var folder. It must exit 0 (every expectation of its summary held), print one summary
table and leave no process behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fincore.runner import PROJECT_ROOT
from tests.e2e.conftest import free_ports, no_orphans_of, port_env

pytestmark = [pytest.mark.e2e, pytest.mark.psp, pytest.mark.sftp, pytest.mark.browser]


def test_fincore_demo_exits_0_and_leaves_nothing_running(tmp_path: Path) -> None:
    """Every row of the summary is PASS, the exit code is 0, no child outlives the demo, and
    the demo's keys are stored under var/ readable by the owner only."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Chromium (/usr/bin/chromium) is not installed")
    var = tmp_path / "var"
    demo = subprocess.Popen(
        [sys.executable, "-m", "fincore", "demo"],
        cwd=PROJECT_ROOT,
        env=port_env(free_ports(), var),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = demo.communicate(timeout=280)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, output[-6000:]
    assert output.count("FinCore demo summary") == 1
    rows = [
        line for line in output.splitlines() if line.split("  ")[0].strip() and "  PASS  " in line
    ]
    assert len(rows) >= 14 and "FAIL" not in output, output[-4000:]
    assert no_orphans_of(demo.pid) == []
    seed = var / "demo" / "seed.json"
    assert seed.stat().st_mode & 0o777 == 0o600
    assert (var / "demo").stat().st_mode & 0o777 == 0o700
