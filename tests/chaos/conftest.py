"""The chaos tests' platform: every process of both zones, the PSP sandbox and its SFTP server,
started once for the chaos tests by bench/load.py's `started_platform` (free loopback ports, a
throw-away var folder, the demo merchants) with the faster-recovery settings of
`harness.CHAOS_ENV`, passed to the runner only (this process's environment is untouched)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load import Target, started_platform
from tests.chaos.harness import CHAOS_ENV


@pytest.fixture(scope="session")
def chaos_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Started once (about half a minute) for every chaos test, stopped after the last."""
    folder: Path = tmp_path_factory.mktemp("chaos")
    with started_platform(folder, env=dict(os.environ, **CHAOS_ENV)) as target:
        yield target


@pytest.fixture
def platform(chaos_platform: Target) -> Iterator[Target]:
    """The chaos platform with no fault installed and every process up, before and after."""
    chaos_platform.clear_faults()
    runner = chaos_platform.runner
    assert runner is not None
    for child in list(runner.children):
        if child.process.poll() is not None:
            runner.restart(child.spec.name)
    yield chaos_platform
    chaos_platform.clear_faults()
