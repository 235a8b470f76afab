"""The staff dashboard in Debian's Chromium (Playwright), against the real processes: login with
TOTP, lockout, each role's pages and 403s, payment search and timeline, the two-person refund,
DLQ replay, CSP and security headers, screenshots of each main page, and a PAN sweep of every
page shown and the evidence export."""

from __future__ import annotations

import io
import ssl
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from fincore.pan_sweep import sweep_bytes, sweep_text
from tests.browser.dashboard.helpers import Dashboard, new_account, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Published test card numbers: the seeded cards end in these last fours; the full numbers must
# appear nowhere the dashboard shows or exports.
CANARIES = ["4242424242424242", "4000056655665556", "5555555555554444", "4000000000001881"]
MAIN_PAGES = {
    "support": ["/", "/payments", "/refunds"],
    "finance": ["/", "/payments", "/refunds", "/finance"],
    "auditor": ["/", "/audit", "/staff"],
    "admin": ["/", "/merchants", "/operations", "/staff"],
}
ALL_PAGES = ["/payments", "/refunds", "/merchants", "/finance", "/operations", "/audit", "/staff"]


def _swept(page: Any) -> str:
    html: str = page.content()
    assert sweep_text(html, CANARIES) == [], f"card number on {page.url}"
    return html


def test_the_dashboard_serves_tls_with_the_development_ca(dashboard: Dashboard) -> None:
    """The certificate the browser is shown verifies against the development CA."""
    context = ssl.create_default_context(cafile=str(dashboard.world.plan.ca_file))
    answer = httpx.get(dashboard.url + "/login", verify=context)
    assert answer.status_code == 200


