"""The security tests share one running platform (every component as a real process, started
once for the folder) and end with the PAN sweep of everything those processes wrote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.stack import Stack, running_stack

HERE = Path(__file__).resolve().parent
SWEEP_MODULE = "test_z_pan_sweep.py"


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every component on free loopback ports in one throw-away var folder, seeded."""
    with running_stack(tmp_path_factory.mktemp("security") / "var") as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The PAN sweep runs right after the other security tests (the folder's processes are
    shared, package-scoped: its items stay together, the sweep last among them)."""
    here = [i for i, item in enumerate(items) if item.path.parent == HERE]
    sweep = [items[i] for i in here if items[i].path.name == SWEEP_MODULE]
    if not sweep:
        return
    others = [items[i] for i in here if items[i].path.name != SWEEP_MODULE]
    start = here[0]
    rest = [item for i, item in enumerate(items) if i not in set(here)]
    items[:] = rest[:start] + others + sweep + rest[start:]
