"""Fixtures of the platform contract suites."""

from __future__ import annotations

import pytest

from tests.contract.platform.support import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    """A hand-moved clock starting now."""
    return FakeClock()
