"""Fixtures of the infrastructure tests: the approved-flows file and parsed Terraform roots."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import pytest

from tests.infra.checkov_runs import RUNS
from tests.infra.policy import TERRAFORM, flowsfile
from tests.infra.tfmodel import Model

GOOD_ROOTS = ("envs/prod", "envs/dev")
KNOWN_BAD = "fixtures/known_bad"


@cache
def model(root: str) -> Model:
    """The parsed, evaluated Terraform root (relative to infra/terraform), built once."""
    return Model(TERRAFORM / root)


@pytest.fixture(scope="session")
def flows() -> Any:
    """The approved-flows file, validated."""
    return flowsfile.load()


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Start the checkov runs in the background as soon as a checkov test is going to run.

    Not in pytest-xdist workers: each collects every test, and only the one that runs the
    checkov tests should pay for checkov (the `checkov` fixture starts the runs there)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any(item.nodeid.startswith("tests/infra/test_checkov.py") for item in items):
        RUNS.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop any checkov run still going (an interrupted or deselected session)."""
    RUNS.stop()