def test_login_with_totp_then_the_first_password_change(
    context: Any, dashboard: Dashboard, artifacts_dir: Path
) -> None:
    """A new account signs in with its password and a TOTP code, must replace the initial
    password, then reaches its start page; a code of that step cannot be used again."""
    new_account(dashboard, "nora.new", "support", "Initial pass 2026 x")
    page = context.new_page()
    page.goto(dashboard.url + "/login")
    shot(page, artifacts_dir, "01-login")
    page.fill("#username", "nora.new")
    page.fill("#password", "Initial pass 2026 x")
    page.click("#sign-in")
    page.wait_for_url("**/login/mfa")
    shot(page, artifacts_dir, "02-code")
    page.fill("#code", "000000" if dashboard.code("nora.new") != "000000" else "111111")
    page.click("#verify")
    assert "not valid" in (page.text_content("#error") or "")
    page.fill("#code", dashboard.code("nora.new"))
    page.click("#verify")
    page.wait_for_url("**/account/password")
    assert page.is_visible("#must-change")
    shot(page, artifacts_dir, "03-change-password")
    page.fill("#current", "Initial pass 2026 x")
    page.fill("#new-password", "My own phrase 4 work")
    page.fill("#confirm", "My own phrase 4 work")
    page.click("#change")
    page.wait_for_url("**/account/password?done=1")
    page.goto(dashboard.url + "/")
    assert page.text_content("#role") == "support"
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["__Host-fincore-dash"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
    shot(page, artifacts_dir, "04-home-support")
    page.click("#logout")
    page.wait_for_url("**/login?ended=logout")
    assert "signed out" in (page.text_content("#notice") or "")


def test_lockout_after_ten_failures(
    context: Any, dashboard: Dashboard, artifacts_dir: Path
) -> None:
    """Ten wrong passwords lock the account; the right password is then refused too."""
    new_account(dashboard, "larry.locked", "finance", "Right pass phrase 1")
    page = context.new_page()
    for attempt in range(10):
        page.goto(dashboard.url + "/login")
        page.fill("#username", "larry.locked")
        page.fill("#password", f"wrong guess {attempt}")
        page.click("#sign-in")
    assert "locked" in (page.text_content("#error") or "")
    page.goto(dashboard.url + "/login")
    page.fill("#username", "larry.locked")
    page.fill("#password", "Right pass phrase 1")
    page.click("#sign-in")
    assert "locked" in (page.text_content("#error") or "")
    assert page.url.endswith("/login")
    shot(page, artifacts_dir, "locked")
    listing = dashboard.cli("list-users")
    assert next(u for u in listing if u["username"] == "larry.locked")["locked"]


@pytest.mark.parametrize("role", ["support", "finance", "auditor", "admin"])
def test_each_role_sees_its_pages_and_gets_403_on_the_others(
    context: Any, dashboard: Dashboard, artifacts_dir: Path, role: str
) -> None:
    """The menu lists exactly the role's pages; each opens (screenshot); every other main page
    answers 403 with the refusal page."""
    page = context.new_page()
    sign_in(page, dashboard, role)
    allowed = MAIN_PAGES[role]
    menu = {a.get_attribute("href") for a in page.query_selector_all("nav a")}
    assert menu == set(allowed) - {"/"}
    for path in allowed:
        response = page.goto(dashboard.url + path)
        assert response.status == 200, path
        _swept(page)
        shot(page, artifacts_dir, f"{role}-{path.strip('/').replace('/', '-') or 'home'}")
    for path in ALL_PAGES:
        if path in allowed:
            continue
        response = page.goto(dashboard.url + path)
        assert response.status == 403, (role, path)
        assert "may not open this page" in (page.text_content("#error-message") or "")
    shot(page, artifacts_dir, f"{role}-403")


def test_search_finds_a_payment_and_shows_its_timeline(
    context: Any, dashboard: Dashboard, artifacts_dir: Path
) -> None:
    """Support searches by last 4 and status, opens the charge, and reads its masked card and
    the timeline of its events."""
    page = context.new_page()
    sign_in(page, dashboard, "support")
    page.goto(dashboard.url + "/payments")
    page.fill("#q-last4", "4242")
    page.select_option("#q-status", "succeeded")
    page.click("#search")
    links = [a.text_content() for a in page.query_selector_all("a.charge-link")]
    target = dashboard.charges[0]
    assert target.id in links and dashboard.charges[5].id in links
    assert dashboard.charges[1].id not in links
    _swept(page)
    shot(page, artifacts_dir, "payments-search")
    page.click(f"text={target.id}")
    page.wait_for_selector("#timeline")
    assert "4242" in (page.text_content("#card") or "")
    assert "\u2022\u2022\u2022\u2022" in (page.text_content("#card") or "")
    events = [e.text_content() for e in page.query_selector_all("#timeline .event-type")]
    assert events == [
        "charge.requested",
        "charge.risk_assessed",
        "charge.authorized",
        "charge.captured",
    ]
    _swept(page)
    shot(page, artifacts_dir, "payment-detail")


def test_refund_needs_a_finance_approval(
    browser: Any, dashboard: Dashboard, artifacts_dir: Path
) -> None:
    """Support asks for a refund; finance (another person, another browser) approves it; the
    refund then shows on the payment as pending (sent to the API, run by the jobs)."""
    charge = dashboard.charges[3]
    support = browser.new_context(ignore_https_errors=True).new_page()
    sign_in(support, dashboard, "support")
    support.goto(f"{dashboard.url}/payments/{charge.id}")
    support.fill("#refund-amount", "4.50")
    support.select_option("#refund-category", "duplicate")
    support.fill("#refund-reason", "charged twice for one parcel")
    support.click("#request-refund")
    assert "waits for a finance approval" in (support.text_content("#done") or "")
    shot(support, artifacts_dir, "refund-requested")
    support.goto(dashboard.url + "/refunds")
    assert support.query_selector("button.approve") is None
    finance = browser.new_context(ignore_https_errors=True).new_page()
    sign_in(finance, dashboard, "finance")
    finance.goto(dashboard.url + "/refunds?status=pending_approval")
    row = finance.locator("tr", has_text=charge.id)
    shot(finance, artifacts_dir, "refund-queue")
    finance.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.approve").click()
    finance.wait_for_selector("#done")
    assert "submitted" in (finance.text_content("#done") or "")
    shot(finance, artifacts_dir, "refund-approved")
    finance.goto(f"{dashboard.url}/payments/{charge.id}")
    refunds = finance.text_content("#refunds") or ""
    assert "4.50 USD" in refunds and "pending" in refunds
    events = [e.text_content() for e in finance.query_selector_all("#timeline .event-type")]
    assert events[-1] == "refund.requested"
    _swept(finance)
    shot(finance, artifacts_dir, "refund-on-payment")
    support.context.close()
    finance.context.close()


def test_dlq_replay(context: Any, dashboard: Dashboard, artifacts_dir: Path) -> None:
    """The admin sees the dead-lettered job with its reason and replays it."""
    page = context.new_page()
    sign_in(page, dashboard, "admin")
    page.goto(dashboard.url + "/operations")
    row = page.locator(f"#job-{dashboard.dead_job}")
    assert "connect timeout" in (row.locator(".reason").text_content() or "")
    shot(page, artifacts_dir, "operations-dlq")
    row.locator("button.replay").click()
    page.wait_for_selector("#done")
    assert "1 job(s) put back on the queue." in (page.text_content("#done") or "")
    assert page.query_selector(f"#job-{dashboard.dead_job}") is None
    shot(page, artifacts_dir, "operations-replayed")


def test_csp_and_security_headers_hold_in_the_browser(
    context: Any, dashboard: Dashboard, artifacts_dir: Path
) -> None:
    """Every page carries the strict CSP and headers; only the nonce'd first-party script
    runs (its confirm dialog appears); an injected script is blocked."""
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    sign_in(page, dashboard, "admin")
    for path in MAIN_PAGES["admin"] + [f"/merchants/{dashboard.merchant}"]:
        response = page.goto(dashboard.url + path)
        headers = response.headers
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["cache-control"] == "no-store"
        scripts = page.evaluate("Array.from(document.scripts).map(s => new URL(s.src).pathname)")
        assert scripts == ["/static/dashboard.js"]
    assert violations == []
    shown: list[str] = []
    page.goto(dashboard.url + f"/merchants/{dashboard.merchant}")

    def answer(dialog: Any) -> None:
        shown.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", answer)
    page.locator("button.revoke").first.click()
    assert shown and "Revoke this key" in shown[0]
    assert page.url.endswith(f"/merchants/{dashboard.merchant}")
    shot(page, artifacts_dir, "merchant")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = true;'; document.head.appendChild(s); }"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.injected === true") is False
    assert any("Content Security Policy" in v for v in violations)


def test_auditor_exports_evidence_and_nothing_holds_card_data(
    context: Any, dashboard: Dashboard, artifacts_dir: Path
) -> None:
    """The auditor sees the chain verified, searches, and downloads an evidence bundle; the
    pages and every file of the bundle pass the PAN sweep."""
    page = context.new_page()
    sign_in(page, dashboard, "auditor")
    page.goto(dashboard.url + "/audit")
    assert (page.text_content("#verify-status") or "").startswith("OK:")
    page.fill("#a-type", "admin.*")
    page.click("#audit-search-button")
    page.wait_for_selector("#audit-results")
    assert "admin.login" in (page.text_content("#audit-results") or "")
    _swept(page)
    shot(page, artifacts_dir, "audit")
    with page.expect_download() as download:
        page.click("#export")
    data = Path(download.value.path()).read_bytes()
    assert sweep_bytes(data, CANARIES) == []
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = bundle.namelist()
        assert any(n.endswith("manifest.json") for n in names)
        for name in names:
            assert sweep_bytes(bundle.read(name), CANARIES, label=name) == [], name
    page.goto(dashboard.url + "/staff")
    _swept(page)
    shot(page, artifacts_dir, "staff")
