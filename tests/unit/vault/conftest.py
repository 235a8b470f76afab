"""Fixtures for the vault's unit tests: a real audit log (memory sink) and a wired vault."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.adapters.memory import named_store
from audit.bootstrap import open_audit_log
from audit.domain import Actor, ActorType
from audit.service import AuditLog
from cde.vault.bootstrap import VaultRuntime, build_vault
from cde.vault.config import VaultSettings

CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
AMEX = {"number": "3782-822463-10005", "exp_month": 1, "exp_year": 2032, "cvc": "7391"}


class AuditTap:
    """Reads back what the vault wrote to its (memory-sink) CDE audit log."""

    def __init__(self, log: AuditLog, name: str) -> None:
        self.log = log
        self.name = name

    def records(self) -> list[dict[str, Any]]:
        store = named_store(self.name, "cde")
        with store.lock:
            lines = list(store.records.get("cde", []))
        return [json.loads(line) for line in lines]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["event_type"] == event_type]


@pytest.fixture
def audit_tap(tmp_path: Path) -> Iterator[AuditTap]:
    """A real `AuditLog` on a private in-memory sink (checkpoint key under tmp_path)."""
    name = "vault-" + secrets.token_hex(6)
    env = {"FINCORE_VAR_DIR": str(tmp_path), "FINCORE_ENV": "test"}
    log = open_audit_log("cde", "vault-test", url=f"memory://{name}", env=env)
    try:
        yield AuditTap(log, name)
    finally:
        log.close()


class Clock:
    """A settable UTC clock for clock-travel tests."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Wired:
    runtime: VaultRuntime
    audit: AuditTap
    clock: Clock
    var: Path

    def run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)


def vault_settings(var: Path, **overrides: str) -> VaultSettings:
    env = {
        "FINCORE_VAR_DIR": str(var),
        "FINCORE_ENV": "test",
        "FINCORE_VAULT_DB_URL": "memory://",
        "FINCORE_VAULT_RATE_PER_S": "1000",
        "FINCORE_VAULT_RATE_BURST": "1000",
    }
    env.update(overrides)
    return VaultSettings.from_env(env)


@pytest.fixture
def make_vault(tmp_path: Path, audit_tap: AuditTap) -> Callable[..., Wired]:
    """Build a vault (memory store, key file under tmp_path) with attested merchants."""

    def make(**overrides: str) -> Wired:
        clock = Clock()
        runtime = build_vault(
            vault_settings(tmp_path, **overrides), clock=clock, audit=audit_tap.log
        )

        async def start() -> None:
            await runtime.start()
            admin = runtime.admin(Actor("tester", ActorType.USER))
            for merchant in ("mer_a", "mer_b"):
                await admin.attest(merchant, date(2030, 1, 1))

        asyncio.run(start())
        return Wired(runtime, audit_tap, clock, tmp_path)

    return make
