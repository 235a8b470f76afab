"""Fixtures for the PSP contract tests: the sandbox as a real process (localstripe comes from
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.psp_sandbox.peer import SandboxServer, start_sandbox


@pytest.fixture(scope="session")
def psp_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """The PSP sandbox on a free loopback port, for the session."""
    yield from start_sandbox(tmp_path_factory.mktemp("contract-sandbox"))
