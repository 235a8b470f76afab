"""Fixtures of the dashboard's unit tests: a runtime on the in-memory staff store and the
audit library's memory sink, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.dashboard.support import Harness, make_harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A dashboard with one account per role (support, finance, auditor, admin)."""
    made = make_harness(tmp_path)
    for role in ("support", "finance", "auditor", "admin"):
        made.add_user(f"{role}.one", role)
    try:
        yield made
    finally:
        made.close()
