"""The PostgreSQL sink fails closed when the database goes away and records the outage after."""

from __future__ import annotations

import json

import psycopg
import pytest

from audit.adapters.postgres import psycopg_dsn
from audit.bootstrap import open_audit_log, open_audit_reader
from audit.domain import AuditUnavailable, EventType
from fincore.netutil import free_port
from tests.integration.audit.conftest import AuditEnv

pytestmark = pytest.mark.postgres


def test_unreachable_database_refuses_to_open(audit_env: AuditEnv) -> None:
    """A process whose audit database is down cannot start unaudited."""
    with pytest.raises(AuditUnavailable):
        open_audit_log("cde", "vault", url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")


def test_lost_connection_fails_closed_then_recovers(audit_env: AuditEnv, pg_audit_url: str) -> None:
    """A killed connection makes the next record raise; the one after reconnects and logs it."""
    log = open_audit_log("cde", "vault")
    log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    with psycopg.connect(psycopg_dsn(pg_audit_url), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(AuditUnavailable):
        log.record(EventType.TOKENIZE, actor="ingress", outcome="success", target="tok_lost")
    log.record(EventType.TOKENIZE, actor="ingress", outcome="success", target="tok_after")
    log.close()
    reader = open_audit_reader("cde")
    rows = [json.loads(line) for line in reader.sink("cde").read("cde")]
    types = [r["event_type"] for r in rows]
    assert types[-3:] == ["audit.log_resume", "card.tokenize", "audit.log_stop"]
    assert "tok_lost" not in {r["target"] for r in rows}
    assert reader.verify().ok
