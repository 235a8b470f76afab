"""Helpers of the dashboard's browser tests: the running dashboard and its accounts, a TOTP
helper that never reuses a code's time step, signing in and screenshots."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp

from noncde.dashboard.domain.accounts import TOTP_PERIOD_S
from tests.integration.dashboard.seed import SeededCharge
from tests.integration.dashboard.world import ROOT, World


@dataclass
class Account:
    username: str
    password: str
    secret: str
    last_step: int = 0


@dataclass
class Dashboard:
    """The running dashboard, its world, the seeded data and the staff accounts."""

    world: World
    url: str
    merchant: str
    charges: list[SeededCharge]
    dead_job: str
    accounts: dict[str, Account] = field(default_factory=dict)

    def cli(self, *args: str, stdin: str | None = None) -> Any:
        """`python -m noncde.dashboard.app admin …` with the dashboard's environment."""
        env = self.world.env("dashboard") | {"FINCORE_ADMIN_ACTOR": "test.operator"}
        result = subprocess.run(
            [sys.executable, "-m", "noncde.dashboard.app", "admin", *args],
            env=env,
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout)

    def code(self, username: str) -> str:
        """A code of a time step this account has not used yet (waits when it must)."""
        account = self.accounts[username]
        while True:
            clock = time.time()
            now = int(clock) // TOTP_PERIOD_S
            # The server accepts one step either side of its own. A code of the previous step
            # stops working at the next boundary, so it is used only with time to spare; a code
            # of this step or the next stays good for at least one whole period.
            spare = TOTP_PERIOD_S - clock % TOTP_PERIOD_S
            steps = ((now - 1,) if spare > TOTP_PERIOD_S / 2 else ()) + (now, now + 1)
            for step in steps:
                if step > account.last_step:
                    account.last_step = step
                    totp = pyotp.TOTP(account.secret)
                    return totp.generate_otp(step)
            time.sleep(1)


def new_account(dashboard: Dashboard, username: str, role: str, password: str) -> Account:
    """An account made by the CLI (the initial password must be changed at first login)."""
    made = dashboard.cli(
        "create-user", username, "--role", role, "--password-stdin", stdin=password + "\n"
    )
    secret = made["totp_provisioning_uri"].split("secret=")[1].split("&")[0]
    account = Account(username, password, secret)
    dashboard.accounts[username] = account
    return account


def sign_in(page: Any, dashboard: Dashboard, key: str) -> None:
    """Password, then the one-time code, through the login pages."""
    account = dashboard.accounts[key]
    page.goto(dashboard.url + "/login")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.click("#sign-in")
    page.wait_for_url("**/login/mfa")
    page.fill("#code", dashboard.code(key))
    with page.expect_navigation():
        page.click("#verify")
    assert "/login" not in page.url, f"sign-in of {key} ended on {page.url}"


def shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
