"""Fixtures for the audit integration tests; every log they write gets a PAN sweep afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.audit.sweep import sweep_files, sweep_postgres


@dataclass(frozen=True)
class AuditEnv:
    """A private var/ folder and the environment that points every opener at it."""

    var: Path
    env: dict[str, str]

    @property
    def audit_dir(self) -> Path:
        return self.var / "audit"

    def records_file(self, zone: str = "cde") -> Path:
        return self.audit_dir / zone / "records.jsonl"

    def checkpoints_file(self, zone: str = "cde") -> Path:
        return self.audit_dir / zone / "checkpoints.jsonl"


@pytest.fixture
def audit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditEnv]:
    """FINCORE_VAR_DIR in tmp, checkpoints every 10 records; a PAN sweep of var/audit after."""
    var = tmp_path / "var"
    env = {
        "FINCORE_VAR_DIR": str(var),
        "FINCORE_ENV": "test",
        "FINCORE_AUDIT_CHECKPOINT_RECORDS": "10",
        "FINCORE_AUDIT_CHECKPOINT_SECONDS": "0",
        "FINCORE_AUDIT_ACTOR": "auditor.alice",
    }
    for name in ("FINCORE_AUDIT_URL", "FINCORE_CDE_AUDIT_URL", "FINCORE_NONCDE_AUDIT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield AuditEnv(var, env)
    # PCI DSS 3.3.1/3.4.1: nothing these tests wrote holds a card number.
    assert sweep_files(var / "audit") == []


@pytest.fixture
def pg_audit_url(
    fresh_postgres_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An empty database used as the audit sink of both zones; swept for card numbers after."""
    from audit.adapters.postgres import psycopg_dsn

    url = fresh_postgres_url()
    monkeypatch.setenv("FINCORE_AUDIT_URL", url)
    yield url
    assert sweep_postgres(psycopg_dsn(url)) == []
