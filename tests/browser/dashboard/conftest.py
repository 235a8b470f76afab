"""Fixtures of the dashboard's browser tests: the non-CDE platform seeded through its real
paths, the merchant API and the dashboard as real processes over TLS, and staff accounts made
by the dashboard's own CLI (`demo-login`: one per role)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.dashboard.helpers import Account, Dashboard
from tests.integration.dashboard.seed import (
    project,
    seed_charges,
    seed_dead_letter,
    seed_merchant,
    seed_webhook_deliveries,
)
from tests.integration.dashboard.world import World


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    world = World(tmp_path_factory.mktemp("dash-browser") / "var")
    env = world.env("dashboard")
    merchant = seed_merchant(world.env("api"), "Blue Bottle Books")
    charges = seed_charges(
        env,
        merchant,
        [
            (2500, "usd", "4242", "succeeded", 0),
            (1299, "usd", "5556", "succeeded", 1),
            (4000, "usd", "0002", "failed", 1),
            (1800, "usd", "4444", "succeeded", 2),
            (650, "usd", "1881", "failed", 3),
            (3200, "usd", "4242", "succeeded", 4),
            (700, "eur", "4444", "succeeded", 3),
        ],
    )
    project(env)
    dead_job = seed_dead_letter(env, charges[2])
    seed_webhook_deliveries(world.env("api"), env, merchant)
    try:
        world.start("api")
        url = world.start("dashboard")
        made = Dashboard(world, url, merchant, charges, dead_job)
        for demo in made.cli("demo-login")["accounts"]:
            made.accounts[demo["role"]] = Account(
                demo["username"], demo["password"], demo["totp_secret"]
            )
        yield made
    finally:
        world.stop()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (cookies) per test. The browser does not know the development
    CA, so certificate errors are ignored here; the server's chain is checked separately
    with the CA in `test_the_dashboard_serves_tls_with_the_development_ca`."""
    made = browser.new_context(ignore_https_errors=True, viewport={"width": 1360, "height": 900})
    yield made
    made.close()
