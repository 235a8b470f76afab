"""The auditor CLI: each command's output and exit status, and every use recorded in the log."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.app import main
from audit.bootstrap import open_audit_log, open_audit_reader
from audit.domain import Actor, ActorType, AuditRecord, EventType, Outcome
from tests.integration.audit.conftest import AuditEnv

ROOT = Path(__file__).resolve().parents[3]


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def records(zone: str = "cde") -> list[AuditRecord]:
    reader = open_audit_reader(zone)
    found = list(reader.all_records())
    reader.close()
    return found


def populate() -> None:
    """A small day of both zones: card access, a refusal, admin actions, a key rotation."""
    with open_audit_log("cde", "vault") as vault:
        for n in range(12):
            vault.record(
                EventType.DETOKENIZE,
                actor=Actor("gateway", on_behalf_of="mer_42"),
                outcome=Outcome.SUCCESS,
                target=f"tok_{n:03d}",
                request_id=f"req_{n}",
            )
            time.sleep(0.002)  # distinct millisecond timestamps
        vault.record(EventType.KEY_ROTATE, actor="vault", outcome="success", target="key_2026")
    with open_audit_log("noncde", "dashboard") as dashboard:
        dashboard.record(
            EventType.MERCHANT_CONFIG_CHANGE,
            actor=Actor("alice", ActorType.USER),
            outcome="success",
            target="mer_42",
            origin_ip="192.0.2.10",
        )


def accesses(event_type: str) -> list[AuditRecord]:
    return [r for r in records() if r.event_type == event_type]


def test_verify_reports_ok_and_records_the_access(audit_env: AuditEnv) -> None:
    """verify prints a per-stream report, exits 0 and leaves an audit.verify record."""
    populate()
    code, out = run("verify")
    assert code == 0
    assert "cde/cde: records 1..16 (16)" in out
    assert "noncde/noncde: records 1..4 (4)" in out
    assert "Result: OK" in out
    (access,) = accesses("audit.verify")
    assert (access.actor.id, access.actor.type, access.outcome) == (
        "auditor.alice",
        "user",
        "success",
    )
    assert access.details["records"] == 20


def test_verify_failure_is_recorded_as_a_failure(audit_env: AuditEnv) -> None:
    """A failed verification exits 1 and its audit.verify record says failure."""
    populate()
    path = audit_env.records_file()
    path.write_bytes(path.read_bytes().replace(b"tok_004", b"tok_00X"))
    code, out = run("verify", "--zone", "cde")
    assert code == 1
    assert "modified_record at seq 7" in out
    assert accesses("audit.verify")[-1].outcome == "failure"


def test_search_filters_and_formats(audit_env: AuditEnv) -> None:
    """search filters by actor, type, outcome, target and time, as a table, JSON or CSV."""
    populate()
    code, out = run("search", "--by", "gateway", "--event-type", "card.*", "--format", "json")
    assert code == 0
    found = json.loads(out)
    assert [r["target"] for r in found] == [f"tok_{n:03d}" for n in range(12)]

    code, out = run("search", "--by", "mer_42", "--format", "csv")  # on behalf of
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 12
    assert {(r["event_type"], r["actor_id"], r["on_behalf_of"]) for r in rows} == {
        ("card.detokenize", "gateway", "mer_42")
    }

    code, out = run("search", "--target", "mer_42", "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out))
    assert (row["event_type"], row["actor_id"], row["origin_ip"]) == (
        "admin.merchant_config_change",
        "alice",
        "192.0.2.10",
    )

    middle = next(r for r in records() if r.target == "tok_006").time
    code, out = run("search", "--zone", "cde", "--from", middle, "--event-type", "card.detokenize")
    assert out.strip().endswith("6 record(s)")

    code, out = run("search", "--target", "key_2026", "--outcome", "success")
    assert "system.key_rotate" in out and out.strip().endswith("1 record(s)")

    code, out = run("search", "--outcome", "failure")
    assert out.strip().endswith("0 record(s)")

    logged = accesses("audit.search")
    assert len(logged) == 6
    assert logged[0].details["query"]["actor"] == "gateway"
    assert logged[0].details["results"] == 12


def test_review_exit_status_follows_the_findings(audit_env: AuditEnv) -> None:
    """review exits 0 for an ordinary day, 1 once something needs a person; both are logged."""
    populate()
    day = records()[0].time[:10]
    code, out = run("review", "--date", day, "--zone", "cde")
    assert code == 1  # the gateway has no detokenize history yet: a new caller
    assert "detokenize_volume" in out and "no detokenize by this caller" in out

    code, out = run("review", "--date", day, "--zone", "noncde")
    assert code == 0, out
    assert "admin_action" in out and "Result: nothing needs a person." in out

    with open_audit_log("noncde", "api") as api:
        api.record(
            EventType.SERVICE_IDENTITY_REFUSED,
            actor=Actor("unknown-caller", ActorType.ANONYMOUS),
            outcome="failure",
            reason="certificate not issued by the FinCore CA",
        )
    code, out = run("review", "--date", day, "--zone", "noncde", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["needs_attention"] is True
    assert any(
        f["check"] == "failed_access" for f in report["findings"] if f["severity"] == "attention"
    )
    completed = [r for r in records("noncde") if r.event_type == "log_review.completed"]
    assert [r.details["attention"] for r in completed] == [0, 1]


def test_export_bundle_verifies_elsewhere_and_tampering_is_caught(
    audit_env: AuditEnv, tmp_path: Path
) -> None:
    """export writes a bundle that verifies offline; changed bundles fail verify-bundle."""
    populate()
    day = records()[0].time[:10]
    bundle = tmp_path / "evidence"
    code, out = run("export", "--from", day, "--to", day, str(bundle))
    assert code == 0, out
    assert "Evidence bundle written to" in out
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {"records/cde/cde.jsonl", "checkpoints/cde/cde.jsonl", "verification.json"} <= set(
        manifest["files"]
    )
    (exported,) = accesses("audit.export")
    assert exported.details["records"] == sum(s["records_in_range"] for s in manifest["streams"])

    # Another machine: a copy of the folder, no FinCore settings, another working folder.
    elsewhere = tmp_path / "auditor-laptop" / "bundle"
    shutil.copytree(bundle, elsewhere)
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("FINCORE_", "AWS_"))}
    clean_env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "audit", "verify-bundle", str(elsewhere)],
        cwd=tmp_path / "auditor-laptop",
        env=clean_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Result: OK" in result.stdout

    records_file = elsewhere / "records" / "cde" / "cde.jsonl"
    records_file.write_bytes(records_file.read_bytes().replace(b"tok_003", b"tok_00Y"))
    code, out = run("verify-bundle", str(elsewhere))
    assert code == 1
    assert "SHA-256 differs" in out

    # Also fixing the manifest's hash does not help: the chain itself is broken.
    from audit.domain import digest_b64

    manifest_path = elsewhere / "manifest.json"
    fixed = json.loads(manifest_path.read_text())
    fixed["files"]["records/cde/cde.jsonl"]["sha256"] = digest_b64(records_file.read_bytes())
    manifest_path.write_text(json.dumps(fixed))
    code, out = run("verify-bundle", str(elsewhere), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["manifest_problems"] == []
    assert any(i["kind"] == "modified_record" for s in report["streams"] for i in s["issues"])


def test_bundle_of_a_later_range_is_anchored_at_a_signed_checkpoint(
    audit_env: AuditEnv, tmp_path: Path
) -> None:
    """A range that starts mid-log starts after a signed checkpoint and verifies from it."""
    populate()
    start = next(r for r in records() if r.target == "tok_010").time
    bundle = tmp_path / "late"
    assert (
        run("export", "--zone", "cde", "--from", start, "--to", "2999-01-01", str(bundle))[0] == 0
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    (stream,) = manifest["streams"]
    assert stream["anchor"]["seq"] == 10
    assert run("verify-bundle", str(bundle))[0] == 0
    assert run("verify-bundle", str(bundle), "--trust-key-id", "not-our-key")[0] == 1


def test_cli_fails_closed_when_the_access_cannot_be_recorded(
    audit_env: AuditEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """If the audit log cannot take the access record, nothing is shown and the exit is 2."""
    blocker = audit_env.var / "blocked"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the audit folder should be")
    monkeypatch.setenv("FINCORE_AUDIT_URL", f"file://{blocker}")
    for argv in (["verify"], ["search", "--by", "gateway"], ["review", "--date", "2026-01-01"]):
        code, out = run(*argv)
        assert code == 2
        assert out == ""
    assert "cannot record this access" in capsys.readouterr().err


def test_usage_errors_exit_2(audit_env: AuditEnv) -> None:
    """A missing required option is a usage error (exit 2), before anything is read."""
    with pytest.raises(SystemExit) as caught:
        main(["review"])
    assert caught.value.code == 2
    code, _out = run(
        "export", "--from", "2026-02-02", "--to", "2026-02-01", str(audit_env.var / "x")
    )
    assert code == 2


def test_fincore_audit_runs_the_same_cli(audit_env: AuditEnv) -> None:
    """`python -m fincore audit verify` is the same command (fincore execs python -m audit)."""
    populate()
    result = subprocess.run(
        [sys.executable, "-m", "fincore", "audit", "verify", "--zone", "cde"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Result: OK" in result.stdout
