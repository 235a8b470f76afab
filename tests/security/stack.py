"""The whole platform as real processes for the security tests (issue #11 "Bad input").

`Stack` starts every component that exists with `fincore.runner.running` on free loopback
ports in one throw-away var folder (its own development CA, SQLite stores, file audit logs,
log files), seeds merchants through the components' own admin CLIs, and gives the tests what
an attacker or a legitimate peer would hold: HTTPS clients that trust the CA, service tokens
minted with the runner-issued keys, merchants' API keys, signed-in dashboard sessions, and a
read-only view of each zone's audit log to prove that refusals were recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pyotp

from audit.bootstrap import open_audit_reader
from audit.domain import AuditRecord
from audit.service import SearchQuery
from fincore.cards import luhn_valid
from fincore.identity import TOKEN_HEADER, ServiceCredentials
from fincore.netutil import free_port
from fincore.pki import issue_service_credentials
from fincore.runner import COMPONENTS, PROJECT_ROOT, Plan, Runner, available, component_env

# ---------------------------------------------------------------- canaries

# Published Amex test numbers with distinctive 4-digit CIDs: a 4-digit canary is long enough
# for the sweep's whole-token match (a 3-digit CVC would match durations and amounts).
BRAND_CANARIES = {
    "378282246310005": "7391",
    "371449635398431": "8264",
    "378734493671000": "6052",
}
# Other brands' published test PANs (no CVC canary attached).
OTHER_BRAND_PANS = ["4000056655665556", "5200828282828210", "6011111111111117"]
CVC_CANARIES = list(BRAND_CANARIES.values())


def synthetic_pan(prefix: str = "4") -> str:
    """A fresh Luhn-valid 16-digit number on a test BIN, new for every run (the sweep's
    "synthetic canary": it cannot be in any store unless this run put it there)."""
    import secrets

    body = prefix + "".join(str(secrets.randbelow(10)) for _ in range(15 - len(prefix)))
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def pan_forms(pan: str) -> list[str]:
    """The PAN raw, grouped by spaces and dashes, and inside text."""
    groups = [pan[i : i + 4] for i in range(0, len(pan), 4)]
    return [pan, " ".join(groups), "-".join(groups), f"ref {pan} thanks"]


# ---------------------------------------------------------------- the stack


@dataclass
class Merchant:
    name: str
    merchant_id: str
    secret_key: str


@dataclass
class StaffLogin:
    username: str
    role: str
    password: str
    totp_secret: str


@dataclass
class Stack:
    """The running platform: its plan, runner and helpers."""

    plan: Plan
    runner: Runner
    names: list[str]
    synthetic: list[str] = field(default_factory=list)
    merchants: dict[str, Merchant] = field(default_factory=dict)
    staff: dict[str, StaffLogin] = field(default_factory=dict)
    _credentials: dict[str, ServiceCredentials] = field(default_factory=dict)
    _sessions: dict[str, httpx.Client] = field(default_factory=dict)

    # ------------------------------------------------------------ basics

    @property
    def var(self) -> Path:
        return self.plan.var_dir

    @property
    def canaries(self) -> list[str]:
        """Every PAN and CVC canary of this run (the sweep's exact-match list)."""
        return [*BRAND_CANARIES, *OTHER_BRAND_PANS, *self.synthetic, *CVC_CANARIES]

    @property
    def pans(self) -> list[str]:
        return [*BRAND_CANARIES, *OTHER_BRAND_PANS, *self.synthetic]

    def url(self, name: str) -> str:
        return self.plan.url(name)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.plan.ca_file))

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(verify=self.ssl_context(), timeout=30.0, **kwargs)

    # ------------------------------------------------------------ service identities

    def credentials(self, name: str) -> ServiceCredentials:
        """The runner-issued key and certificate of service `name` (issued here for a name the
        runner does not start, in the zone `name` would have)."""
        found = self._credentials.get(name)
        if found is None:
            spec = COMPONENTS.get(name)
            zone = spec.zone if spec is not None else "noncde"
            files = issue_service_credentials(self.plan.pki_dir, name, zone)
            found = ServiceCredentials.from_files(files.key, files.cert)
            self._credentials[name] = found
        return found

    def token(self, caller: str, audience: str) -> str:
        return self.credentials(caller).token_for(audience)

    def headers(self, caller: str, audience: str) -> dict[str, str]:
        return {TOKEN_HEADER: self.token(caller, audience)}

    # ------------------------------------------------------------ CLIs

    def cli_env(self, component: str) -> dict[str, str]:
        env = component_env(COMPONENTS[component], self.plan, os.environ)
        for name in ("FINCORE_SERVICE_KEY_FILE", "FINCORE_SERVICE_CERT_FILE", "FINCORE_PARENT_PID"):
            env.pop(name, None)
        env["FINCORE_COMPONENT"] = f"{component}-cli"
        return env

    def cli(self, component: str, module: str, *args: str, extra: Mapping[str, str] = {}) -> Any:
        """Run a component's admin CLI with its zone's environment; its JSON output."""
        env = self.cli_env(component) | dict(extra)
        result = subprocess.run(
            [sys.executable, "-m", module, "admin", *args],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"{module} admin {args} failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout)

    def api_admin(self, *args: str) -> Any:
        return self.cli("api", "noncde.api.app", *args, extra={"FINCORE_ADMIN_ACTOR": "sec-ops"})

    def vault_admin(self, *args: str) -> Any:
        return self.cli(
            "vault", "cde.vault.app", "--json", *args, extra={"FINCORE_VAULT_OPERATOR": "sec-ops"}
        )

    def dashboard_admin(self, *args: str) -> Any:
        return self.cli(
            "dashboard", "noncde.dashboard.app", *args, extra={"FINCORE_ADMIN_ACTOR": "sec-ops"}
        )

    # ------------------------------------------------------------ merchants

    def create_merchant(
        self, label: str, *, directory_until: str | None, cde_until: str | None
    ) -> Merchant:
        """A merchant in the API's directory, with the raw-card capability until
        `directory_until` and an entry in the CDE's attestation register until `cde_until`."""
        made = self.api_admin("merchants", "create", "--name", f"Security {label}")
        merchant = Merchant(label, made["merchant"]["id"], made["secret_key"]["value"])
        if directory_until is not None:
            self.api_admin(
                "raw-card", "grant", merchant.merchant_id, "--attestation-expires", directory_until
            )
        if cde_until is not None:
            self.vault_admin("attest", merchant.merchant_id, "--expires", cde_until)
        self.merchants[label] = merchant
        return merchant

    # ------------------------------------------------------------ audit

    def audit_records(self, zone: str, **criteria: Any) -> list[AuditRecord]:
        reader = open_audit_reader(zone, env={"FINCORE_VAR_DIR": str(self.var)})
        try:
            return reader.search(SearchQuery(zones=(zone,), **criteria))
        finally:
            reader.close()

    def wait_for_audit(
        self, zone: str, timeout_s: float = 10.0, **criteria: Any
    ) -> list[AuditRecord]:
        """Audit records of `zone` matching `criteria`, waiting for batched writes to land."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.audit_records(zone, **criteria)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    # ------------------------------------------------------------ dashboard

    def staff_session(self, role: str) -> httpx.Client:
        """A signed-in dashboard session of the demo account of `role` (password + TOTP)."""
        client = self._sessions.get(role)
        if client is not None:
            return client
        login = self.staff[role]
        base = self.url("dashboard")
        client = self.client(base_url=base, headers={"Origin": base})
        page = client.get("/login")
        done = client.post(
            "/login",
            data={
                "csrf_token": csrf_of(page.text),
                "username": login.username,
                "password": login.password,
            },
        )
        assert done.status_code == 303 and done.headers["location"] == "/login/mfa", done.text
        page = client.get("/login/mfa")
        code = pyotp.TOTP(login.totp_secret).now()
        done = client.post("/login/mfa", data={"csrf_token": csrf_of(page.text), "code": code})
        assert done.status_code == 303 and done.headers["location"] == "/", done.text
        self._sessions[role] = client
        return client

    def close_sessions(self) -> None:
        for client in self._sessions.values():
            client.close()
        self._sessions.clear()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with an anti-forgery token"
    return found.group(1)


def free_ports() -> dict[str, int]:
    return {name: free_port() for name in [*COMPONENTS, "psp-sftp"]}


# Settings of this run (each zone sees only its own prefixes; the runner filters them):
# the fuzzers send bursts that the production rate limits would (rightly) answer with 429.
RUN_SETTINGS = {
    "FINCORE_VAULT_RATE_PER_S": "10000",
    "FINCORE_VAULT_RATE_BURST": "100000",
    "FINCORE_API_RATE_LIMIT_PER_S": "100000",
}


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def running_stack(var_dir: Path) -> Iterator[Stack]:
    """Start every component, seed merchants and staff, yield; stop everything afterwards."""
    from fincore.runner import running

    plan = Plan(var_dir=var_dir, ports=free_ports())
    out_dir = var_dir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    names = available()
    out: IO[str]
    with (
        _environment(RUN_SETTINGS),
        (out_dir / "runner.out").open("w", encoding="utf-8") as out,
        running(plan, names, out=out) as runner,
    ):
        stack = Stack(plan=plan, runner=runner, names=names)
        stack.synthetic = [synthetic_pan("4"), synthetic_pan("51")]
        try:
            seed(stack)
            yield stack
        finally:
            stack.close_sessions()


def seed(stack: Stack) -> None:
    """Merchants for every raw-card decision, and one demo staff account per role."""
    today = datetime.now(UTC).date()
    later = (today + timedelta(days=365)).isoformat()
    past = (today - timedelta(days=1)).isoformat()
    stack.create_merchant("raw", directory_until=later, cde_until=later)
    stack.create_merchant("raw_other", directory_until=later, cde_until=later)
    stack.create_merchant("sdk_only", directory_until=None, cde_until=later)
    stack.create_merchant("cde_expired", directory_until=later, cde_until=past)
    stack.create_merchant("cde_missing", directory_until=later, cde_until=None)
    lapsed = stack.create_merchant("directory_expired", directory_until=later, cde_until=later)
    lapse_directory_attestation(stack, lapsed.merchant_id, past)
    if "dashboard" in stack.names:
        shown = stack.dashboard_admin("demo-login")
        for account in shown["accounts"]:
            stack.staff[account["role"]] = StaffLogin(
                account["username"], account["role"], account["password"], account["totp_secret"]
            )


def lapse_directory_attestation(stack: Stack, merchant_id: str, expired_on: str) -> None:
    """Let the directory's attestation of a merchant lapse (the directory refuses to grant a
    past date, so time passing is simulated by moving the stored expiry into the past). The
    API's authentication cache holds an answer for at most a second."""
    with sqlite3.connect(stack.var / "noncde" / "api.db") as conn:
        changed = conn.execute(
            "UPDATE merchant_capabilities SET attestation_expires_on = ? "
            "WHERE merchant_id = ? AND name = 'raw_card_data'",
            (expired_on, merchant_id),
        ).rowcount
    assert changed == 1
    time.sleep(1.5)


def today() -> date:
    return datetime.now(UTC).date()
