"""The PSP sandbox in a real browser: the hosted checkout page and the browser tokenization
library, in Debian's Chromium through Playwright."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import MerchantSite
from tests.integration.psp_sandbox.peer import SandboxServer, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.psp]

PAN = "4242424242424242"


def _session(sandbox: SandboxServer, merchant: MerchantSite) -> Any:
    return sandbox.stripe_client().v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": merchant.url + "/ok?session={CHECKOUT_SESSION_ID}",
            "cancel_url": merchant.url + "/cancel",
            "client_reference_id": "ps_browser",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 4990,
                        "product_data": {"name": "Concert ticket"},
                    },
                    "quantity": 1,
                }
            ],
        }
    )


def _fill(page: Any, number: str = "4242 4242 4242 4242") -> None:
    page.fill("#email", "payer@example.com")
    page.fill("#number", number)
    page.fill("#exp", "12 / 34")
    page.fill("#cvc", "123")
    page.fill("#name", "Pat Payer")


def test_pay_on_the_hosted_page_and_return_to_the_merchant(
    browser: Any, psp_sandbox: SandboxServer, merchant: MerchantSite, artifacts_dir: Path
) -> None:
    """The payer fills the hosted form, pays and lands on the merchant's success URL; a second
    payment of the same session, from a tab opened before, is refused."""
    session = _session(psp_sandbox, merchant)
    context = browser.new_context()
    try:
        page = context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        response = page.goto(session.url)
        assert response.status == 200
        policy = response.headers["content-security-policy"]
        assert "script-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert page.evaluate("document.scripts.length") == 0
        second_tab = context.new_page()
        second_tab.goto(session.url)
        _fill(page)
        page.screenshot(path=str(artifacts_dir / "hosted-page-filled.png"), full_page=True)
        page.click("#pay")
        page.wait_for_url(merchant.url + "/ok?session=" + session.id)
        assert page.text_content("#done") == "Thank you"
        page.screenshot(path=str(artifacts_dir / "merchant-success.png"))
        assert violations == []

        paid = psp_sandbox.stripe_client().v1.checkout.sessions.retrieve(session.id)
        assert (paid.status, paid.payment_status) == ("complete", "paid")

        _fill(second_tab, "5555 5555 5555 4444")
        with second_tab.expect_response(lambda r: r.request.method == "POST") as posted:
            second_tab.click("#pay")
        assert posted.value.status == 409
        assert "already been paid" in second_tab.text_content("#closed")
        second_tab.screenshot(path=str(artifacts_dir / "second-payment-refused.png"))
        charges = psp_sandbox.stripe_client().v1.charges.list(
            params={"payment_intent": paid.payment_intent}
        )
        assert len(charges.data) == 1
        again = page.goto(session.url)
        assert again.status == 409
        # The merchant only ever saw the session id in its success URL.
        assert all(PAN not in r["path"] + r["body"] for r in merchant.requests)
    finally:
        context.close()


def test_a_decline_is_shown_on_the_hosted_page(
    browser: Any, psp_sandbox: SandboxServer, merchant: MerchantSite, artifacts_dir: Path
) -> None:
    """A declined card shows Stripe's message on the page and the session stays payable."""
    session = _session(psp_sandbox, merchant)
    page = browser.new_page()
    try:
        page.goto(session.url)
        _fill(page, "4000 0000 0000 9995")
        page.click("#pay")
        page.wait_for_selector("#error")
        assert page.text_content("#error") == "Your card has insufficient funds."
        assert page.input_value("#number") == "", "the card number is not echoed back"
        page.screenshot(path=str(artifacts_dir / "hosted-page-declined.png"), full_page=True)
        _fill(page)
        page.click("#pay")
        page.wait_for_url(merchant.url + "/ok?session=" + session.id)
    finally:
        page.close()


