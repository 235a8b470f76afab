"""Helpers shared by the dashboard's unit, integration and browser tests: a settable clock,
a runtime on the real adapters (argon2id with test-sized cost, the audit library's sinks),
TOTP codes for a user, and a signed-in test client."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from argon2 import PasswordHasher
from starlette.testclient import TestClient

from audit.bootstrap import open_audit_log, open_audit_reader
from audit.domain import AuditRecord
from audit.service import AuditLog
from fincore.ids import random_token
from noncde.dashboard.adapters.audit_log import AuditLogViewer
from noncde.dashboard.adapters.passwords import Argon2PasswordHasher
from noncde.dashboard.bootstrap import DashboardRuntime, build_runtime
from noncde.dashboard.config import DashboardConfig
from noncde.dashboard.domain.accounts import candidate_steps
from noncde.dashboard.web.routes import create_app

PASSWORD = "Correct horse 4 battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class SetClock:
    """A clock the test moves (the PCI "clock-travel" tests: idle timeout, lockout)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def cheap_hasher() -> Argon2PasswordHasher:
    """argon2id with a small cost: the same algorithm and code path, fast enough for tests."""
    return Argon2PasswordHasher(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))


def dashboard_env(
    var: Path, *, store: str = "memory://", audit: str | None = None
) -> dict[str, str]:
    return {
        "FINCORE_VAR_DIR": str(var),
        "FINCORE_ENV": "test",
        "FINCORE_DASHBOARD_DB_URL": store,
        "FINCORE_NONCDE_AUDIT_URL": audit or f"memory://dash-{random_token(8)}",
        "FINCORE_AUDIT_FSYNC": "batch",
    }


@dataclass
class Harness:
    """A dashboard runtime with its audit log, clock and the secrets of created accounts."""

    runtime: DashboardRuntime
    audit: AuditLog
    env: Mapping[str, str]
    clock: SetClock
    secrets: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)

    def add_user(
        self, username: str, role: str, *, password: str = PASSWORD, ready: bool = True
    ) -> None:
        """An account; with `ready` its first-login password change is already done."""
        made = self.runtime.staff.create_user(username, role, actor="test.admin", password=password)
        self.secrets[username] = parse_qs(urlsplit(made.provisioning_uri).query)["secret"][0]
        self.passwords[username] = password
        if ready:
            user = self.runtime.store.find_user(username)
            assert user is not None
            self.runtime.store.save_user(replace(user, must_change_password=False))

    def code(self, username: str, *, offset: int = 0) -> str:
        """A valid code not used yet: the newest unused step in the accepted window."""
        user = self.runtime.store.find_user(username)
        assert user is not None
        steps = [s for s in candidate_steps(self.clock()) if s > user.totp_last_step]
        assert steps, "every code of this 90-second window was used: advance the clock"
        return self.runtime.totp.code_at(self.secrets[username], sorted(steps)[offset])

    def records(self) -> list[AuditRecord]:
        reader = open_audit_reader("noncde", env=self.env)
        try:
            return list(reader.all_records())
        finally:
            reader.close()

    def events(self, event_type: str) -> list[AuditRecord]:
        return [r for r in self.records() if r.event_type == event_type]

    def client(self) -> TestClient:
        return TestClient(
            create_app(self.runtime, manage_runtime=False), base_url="https://testserver"
        )

    def sign_in(self, client: TestClient, username: str) -> None:
        """Password, then a TOTP code, through the real pages."""
        page = client.get("/login")
        token = csrf_of(page.text)
        done = client.post(
            "/login",
            data={"csrf_token": token, "username": username, "password": self.passwords[username]},
            follow_redirects=False,
        )
        assert done.headers.get("location") == "/login/mfa", done.text
        page = client.get("/login/mfa")
        done = client.post(
            "/login/mfa",
            data={"csrf_token": csrf_of(page.text), "code": self.code(username)},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == "/", done.text

    def close(self) -> None:
        self.runtime.close()
        self.audit.close()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with an anti-forgery token"
    return found.group(1)


def make_harness(
    var: Path, *, store: str = "memory://", extra_env: Mapping[str, str] | None = None, **parts: Any
) -> Harness:
    env = {**dashboard_env(var, store=store), **(extra_env or {})}
    clock = parts.pop("clock", None) or SetClock()
    audit = open_audit_log("noncde", "dashboard", env=env)
    runtime = build_runtime(
        DashboardConfig.from_env(env),
        env=env,
        audit=audit,
        hasher=cheap_hasher(),
        viewer=AuditLogViewer(env=env),
        connect=False,
        clock=clock,
        **parts,
    )
    return Harness(runtime=runtime, audit=audit, env=env, clock=clock)
