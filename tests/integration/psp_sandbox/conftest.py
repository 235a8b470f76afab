"""Fixtures for the PSP sandbox's integration tests: one sandbox process for the package and a
fresh recording webhook receiver per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.psp_sandbox.peer import RecordingServer, SandboxServer, start_sandbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A sandbox process (single delivery worker, so webhook order is observable)."""
    yield from start_sandbox(
        tmp_path_factory.mktemp("sandbox"), WEBHOOK_CONCURRENCY="1", SESSION_MIN_TTL_S="60"
    )


@pytest.fixture
def recorder(sandbox: SandboxServer) -> Iterator[RecordingServer]:
    """A webhook receiver registered as the sandbox's only endpoint for this test."""
    server = RecordingServer().start()
    sandbox.set_endpoints(server.url)
    try:
        yield server
    finally:
        sandbox.clear_faults()
        server.stop()


@pytest.fixture(autouse=True)
def _no_faults_left(sandbox: SandboxServer) -> Iterator[None]:
    yield
    sandbox.clear_faults()
