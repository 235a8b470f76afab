"""4 processes x 2,000 appends to one zone's log: every record present once, the chain verifies."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter

import pytest

from audit.bootstrap import open_audit_log, open_audit_reader
from audit.domain import EventType
from tests.integration.audit.conftest import AuditEnv

PROCESSES = 4
PER_PROCESS = 2000


def _writer(worker: int, env: dict[str, str]) -> None:
    # A separate interpreter (spawn): its own AuditLog, its own descriptors and locks.
    log = open_audit_log("cde", f"worker-{worker}", env=env)
    for n in range(PER_PROCESS):
        log.record(
            EventType.DETOKENIZE,
            actor="gateway",
            outcome="success",
            target=f"tok_{worker}_{n}",
            details={"worker": worker, "n": n},
        )
    log.close()


def run_writers(env: dict[str, str]) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(w, env)) for w in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    assert [p.exitcode for p in processes] == [0] * PROCESSES


def check_log(env: dict[str, str]) -> None:
    reader = open_audit_reader("cde", env=env)
    lines = list(reader.sink("cde").read("cde"))
    rows = [json.loads(line) for line in lines]
    # 8,000 records + log_init + a log_start and a log_stop per process, nothing else.
    assert len(rows) == PROCESSES * PER_PROCESS + 1 + 2 * PROCESSES
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    written = Counter(
        (r["details"]["worker"], r["details"]["n"])
        for r in rows
        if r["event_type"] == "card.detokenize"
    )
    assert set(written.values()) == {1}
    assert set(written) == {(w, n) for w in range(PROCESSES) for n in range(PER_PROCESS)}
    report = reader.verify()
    assert report.ok, report.issues
    stream = report.streams[0]
    assert stream.valid_checkpoints == stream.checkpoints > 0
    assert stream.last_checkpoint_seq == len(rows)
    reader.close()


@pytest.mark.parametrize("fsync", ["always", "batch"])
def test_processes_share_the_file_log_safely(audit_env: AuditEnv, fsync: str) -> None:
    """flock + one write per append: no lost, duplicated or interleaved records."""
    env = {**audit_env.env, "FINCORE_AUDIT_FSYNC": fsync, "FINCORE_AUDIT_CHECKPOINT_RECORDS": "500"}
    run_writers(env)
    check_log(env)


@pytest.mark.postgres
def test_processes_share_the_postgres_log_safely(audit_env: AuditEnv, pg_audit_url: str) -> None:
    """The advisory lock serialises appends of the zone across processes."""
    env = {
        **audit_env.env,
        "FINCORE_AUDIT_URL": pg_audit_url,
        "FINCORE_AUDIT_CHECKPOINT_RECORDS": "500",
    }
    run_writers(env)
    check_log(env)
