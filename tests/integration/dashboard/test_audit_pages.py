"""The auditor's pages over the real file audit log: search, record view, chain verification
(and a tampered log shown as FAILED), evidence export that verifies offline; every read is
itself audited (PCI DSS 10.2.1.3) and nothing shown holds a card number."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.bootstrap import verify_evidence
from fincore.pan_sweep import sweep_path, sweep_text
from tests.unit.dashboard.support import Harness, csrf_of, make_harness

CANARY = "4000056655665556"  # a published test card number, to prove it never shows up


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    var = tmp_path / "var"
    made = make_harness(var, extra_env={"FINCORE_NONCDE_AUDIT_URL": f"file://{var / 'audit'}"})
    made.add_user("audrey", "auditor")
    made.add_user("adam", "admin")
    yield made
    made.close()


def test_search_view_verify_and_export_are_audited_and_clean(
    harness: Harness, tmp_path: Path
) -> None:
    """An auditor finds a failed login, opens the record, sees the chain verified and exports
    a bundle that verifies offline; each of these is an audit record; no page or file holds
    a card number even though one was typed as a user name."""
    typed = harness.client()
    page = typed.get("/login")
    refused = typed.post(
        "/login", data={"csrf_token": csrf_of(page.text), "username": CANARY, "password": "x"}
    )
    assert refused.status_code == 400  # the card-data guard: never reaches the login
    typed.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "username": "not\ta name", "password": "x"},
    )
    client = harness.client()
    harness.sign_in(client, "audrey")
    shown: list[str] = []
    audit_page = client.get("/audit")
    shown.append(audit_page.text)
    assert 'id="verify-status"' in audit_page.text and "OK:" in audit_page.text
    found = client.get("/audit?search=1&event_type=access.authentication_failure")
    shown.append(found.text)
    assert "invalid_user_name" in found.text
    link = found.text.split('href="/audit/records/')[1].split('"')[0]
    record = client.get(f"/audit/records/{link}")
    shown.append(record.text)
    assert "access.authentication_failure" in record.text
    export = client.post(
        "/audit/export",
        data={"csrf_token": csrf_of(audit_page.text), "from": "2000-01-01", "to": "2100-01-01"},
    )
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    assert "attachment" in export.headers["content-disposition"]
    folder = tmp_path / "bundle"
    with zipfile.ZipFile(io.BytesIO(export.content)) as bundle:
        bundle.extractall(folder)
    (root,) = list(folder.iterdir())
    report = verify_evidence(root)
    assert report.ok, report.to_dict()
    for text in shown:
        assert sweep_text(text, [CANARY]) == []
    assert sweep_path(folder, [CANARY]) == []
    reads = [r.event_type for r in harness.records() if r.actor.id == "audrey"]
    for kind in ("audit.verify", "audit.search", "audit.read", "audit.export"):
        assert kind in reads, kind
    exported = harness.events("audit.export")[-1]
    assert exported.details["manifest_sha256"] == export.headers["x-evidence-manifest-sha256"]
    assert not list(harness.runtime.config.export_dir.glob("*.zip")), "the zip is not kept"


def test_a_tampered_log_shows_failed_verification(harness: Harness, tmp_path: Path) -> None:
    """Editing one stored record makes the page say FAILED with the first bad record."""
    client = harness.client()
    harness.sign_in(client, "audrey")
    log = tmp_path / "var" / "audit" / "noncde" / "records.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"outcome":"success"', b'"outcome":"failure"', 1)
    assert b'"outcome":"failure"' in lines[2]
    log.write_bytes(b"".join(lines))
    page = client.get("/audit")
    assert "FAILED" in page.text and "first bad record" in page.text


def test_admins_cannot_read_the_audit_log(harness: Harness) -> None:
    """Read access is limited to auditors (PCI DSS 10.3.1): an admin gets 403, audited."""
    client = harness.client()
    harness.sign_in(client, "adam")
    assert client.get("/audit").status_code == 403
    assert client.get("/audit?search=1").status_code == 403
    denied = harness.events("access.denied")
    assert denied[-1].actor.id == "adam" and denied[-1].target == "/audit"