def test_the_hosted_page_blocks_injected_scripts(
    browser: Any, psp_sandbox: SandboxServer, merchant: MerchantSite
) -> None:
    """The CSP is enforced: a script injected into the hosted page does not run."""
    session = _session(psp_sandbox, merchant)
    page = browser.new_page()
    try:
        page.goto(session.url)
        messages: list[str] = []
        page.on("console", lambda m: messages.append(m.text))
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.injected = true;'; document.head.appendChild(s); }"
        )
        page.wait_for_timeout(200)
        assert page.evaluate("window.injected === true") is False
        assert any("Content Security Policy" in m for m in messages)
    finally:
        page.close()


def test_sdk_tokenizes_in_the_sandbox_frame(
    browser: Any, psp_sandbox: SandboxServer, merchant: MerchantSite, artifacts_dir: Path
) -> None:
    """sandbox.js mounts the card fields in a sandbox-origin frame and hands the merchant page a
    pm_ token; the merchant's page and server never see the card number."""
    page = browser.new_page()
    try:
        page.goto(merchant.url + "/shop")
        frame = page.frame_locator("iframe.sandbox-card-frame")
        frame.locator("#number").fill("4242 4242 4242 4242")
        frame.locator("#exp").fill("12 / 34")
        frame.locator("#cvc").fill("123")
        assert page.locator("input").count() == 0, "no card input in the merchant's document"
        element = next(f for f in page.frames if "/v1/elements/card" in f.url)
        assert element.url.startswith(psp_sandbox.url)
        page.click("#pay")
        page.wait_for_function("document.getElementById('result').textContent.length > 0")
        result = page.text_content("#result") or ""
        page.screenshot(path=str(artifacts_dir / "sdk-tokenized.png"))
        pm_id, brand, last4 = result.split()
        assert pm_id.startswith("pm_") and (brand, last4) == ("visa", "4242")
        stored = psp_sandbox.stripe_client().v1.payment_methods.retrieve(pm_id)
        assert (stored.card.last4, stored.card.exp_year) == ("4242", 2034)
        wait_until(lambda: any(r["path"] == "/charge" for r in merchant.requests))
        charge = [r for r in merchant.requests if r["path"] == "/charge"]
        assert charge and pm_id in charge[0]["body"]
        assert all(PAN not in r["path"] + r["body"] for r in merchant.requests)
        assert all("123" not in r["body"] for r in merchant.requests if r["path"] == "/charge")
        assert element.input_value("#number") == "", "the frame clears the fields after use"
    finally:
        page.close()


def test_sdk_reports_a_bad_card(
    browser: Any, psp_sandbox: SandboxServer, merchant: MerchantSite
) -> None:
    """A bad number comes back to the merchant as Stripe's error code, not as a token."""
    page = browser.new_page()
    try:
        page.goto(merchant.url + "/shop")
        frame = page.frame_locator("iframe.sandbox-card-frame")
        frame.locator("#number").fill("4242 4242 4242 4241")
        frame.locator("#exp").fill("12 / 34")
        frame.locator("#cvc").fill("123")
        page.click("#pay")
        page.wait_for_function("document.getElementById('result').textContent.length > 0")
        assert page.text_content("#result") == (
            "error incorrect_number: Your card number is incorrect."
        )
    finally:
        page.close()


def test_card_element_headers(psp_sandbox: SandboxServer) -> None:
    """The card frame allows only configured ancestors and scripts from its own origin."""
    ok = httpx.get(
        psp_sandbox.url + "/v1/elements/card",
        params={"key": psp_sandbox.publishable_key, "origin": "http://127.0.0.1:8080"},
    )
    assert ok.status_code == 200
    policy = ok.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors http://127.0.0.1:*" in policy
    assert "unsafe-inline" not in policy
    assert 'integrity="sha384-' in ok.text
    foreign = httpx.get(
        psp_sandbox.url + "/v1/elements/card",
        params={"key": psp_sandbox.publishable_key, "origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    wrong_key = httpx.get(
        psp_sandbox.url + "/v1/elements/card",
        params={"key": "pk_test_nope", "origin": "http://127.0.0.1:8080"},
    )
    assert wrong_key.status_code == 401
