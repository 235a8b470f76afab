"""The dashboard wired to the real platform: the merchant API as a process over TLS (staff
commands with the dashboard's service identity), PaymentDB and LedgerDB built by the
projectionist's code, the platform's event store and job queue, WebhookDB and reconciliation
reports of the workers, and the shared audit log. Every page rendered is swept for card
numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit.bootstrap import open_audit_log
from fincore.pan_sweep import sweep_text
from noncde.api.domain import charge_stream
from noncde.dashboard.bootstrap import build_runtime
from noncde.dashboard.config import DashboardConfig
from noncde.dashboard.domain import Role, SelfApproval, StaffUser, UserStatus
from noncde.dashboard.service import Origin
from noncde.platform.bootstrap import build_platform
from noncde.workers.adapters.files import FileReportStore
from noncde.workers.config import WorkersConfig
from noncde.workers.domain.reconciliation import Finding, FindingKind, Report
from tests.integration.dashboard.seed import (
    SeededCharge,
    project,
    seed_charges,
    seed_dead_letter,
    seed_merchant,
    seed_webhook_deliveries,
)
from tests.integration.dashboard.world import World
from tests.unit.dashboard.support import Harness, SetClock, cheap_hasher, csrf_of

pytestmark = pytest.mark.e2e

# Published test card numbers: the seeded cards end in their last four; the full numbers
# must never appear anywhere the dashboard shows.
CANARIES = ["4242424242424242", "4000056655665556", "5555555555554444"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    made = World(tmp_path_factory.mktemp("dash-world") / "var")
    env = made.env("dashboard")
    merchant = seed_merchant(made.env("api"), "Blue Bottle Books")
    other = seed_merchant(made.env("api"), "Green Grocer")
    charges = seed_charges(
        env,
        merchant,
        [
            (2500, "usd", "4242", "succeeded", 0),
            (1299, "usd", "5556", "succeeded", 1),
            (4000, "usd", "0002", "failed", 1),
            (700, "eur", "4444", "succeeded", 3),
        ],
    )
    charges += seed_charges(env, other, [(990, "usd", "4242", "succeeded", 2)])
    project(env)
    dead_job = seed_dead_letter(env, charges[2])
    endpoint = seed_webhook_deliveries(made.env("api"), env, merchant)
    made.start("api")
    try:
        yield {
            "world": made,
            "merchant": merchant,
            "other": other,
            "charges": charges,
            "dead_job": dead_job,
            "endpoint": endpoint,
        }
    finally:
        made.stop()


@pytest.fixture
def harness(world: dict[str, Any]) -> Iterator[Harness]:
    made: World = world["world"]
    env = made.env("dashboard")
    clock = SetClock()
    audit = open_audit_log("noncde", "dashboard", env=env)
    runtime = build_runtime(
        DashboardConfig.from_env(env),
        env=env,
        audit=audit,
        hasher=cheap_hasher(),
        credentials=made.credentials("dashboard"),
        ca_file=made.plan.ca_file,
        clock=clock,
    )
    harness = Harness(runtime=runtime, audit=audit, env=env, clock=clock)
    suffix = datetime.now(UTC).strftime("%H%M%S%f")
    for role in ("support", "finance", "auditor", "admin"):
        harness.add_user(f"{role}.{suffix}", role)
    harness.suffix = suffix  # type: ignore[attr-defined]
    yield harness
    harness.close()


def _as(harness: Harness, role: str) -> TestClient:
    client = harness.client()
    harness.sign_in(client, f"{role}.{harness.suffix}")  # type: ignore[attr-defined]
    return client


def _clean(*pages: str) -> None:
    for page in pages:
        assert sweep_text(page, CANARIES) == [], "a rendered page holds a card number"


def test_support_finds_a_payment_by_each_criterion_and_sees_its_timeline(
    harness: Harness, world: dict[str, Any]
) -> None:
    """Search by last 4, merchant + status, amount, id and date range; the payment page
    shows the masked card, the amounts and the timeline of its events."""
    client = _as(harness, "support")
    charges: list[SeededCharge] = world["charges"]
    by_last4 = client.get("/payments?last4=4242")
    assert charges[0].id in by_last4.text and charges[4].id in by_last4.text
    assert charges[1].id not in by_last4.text
    failed = client.get(f"/payments?merchant_id={world['merchant']}&status=failed")
    assert charges[2].id in failed.text and charges[0].id not in failed.text
    by_amount = client.get("/payments?amount=12.99&currency=usd")
    assert charges[1].id in by_amount.text and charges[0].id not in by_amount.text
    # The day the first charge was seeded on (not today: a run just after midnight UTC
    # seeded it the day before and failed here once).
    day = charges[0].created.date().isoformat()
    recent = client.get(f"/payments?from={day}&to={day}")
    assert charges[0].id in recent.text and charges[3].id not in recent.text
    none = client.get("/payments?last4=9999")
    assert 'id="no-results"' in none.text
    bad = client.get("/payments?last4=42")
    assert "exactly four digits" in bad.text
    page = client.get(f"/payments/{charges[0].id}")
    assert page.status_code == 200
    assert "Visa \u2022\u2022\u2022\u2022 4242 (exp 12/2031)" in page.text
    assert "25.00 USD" in page.text
    for kind in (
        "charge.requested",
        "charge.risk_assessed",
        "charge.authorized",
        "charge.captured",
    ):
        assert kind in page.text
    assert "tok_" not in page.text and "400000" not in page.text and "fp4242" not in page.text
    _clean(by_last4.text, failed.text, by_amount.text, recent.text, page.text)


def test_a_refund_needs_support_to_ask_and_finance_to_approve(
    harness: Harness, world: dict[str, Any]
) -> None:
    """Support asks (finance approval pending); support cannot approve; finance approves;
    the API records refund.requested on the charge stream with a refund.execute job; both
    sides audit the two people."""
    charge: SeededCharge = world["charges"][1]
    support = _as(harness, "support")
    page = support.get(f"/payments/{charge.id}")
    assert 'id="refund-request-form"' in page.text
    asked = support.post(
        f"/payments/{charge.id}/refund-requests",
        data={
            "csrf_token": csrf_of(page.text),
            "amount": "5.00",
            "category": "requested_by_customer",
            "reason": "parcel never arrived",
        },
        follow_redirects=False,
    )
    assert asked.status_code == 303 and "waits+for+a+finance" in asked.headers["location"].replace(
        "%20", "+"
    )
    (request,) = harness.runtime.store.list_refund_requests(charge_id=charge.id)
    listing = support.get("/refunds")
    assert request.id in listing.text and "Approve" not in listing.text
    denied = support.post(
        f"/refunds/{request.id}/approve", data={"csrf_token": csrf_of(listing.text)}
    )
    assert denied.status_code == 403
    finance = _as(harness, "finance")
    queue = finance.get("/refunds")
    approved = finance.post(
        f"/refunds/{request.id}/approve",
        data={"csrf_token": csrf_of(queue.text)},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    done = harness.runtime.store.get_refund_request(request.id)
    assert done is not None and done.status.value == "submitted" and done.refund_id
    platform = build_platform(env=harness.env)
    try:
        types = [e.type for e in platform.events.read_stream(charge_stream(charge.id))]
        assert types[-1] == "refund.requested"
        assert platform.jobs.counts().ready >= 1
    finally:
        platform.close()
    detail = finance.get(f"/payments/{charge.id}")
    assert done.refund_id in detail.text and "pending" in detail.text
    steps = [
        (r.details["step"], r.actor.id)
        for r in harness.events("admin.refund")
        if r.details.get("refund_request") == request.id
    ]
    assert steps == [
        ("requested", f"support.{harness.suffix}"),  # type: ignore[attr-defined]
        ("approved", f"finance.{harness.suffix}"),  # type: ignore[attr-defined]
        ("submitted", f"finance.{harness.suffix}"),  # type: ignore[attr-defined]
    ]
    api_side = [
        r for r in harness.events("admin.refund") if r.component == "api" and r.target == charge.id
    ]
    assert api_side and api_side[-1].details["requested_by"] == f"support.{harness.suffix}"  # type: ignore[attr-defined]
    # Approving again (a double click) changes nothing.
    again = finance.post(f"/refunds/{request.id}/approve", data={"csrf_token": csrf_of(queue.text)})
    assert again.status_code == 409
    _clean(page.text, listing.text, queue.text, detail.text)


def test_nobody_approves_their_own_refund(harness: Harness, world: dict[str, Any]) -> None:
    """The four-eyes rule holds in the service even for an account allowed to approve, and
    the refused attempt is audited."""
    charge: SeededCharge = world["charges"][0]
    refunds = harness.runtime.refunds
    assert refunds is not None
    asker = harness.runtime.store.find_user(f"support.{harness.suffix}")  # type: ignore[attr-defined]
    assert asker is not None
    request = refunds.request(asker, charge.id, 100, "goodwill", Origin())
    same_person = replace(asker, role=Role.FINANCE)
    with pytest.raises(SelfApproval):
        refunds.approve(same_person, request.id, Origin())
    refused = harness.events("admin.refund")[-1]
    assert refused.outcome == "failure" and refused.reason == "self_approval"
    stranger = StaffUser("stf_x", "not.asker", Role.FINANCE, UserStatus.ACTIVE, datetime.now(UTC))
    assert refunds.reject(stranger, request.id, "not needed", Origin()).status.value == "rejected"


def test_admin_rotates_and_revokes_keys_and_grants_raw_card_data(
    harness: Harness, world: dict[str, Any]
) -> None:
    """Through the API's staff commands: a rotation shows the new key once; the old key gets
    an expiry; revocation and the raw_card_data grant show up; every change is audited by
    the dashboard and by the API under the admin's name."""
    admin = _as(harness, "admin")
    listing = admin.get("/merchants")
    assert world["merchant"] in listing.text and "Blue Bottle Books" in listing.text
    page = admin.get(f"/merchants/{world['merchant']}")
    assert page.status_code == 200 and "not granted" in page.text
    details = harness.runtime.commands.merchant(world["merchant"])  # type: ignore[union-attr]
    secret = next(k for k in details["keys"] if k["kind"] == "secret")
    rotated = admin.post(
        f"/merchants/{world['merchant']}/keys/{secret['id']}/rotate",
        data={"csrf_token": csrf_of(page.text), "overlap_hours": "1", "next": "/"},
    )
    assert rotated.status_code == 200 and 'id="new-key"' in rotated.text
    new_value = rotated.text.split('id="new-key">')[1].split("<")[0]
    assert new_value.startswith("sk_test_")
    again = admin.get(f"/merchants/{world['merchant']}")
    assert new_value not in again.text, "the new key is shown once only"
    after = harness.runtime.commands.merchant(world["merchant"])  # type: ignore[union-attr]
    old = next(k for k in after["keys"] if k["id"] == secret["id"])
    assert old["expires_at"] is not None
    revoked = admin.post(
        f"/merchants/{world['merchant']}/keys/{secret['id']}/revoke",
        data={"csrf_token": csrf_of(page.text), "reason": "leaked in a ticket"},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    expires = (datetime.now(UTC).date() + timedelta(days=200)).isoformat()
    granted = admin.post(
        f"/merchants/{world['merchant']}/raw-card",
        data={
            "csrf_token": csrf_of(page.text),
            "action": "grant",
            "attestation_expires_on": expires,
            "reason": "AOC 2026 ref 77",
        },
        follow_redirects=False,
    )
    assert granted.status_code == 303
    shown = admin.get(f"/merchants/{world['merchant']}")
    assert f"attestation expires {expires}" in shown.text and "active" in shown.text
    admin_name = f"admin.{harness.suffix}"  # type: ignore[attr-defined]
    mine = {(r.component, r.event_type) for r in harness.records() if r.actor.id == admin_name}
    for event in (
        "identity.api_key_rotate",
        "identity.api_key_revoke",
        "admin.raw_card_api_enable",
    ):
        assert ("dashboard", event) in mine, event
        assert ("api", event) in mine, event
    _clean(listing.text, page.text, again.text, shown.text)


def test_admin_sees_the_delivery_log_and_redelivers(
    harness: Harness, world: dict[str, Any]
) -> None:
    """The merchant page lists the webhook deliveries of its endpoint (from the workers'
    WebhookDB); redelivery starts a new attempt series and is audited."""
    admin = _as(harness, "admin")
    page = admin.get(f"/merchants/{world['merchant']}")
    assert world["endpoint"] in page.text and 'id="deliveries"' in page.text
    assert "charge.captured" in page.text
    webhooks = harness.runtime.webhooks
    assert webhooks is not None
    first = webhooks.deliveries([world["endpoint"]])[0]
    assert first.series == 1
    done = admin.post(
        f"/merchants/{world['merchant']}/deliveries/{first.id}/redeliver",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    again = next(d for d in webhooks.deliveries([world["endpoint"]]) if d.id == first.id)
    assert again.series == 2 and again.status == "pending"
    record = harness.events("admin.merchant_config_change")[-1]
    assert record.details["action"] == "webhook_redeliver" and record.details["restarted"] == 1
    other = admin.post(
        f"/merchants/{world['other']}/deliveries/{first.id}/redeliver",
        data={"csrf_token": csrf_of(page.text)},
    )
    assert other.status_code == 404, "a delivery of another merchant is not found"
    _clean(page.text)


def test_operations_shows_the_dead_letter_with_its_reason_and_replays_it(
    harness: Harness, world: dict[str, Any]
) -> None:
    """The DLQ lists the job and why it died; replay puts it back on the queue (audited);
    projection positions are shown against the event store's head."""
    admin = _as(harness, "admin")
    page = admin.get("/operations")
    job = world["dead_job"]
    assert job in page.text and "connect timeout" in page.text
    assert "PaymentDB (payments)" in page.text and "LedgerDB (ledger)" in page.text
    replayed = admin.post(
        "/operations/dlq/replay",
        data={"csrf_token": csrf_of(page.text), "job_id": job},
        follow_redirects=False,
    )
    assert replayed.status_code == 303 and "1+job" in replayed.headers["location"].replace(
        "%20", "+"
    )
    after = admin.get("/operations")
    assert f'id="job-{job}"' not in after.text
    record = harness.events("admin.action")[-1]
    assert record.details["action"] == "dlq_replay" and record.details["jobs"] == [job]
    again = admin.post(
        "/operations/dlq/replay", data={"csrf_token": csrf_of(after.text), "job_id": job}
    )
    assert again.status_code == 400
    _clean(page.text, after.text)


def test_finance_sees_balances_trial_balance_charts_and_reconciliation(
    harness: Harness, world: dict[str, Any]
) -> None:
    """Balances per merchant and currency from LedgerDB, a balanced trial balance, SVG charts
    of volume and approval rate, and a reconciliation report whose mismatch finance marks
    resolved (audited; a note is required; other roles are refused)."""
    reports = FileReportStore(WorkersConfig.from_env(harness.env).reports_dir)
    day = datetime.now(UTC).date() - timedelta(days=1)
    reports.write(
        Report(
            day=day,
            source="sftp://psp/settlements",
            lines=3,
            matched=2,
            findings=[
                Finding(
                    FindingKind.AMOUNT_MISMATCH,
                    "pi_demo_ref_1",
                    type="charge",
                    settlement_amount=1300,
                    ledger_amount=1299,
                    settlement_currency="usd",
                    ledger_currency="usd",
                    detail="amounts differ",
                )
            ],
        )
    )
    finance = _as(harness, "finance")
    page = finance.get("/finance")
    assert page.status_code == 200
    assert world["merchant"] in page.text and "balanced" in page.text
    assert "NOT balanced" not in page.text
    assert page.text.count("<svg") >= 2 and "Daily approval rate, USD" in page.text
    assert "amount_mismatch" in page.text and "pi_demo_ref_1" in page.text
    assert 'class="status resolution pending">open<' in page.text
    vague = finance.post(
        f"/finance/reconciliation/{day.isoformat()}/resolve",
        data={
            "csrf_token": csrf_of(page.text),
            "key": "amount_mismatch:pi_demo_ref_1",
            "status": "resolved",
        },
    )
    assert vague.status_code == 400 and "how it was resolved" in vague.text
    done = finance.post(
        f"/finance/reconciliation/{day.isoformat()}/resolve",
        data={
            "csrf_token": csrf_of(page.text),
            "key": "amount_mismatch:pi_demo_ref_1",
            "status": "resolved",
            "note": "PSP fee rounding, credit note 118",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    after = finance.get("/finance")
    assert 'class="status resolution succeeded">resolved<' in after.text
    assert "PSP fee rounding, credit note 118" in after.text
    record = harness.events("admin.action")[-1]
    assert record.details["action"] == "reconciliation_resolution"
    assert record.target == "pi_demo_ref_1" and record.details["status"] == "resolved"
    unknown = finance.post(
        f"/finance/reconciliation/{day.isoformat()}/resolve",
        data={"csrf_token": csrf_of(page.text), "key": "missing_at_psp:nope", "status": "open"},
    )
    assert unknown.status_code == 404
    support = _as(harness, "support")
    refused = support.post(
        f"/finance/reconciliation/{day.isoformat()}/resolve",
        data={"csrf_token": csrf_of(support.get("/").text), "key": "x", "status": "open"},
    )
    assert refused.status_code == 403
    _clean(page.text, after.text)


def test_other_roles_get_403_on_the_connected_pages(
    harness: Harness, world: dict[str, Any]
) -> None:
    """Least privilege on real data: support cannot open merchants or finance, the auditor
    cannot see payments, the admin cannot see payments or finance."""
    charge_page = f"/payments/{world['charges'][0].id}"
    expected = {
        "support": ["/merchants", "/finance", "/operations", "/audit"],
        "finance": ["/merchants", f"/merchants/{world['merchant']}", "/operations"],
        "auditor": ["/payments", charge_page, "/finance", "/refunds"],
        "admin": ["/payments", charge_page, "/finance", "/refunds"],
    }
    for role, paths in expected.items():
        client = _as(harness, role)
        for path in paths:
            assert client.get(path).status_code == 403, (role, path)


def test_the_stores_hold_no_card_numbers(harness: Harness, world: dict[str, Any]) -> None:
    """A PAN sweep of the dashboard's own database after the flows above finds nothing."""
    from fincore.pan_sweep import sweep_path

    folder: Path = world["world"].var / "noncde"
    assert sweep_path(folder / "dashboard.db", CANARIES) == []
    assert json.dumps([]) == "[]"
