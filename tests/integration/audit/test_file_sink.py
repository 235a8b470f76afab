"""The file sink after crashes and under interference: repair what a crash left, fail closed."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from audit.bootstrap import open_audit_log, open_audit_reader
from audit.domain import AuditIntegrityError, AuditUnavailable, EventType
from tests.integration.audit.conftest import AuditEnv
from tests.unit.audit import tamper


def events(env: AuditEnv) -> list[str]:
    return [json.loads(line)["event_type"] for line in env.records_file().read_bytes().splitlines()]


def write(n: int) -> None:
    with open_audit_log("cde", "vault") as log:
        for i in range(n):
            log.record(EventType.TOKENIZE, actor="ingress", outcome="success", target=f"tok_{i}")


def test_torn_tail_is_reported_then_moved_aside_by_the_next_writer(audit_env: AuditEnv) -> None:
    """A crash's partial line fails verification; the next writer quarantines it and says so."""
    write(3)
    lines = audit_env.records_file().read_bytes().splitlines(keepends=True)
    fragment = tamper.forged_after(lines, len(lines))[:100]
    with audit_env.records_file().open("ab") as handle:
        handle.write(fragment)
    before = open_audit_reader("cde").verify()
    assert [i.kind.value for i in before.streams[0].issues] == ["torn_tail"]

    write(1)
    assert "audit.log_recover" in events(audit_env)
    recovered = next(
        json.loads(line)
        for line in audit_env.records_file().read_bytes().splitlines()
        if b"audit.log_recover" in line
    )
    moved = audit_env.audit_dir / "cde" / recovered["details"]["moved_to"]
    assert moved.read_bytes() == fragment
    assert recovered["details"]["bytes"] == len(fragment)
    assert open_audit_reader("cde").verify().ok


def test_log_deleted_under_a_running_writer_fails_closed(audit_env: AuditEnv) -> None:
    """If records.jsonl disappears, the writer refuses rather than start a new chain over it."""
    log = open_audit_log("cde", "vault")
    log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    audit_env.records_file().unlink()
    with pytest.raises(AuditUnavailable) as caught:
        log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    assert isinstance(caught.value, AuditIntegrityError)
    log.close()  # the stop record cannot be written either; close still releases everything


def test_a_new_writer_refuses_a_log_whose_records_were_deleted(audit_env: AuditEnv) -> None:
    """Checkpoints without records mean the log was deleted: opening fails closed."""
    write(12)
    audit_env.records_file().unlink()
    with pytest.raises(AuditIntegrityError):
        open_audit_log("cde", "vault")


def test_replaced_file_is_followed_and_flagged(audit_env: AuditEnv) -> None:
    """An editor replacing the file (new inode) is followed, with an integrity alert recorded."""
    log = open_audit_log("cde", "vault")
    log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    copy = audit_env.records_file().with_suffix(".copy")
    shutil.copy(audit_env.records_file(), copy)
    os.replace(copy, audit_env.records_file())
    log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    log.close()
    alerts = [
        json.loads(line)
        for line in audit_env.records_file().read_bytes().splitlines()
        if b"audit.integrity_alert" in line
    ]
    assert [a["details"]["kind"] for a in alerts] == ["log_file_replaced"]
    assert open_audit_reader("cde").verify().ok


def test_a_tail_that_went_back_is_recorded(audit_env: AuditEnv) -> None:
    """Records cut off under a running writer: it carries on and records an integrity alert."""
    log = open_audit_log("cde", "vault")
    for i in range(5):
        log.record(EventType.TOKENIZE, actor="ingress", outcome="success", target=f"tok_{i}")
    lines = audit_env.records_file().read_bytes().splitlines(keepends=True)
    audit_env.records_file().write_bytes(b"".join(lines[:4]))  # same inode, shorter
    log.record(EventType.TOKENIZE, actor="ingress", outcome="success")
    log.close()
    alert = next(
        json.loads(line)
        for line in audit_env.records_file().read_bytes().splitlines()
        if b"audit.integrity_alert" in line
    )
    assert alert["details"] == {"kind": "tail_regressed", "expected_at_least": 7, "found": 4}


def test_unreadable_last_record_fails_closed(audit_env: AuditEnv) -> None:
    """A garbled last line is not guessed around: the writer refuses until a person looks."""
    write(2)
    with audit_env.records_file().open("ab") as handle:
        handle.write(b"{garbage}\n")
    with pytest.raises(AuditIntegrityError):
        open_audit_log("cde", "vault")
