"""The scripted demo behind `make demo`: start everything, use it as its users do, summarize.

The demo is a client: it talks to the processes over loopback HTTP(S), drives Debian's
Chromium through Playwright for the buyer's and the staff's pages, plays a merchant's website
(`MerchantSite`: a shop page with the PSP's card frame, a success page, a webhook receiver),
and runs the components' own CLIs as subprocesses, so it imports neither zone. Each step
checks what it expected against what it saw; the command prints one table and exits 0 only if
every expectation held.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import io
import json
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from fincore.ids import random_token
from fincore.runner import PROJECT_ROOT, Plan, Runner, available, running
from fincore.seed import (
    DemoSeed,
    SeedError,
    cli_command,
    cli_env,
    ensure_seed,
    load_seed,
    psp_publishable_key,
    run_cli,
    seed_file,
    start_cli,
)

CHROMIUM = Path("/usr/bin/chromium")
# As tests/harness/peers.py: headless in a container, nothing fetched from the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Published test cards of the PSP sandbox (docs/psp-sandbox.md). Each run picks one of each
# kind: the default risk rules allow 15 raw-card charges per card and hour, so repeated demos
# on one var folder stay well inside them.
CARDS_OK = (
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "2223003122003222",
    "5200828282828210",
    "5105105105105100",
)
CARDS_DECLINED = ("4000000000000002", "4000000000009995", "4000000000009987")
CARD_SDK = "5555555555554444"
CARD_HOSTED = "378282246310005"
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
WAIT_S = 45.0

# Non-CDE stores and logs, and the CDE's logs, swept for card numbers at the end.
NONCDE_LOGS = ("api", "worker", "projectionist", "ledger", "webhooks", "reconciler", "dashboard")
CDE_LOGS = ("vault", "ingress", "gateway")


class Unexpected(Exception):
    """An expectation of a step did not hold (the message says what was seen)."""


def expect(condition: object, seen: str) -> None:
    if not condition:
        raise Unexpected(seen)


def canary_pan() -> str:
    """A Luhn-valid Visa-like number that is no test card and exists only in this run: the
    card the refused merchant sends, searched for everywhere afterwards."""
    digits = [4] + [secrets.randbelow(10) for _ in range(14)]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if index % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


# ---------------------------------------------------------------- the merchant's website

_SHOP = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo shop: checkout</title>
<script src="{sandbox}/v1/js/sandbox.js" integrity="{integrity}" crossorigin="anonymous"></script>
<script src="/shop.js" defer></script></head>
<body data-key="{key}"><h1>Checkout</h1><div id="card"></div>
<button id="pay" type="button">Pay 20.00 USD</button><p id="result"></p></body></html>
"""

_SHOP_JS = """
const sandbox = Sandbox(document.body.dataset.key);
sandbox.mountCard('#card');
document.getElementById('pay').addEventListener('click', async () => {
  const out = document.getElementById('result');
  const result = await sandbox.createPaymentMethod();
  if (!result.paymentMethod) { out.textContent = 'error ' + result.error.code; return; }
  const answer = await fetch('/charge', {method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({payment_method: result.paymentMethod.id})});
  const charge = await answer.json();
  out.textContent = charge.id || ('error ' + answer.status);
});
"""


@dataclass
class MerchantSite:
    """A merchant's website on its own loopback origin. `/shop` embeds the PSP's card frame
    and its server turns the `pm_…` token into a charge at the FinCore API (the merchant's
    secret key stays on the server); `/paid` is a session's success URL; `/webhooks`
    receives FinCore's signed webhooks. Every request it gets is recorded."""

    api_url: str
    ca_file: Path
    sandbox_url: str
    psp_publishable_key: str
    secret_key: str
    sdk_amount: int = 2000
    webhook_secret: str | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _api: httpx.Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def shop_page(self) -> str:
        """The checkout page: the PSP's script pinned by its published SRI hash (PCI DSS
        6.4.3), and the PSP's publishable key (read when the sandbox runs)."""
        inventory = httpx.get(self.sandbox_url + "/v1/js-inventory.json", timeout=10).json()
        integrity = next(
            s["integrity"] for s in inventory["scripts"] if s["path"] == "/v1/js/sandbox.js"
        )
        return _SHOP.format(
            sandbox=self.sandbox_url, integrity=integrity, key=self.psp_publishable_key
        )

    def start(self) -> MerchantSite:
        """Serve on a free loopback port (the PSP need not run yet)."""
        site = self
        api = httpx.Client(
            base_url=self.api_url,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            timeout=30,
        )

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status: int, kind: str, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: bytes) -> None:
                with site._lock:
                    site.requests.append(
                        {"method": self.command, "path": self.path, "body": body.decode("latin-1")}
                    )

            def do_GET(self) -> None:
                self._record(b"")
                path = urlsplit(self.path).path
                if path == "/shop":
                    self._send(200, "text/html; charset=utf-8", site.shop_page())
                elif path == "/shop.js":
                    self._send(200, "text/javascript", _SHOP_JS)
                elif path in ("/paid", "/cart"):
                    title = "Thank you" if path == "/paid" else "Your cart"
                    page = f"<!doctype html><title>{title}</title><h1 id='done'>{title}</h1>"
                    self._send(200, "text/html; charset=utf-8", page)
                else:
                    self._send(404, "text/plain", "not found")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._record(body)
                path = urlsplit(self.path).path
                if path == "/charge":
                    self._charge(body)
                elif path == "/webhooks":
                    self._webhook(body)
                else:
                    self._send(404, "text/plain", "not found")

            def _charge(self, body: bytes) -> None:
                token = str(json.loads(body).get("payment_method", ""))
                answer = api.post(
                    "/v1/charges",
                    headers={
                        "Authorization": f"Bearer {site.secret_key}",
                        "Idempotency-Key": "sdk-order-" + random_token(12),
                    },
                    json={
                        "amount": site.sdk_amount,
                        "currency": "usd",
                        "description": "Demo SDK order",
                        "payment_method": {"type": "psp_token", "token": token},
                    },
                )
                self._send(answer.status_code, "application/json", answer.text)

            def _webhook(self, body: bytes) -> None:
                valid = site.signature_valid(body, self.headers.get("FinCore-Signature"))
                event = json.loads(body)
                with site._lock:
                    site.webhooks.append({"event": event, "valid": valid})
                self._send(200 if valid else 400, "application/json", "{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True).start()
        self._api = api
        return self

    def signature_valid(self, body: bytes, header: str | None) -> bool:
        """FinCore's webhook signature, checked as a merchant does: HMAC-SHA256 keyed with the
        endpoint's secret over "<t>." + body, constant-time, at most 5 minutes old."""
        if not header or not self.webhook_secret:
            return False
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        stamp = parts.get("t", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        expected = hmac.new(
            self.webhook_secret.encode(), stamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts.get("v1", ""))

    def events_of(self, object_id: str) -> list[dict[str, Any]]:
        with self._lock:
            found = list(self.webhooks)
        return [w for w in found if object_id in json.dumps(w["event"]["data"])]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._api is not None:
            self._api.close()


# ---------------------------------------------------------------- the demo's context


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class Demo:
    """What the steps share: the plan, the seed, the processes, the clients and the facts."""

    plan: Plan
    seed: DemoSeed
    runner: Runner
    http: httpx.Client
    site: MerchantSite
    canary: str
    browser: Any = None
    card_ok: str = field(default_factory=lambda: secrets.choice(CARDS_OK))
    facts: dict[str, Any] = field(default_factory=dict)

    # HTTP -------------------------------------------------------------------

    def call(
        self,
        component: str,
        method: str,
        path: str,
        key: str,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.http.request(
            method, self.plan.url(component) + path, json=body, headers=headers
        )

    def api(self, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
        return self.call("api", method, path, key, body, "demo-" + random_token(16))

    def wait_for(
        self, what: str, read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        seen = read()
        while not done(seen):
            if time.monotonic() > deadline:
                raise Unexpected(f"{what}: still {seen.get('status')} after {WAIT_S:.0f}s")
            time.sleep(0.1)
            seen = read()
        return seen

    def charge(self, key: str, charge_id: str, statuses: frozenset[str] = TERMINAL) -> Any:
        return self.wait_for(
            charge_id,
            lambda: self.api("GET", f"/v1/charges/{charge_id}", key).json(),
            lambda c: c.get("status") in statuses,
        )

    def raw_card_charge(self, key: str, card: str, amount: int, capture: bool) -> httpx.Response:
        body = {
            "amount": amount,
            "currency": "usd",
            "capture": capture,
            "description": "Demo S2S order",
            "payment_method": {
                "type": "card",
                "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            },
        }
        return self.call(
            "ingress", "POST", "/v1/charges", key, body, "s2s-order-" + random_token(12)
        )

    def all_of(self, path: str, key: str) -> list[dict[str, Any]]:
        """Every object of a list endpoint (all pages)."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query = f"{path}?limit=100" + (f"&starting_after={after}" if after else "")
            page = self.api("GET", query, key).json()
            found += page["data"]
            if not page["has_more"]:
                return found
            after = page["data"][-1]["id"]

    def lag(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(self.plan.url(name) + "/lag").json()
        return answer

    def lag_zero(self) -> None:
        """Wait until PaymentDB and LedgerDB have applied everything."""
        for name in ("projectionist", "ledger"):
            deadline = time.monotonic() + WAIT_S
            while self.lag(name)["lag_events"]:
                expect(time.monotonic() < deadline, f"{name} lags behind the event store")
                time.sleep(0.1)

    def event_head(self) -> int:
        """The event store's last position (every event of every merchant)."""
        return int(self.lag("projectionist")["head"])

    # CLIs -------------------------------------------------------------------

    def cli(self, component: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`component`'s command line with its own settings (no service credentials)."""
        return subprocess.run(  # noqa: S603 - our own interpreter and module
            cli_command(component, args),
            env=cli_env(self.plan, component, actor="demo"),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def vault_records(self) -> int:
        status = self.cli("vault", "admin", "--json", "status")
        expect(status.returncode == 0, f"vault status failed: {status.stderr.strip()[-200:]}")
        return int(json.loads(status.stdout)["records"])

    # the browser -------------------------------------------------------------

    def page(self, **options: Any) -> Any:
        expect(self.browser is not None, f"no browser ({CHROMIUM} missing?)")
        return self.browser.new_context(**options).new_page()


DemoStep = Callable[[Demo], str]


# ---------------------------------------------------------------- the steps


def step_health(demo: Demo) -> str:
    """Every process answers /readyz and /metrics."""
    bad = []
    for name in demo.runner.names:
        base = demo.plan.url(name)
        try:
            ready = demo.http.get(base + "/readyz")
            metrics = demo.http.get(base + "/metrics")
            if ready.status_code != 200 or "# TYPE" not in metrics.text:
                bad.append(f"{name} ({ready.status_code})")
        except httpx.HTTPError as exc:
            bad.append(f"{name} ({type(exc).__name__})")
    expect(not bad, "not ready: " + ", ".join(bad))
    return (
        f"{len(demo.runner.names)} processes ready (CDE, non-CDE, PSP sandbox + SFTP), "
        f"started in {demo.facts['start_s']:.1f}s; demo data {demo.facts['seed']}"
    )


def step_s2s_authorized(demo: Demo) -> str:
    """The permitted merchant's raw card, through the card ingress: a vault-token charge,
    authorized (capture later)."""
    key = demo.seed.raw.secret_key
    answer = demo.raw_card_charge(key, demo.card_ok, 2500, capture=False)
    expect(answer.status_code == 201, f"ingress answered {answer.status_code}: {answer.text[:200]}")
    created = answer.json()
    expect(created["flow"] == "s2s", f"flow {created['flow']}")
    expect(str(created["payment_method"]).startswith("tok_"), "no vault token")
    charge = demo.charge(key, created["id"], TERMINAL | {"requires_capture"})
    expect(charge["status"] == "requires_capture", f"status {charge['status']}")
    demo.facts["s2s_charge"] = charge["id"]
    card = charge["payment_method_details"]["card"]
    return (
        f"201 {charge['id']} (vault token, {card['brand']} ****{card['last4']}) -> requires_capture"
    )


def step_s2s_refused(demo: Demo) -> str:
    """The other merchant's raw card: 403 before the card is read. The vault holds no new
    record (its operator CLI's status) and the event store no new event (its head position,
    as the projectionist reports it); the card itself is searched for at the end."""
    key = demo.seed.sdk.secret_key
    demo.lag_zero()
    before = demo.vault_records(), demo.event_head()
    answer = demo.raw_card_charge(key, demo.canary, 1000, capture=True)
    expect(answer.status_code == 403, f"ingress answered {answer.status_code}")
    code = answer.json()["error"]["code"]
    expect(code == "raw_card_data_not_permitted", f"code {code}")
    expect(demo.canary not in answer.text, "the answer echoed the card")
    after = demo.vault_records(), demo.event_head()
    expect(after == before, f"(vault records, events) {before} -> {after}")
    return (
        f"403 {code}; vault records {before[0]} -> {after[0]}, events {before[1]} -> "
        f"{after[1]} (nothing stored; the card is swept for below)"
    )


def step_partial_capture(demo: Demo) -> str:
    key, charge_id = demo.seed.raw.secret_key, demo.facts["s2s_charge"]
    answer = demo.api("POST", f"/v1/charges/{charge_id}/capture", key, {"amount": 1500})
    expect(answer.status_code == 200, f"capture answered {answer.status_code}: {answer.text}")
    charge = demo.charge(key, charge_id)
    expect(charge["status"] == "succeeded", f"status {charge['status']}")
    expect(charge["amount_captured"] == 1500, f"captured {charge['amount_captured']}")
    return f"{charge_id}: 1500 of 2500 captured -> succeeded"


def step_partial_refund(demo: Demo) -> str:
    key, charge_id = demo.seed.raw.secret_key, demo.facts["s2s_charge"]
    answer = demo.api("POST", "/v1/refunds", key, {"charge": charge_id, "amount": 500})
    expect(answer.status_code == 201, f"refund answered {answer.status_code}: {answer.text}")
    refund_id = answer.json()["id"]
    refund = demo.wait_for(
        refund_id,
        lambda: demo.api("GET", f"/v1/refunds/{refund_id}", key).json(),
        lambda r: r.get("status") in {"succeeded", "failed"},
    )
    expect(refund["status"] == "succeeded", f"refund {refund['status']}")
    charge = demo.api("GET", f"/v1/charges/{charge_id}", key).json()
    expect(charge["amount_refunded"] == 500, f"refunded {charge['amount_refunded']}")
    demo.facts["refund"] = refund_id
    return f"{refund_id}: 500 of 1500 -> succeeded"


def step_decline(demo: Demo) -> str:
    key = demo.seed.raw.secret_key
    answer = demo.raw_card_charge(key, secrets.choice(CARDS_DECLINED), 1200, capture=True)
    expect(answer.status_code == 201, f"ingress answered {answer.status_code}")
    charge = demo.charge(key, answer.json()["id"])
    expect(charge["status"] == "failed", f"status {charge['status']}")
    expect(charge["failure_code"] == "card_declined", f"failure {charge['failure_code']}")
    return f"{charge['id']} -> failed card_declined ({charge['outcome'].get('type')})"


def step_sdk(demo: Demo) -> str:
    """The buyer types the card into the PSP's frame on the merchant's page (Chromium); the
    merchant's server charges the `pm_…` token."""
    page = demo.page()
    try:
        page.goto(demo.site.url + "/shop")
        frame = page.frame_locator("iframe.sandbox-card-frame")
        frame.locator("#number").fill(CARD_SDK)
        frame.locator("#exp").fill("12 / 34")
        frame.locator("#cvc").fill("123")
        expect(page.locator("input").count() == 0, "a card field in the merchant's page")
        page.click("#pay")
        page.wait_for_function("document.getElementById('result').textContent.length > 0")
        charge_id = page.text_content("#result") or ""
    finally:
        page.context.close()
    expect(charge_id.startswith("ch_"), f"the shop shows {charge_id!r}")
    key = demo.seed.sdk.secret_key
    charge = demo.charge(key, charge_id)
    expect(charge["status"] == "succeeded", f"status {charge['status']}")
    leaked = [r for r in demo.site.requests if CARD_SDK in r["path"] + r["body"]]
    expect(not leaked, "the merchant's site received the card number")
    token = charge["payment_method"]
    return (
        f"{charge_id}: card tokenized in the PSP's frame as {token[:3]}… -> succeeded; "
        "the merchant saw the token only"
    )


def step_hosted(demo: Demo) -> str:
    """A payment session paid on the PSP's hosted page (Chromium); the PSP's webhook reaches
    the gateway, which relays it to the API."""
    key = demo.seed.sdk.secret_key
    created = demo.api(
        "POST",
        "/v1/payment_sessions",
        key,
        {
            "amount": 4200,
            "currency": "eur",
            "success_url": demo.site.url + "/paid",
            "cancel_url": demo.site.url + "/cart",
            "metadata": {"cart": "demo-42"},
        },
    )
    expect(created.status_code == 201, f"session answered {created.status_code}: {created.text}")
    session = created.json()
    page = demo.page()
    try:
        page.goto(session["url"])
        page.fill("#email", "buyer@example.com")
        page.fill("#number", CARD_HOSTED)
        page.fill("#exp", "12 / 34")
        page.fill("#cvc", "1234")
        page.fill("#name", "Demo Buyer")
        page.click("#pay")
        page.wait_for_url(demo.site.url + "/paid**")
    finally:
        page.context.close()
    paid = demo.wait_for(
        session["id"],
        lambda: demo.api("GET", f"/v1/payment_sessions/{session['id']}", key).json(),
        lambda s: s.get("status") != "open",
    )
    expect(paid["status"] == "complete", f"session {paid['status']}")
    charge = demo.charge(key, paid["charge"])
    expect(charge["status"] == "succeeded", f"status {charge['status']}")
    expect(charge["flow"] == "redirect", f"flow {charge['flow']}")
    return f"{session['id']} paid on the PSP's page -> complete; {charge['id']} succeeded"


def step_webhooks(demo: Demo) -> str:
    """The permitted merchant's endpoint got its charge's events, signed."""
    charge_id = demo.facts["s2s_charge"]
    wanted = {"charge.requested", "charge.authorized", "charge.captured", "refund.succeeded"}
    deadline = time.monotonic() + WAIT_S
    got: set[str] = set()
    while time.monotonic() < deadline:
        received = demo.site.events_of(charge_id)
        got = {w["event"]["type"] for w in received}
        if wanted <= got:
            break
        time.sleep(0.2)
    received = demo.site.events_of(charge_id)
    expect(wanted <= got, f"received {sorted(got)}")
    expect(all(w["valid"] for w in received), "a webhook with a bad signature")
    return f"{len(received)} events of {charge_id} delivered, every signature valid"


def step_reconciliation(demo: Demo) -> str:
    """The sandbox writes today's settlement file; the reconciler fetches it over the
    sandbox's SFTP server (pinned host key) and matches it with the ledger."""
    today = datetime.now(UTC).date().isoformat()
    admin = json.loads(
        (demo.plan.var_dir / "psp-sandbox" / "credentials.json").read_text(encoding="utf-8")
    )["admin_token"]
    written = demo.http.post(
        demo.plan.url("psp-sandbox") + f"/_sandbox/settlements/{today}",
        headers={"Authorization": f"Bearer {admin}"},
    )
    expect(written.status_code == 200, f"sandbox answered {written.status_code}")
    result = demo.cli("reconciler", "reconcile", "--date", today, "--json")
    expect(result.stdout.strip(), f"reconcile failed: {result.stderr.strip()[-300:]}")
    report = json.loads(result.stdout)
    findings = sum(report["counts"].values())
    expect(
        result.returncode == 0 and report["clean"] and findings == 0,
        f"{findings} finding(s): {report['counts']}",
    )
    expect(report["source"].startswith("sftp://"), f"source {report['source']}")
    fees = ", ".join(f"{v} {k}" for k, v in sorted(report["fees_total"].items()))
    return (
        f"{report['lines']} settlement lines over SFTP, {report['matched']} matched, "
        f"0 findings; fees {fees or 'none'}"
    )


def step_ledger(demo: Demo) -> str:
    """The books balance, and each merchant's captured and refunded money equals what the
    API shows for its charges."""
    demo.lag_zero()
    trial = demo.cli("ledger", "trial-balance", "--json")
    expect(trial.returncode == 0, f"trial balance: exit {trial.returncode}")
    totals = json.loads(trial.stdout)
    details = []
    for merchant in (demo.seed.raw, demo.seed.sdk):
        shown = demo.cli("ledger", "balance", merchant.id, "--json")
        expect(shown.returncode == 0, f"balance: {shown.stderr.strip()[-200:]}")
        books = {b["currency"]: b for b in json.loads(shown.stdout)["balances"]}
        charges = demo.all_of("/v1/charges", merchant.secret_key)
        expected: dict[str, list[int]] = {}
        for charge in charges:
            money = expected.setdefault(charge["currency"], [0, 0])
            money[0] += charge["amount_captured"]
            money[1] += charge["amount_refunded"]  # succeeded refunds only
        for currency, (captured, refunded) in expected.items():
            if not captured:
                continue
            book = books.get(currency, {})
            expect(
                (book.get("captured"), book.get("refunded")) == (captured, refunded),
                f"{merchant.id} {currency}: ledger {book}, API {captured}/{refunded}",
            )
            details.append(
                f"{merchant.name.split('(')[1].rstrip(')')}: {currency} net {book['net']}"
            )
    return f"balanced ({totals['transactions']} transactions); " + "; ".join(details)


def _sign_in(demo: Demo, role: str) -> Any:
    """A Chromium page signed in to the dashboard as the demo login of `role` (password, then
    a TOTP code)."""
    import pyotp

    login = demo.seed.login(role)
    base = demo.plan.url("dashboard")
    # The browser does not trust the development CA (the tests check the chain separately).
    page = demo.page(ignore_https_errors=True)
    page.goto(base + "/login")
    page.fill("#username", login.username)
    page.fill("#password", login.password)
    page.click("#sign-in")
    page.wait_for_url("**/login/mfa")
    page.fill("#code", pyotp.TOTP(login.totp_secret).now())
    page.click("#verify")
    page.wait_for_load_state()
    return page


def step_dashboard(demo: Demo) -> str:
    """Support finds the S2S charge in the payment search (PaymentDB) and opens it (the event
    store): the card is masked. An auditor's audit page reads and verifies the audit log."""
    base = demo.plan.url("dashboard")
    charge_id = demo.facts["s2s_charge"]
    page = _sign_in(demo, "support")
    try:
        page.goto(base + "/payments")
        page.fill("#q-merchant", demo.seed.raw.id)
        page.click("#search")
        page.wait_for_load_state()
        found = [a.text_content() for a in page.query_selector_all("a.charge-link")]
        page.goto(f"{base}/payments/{charge_id}")
        page.wait_for_selector("#timeline")
        card = page.text_content("#card") or ""
        html = page.content()
    finally:
        page.context.close()
    expect(charge_id in found, f"the search found {len(found)} other charges")
    expect(demo.card_ok[-4:] in card and "\u2022" in card, f"card shown as {card!r}")
    expect(demo.card_ok not in html, "the page holds the card number")
    page = _sign_in(demo, "auditor")
    try:
        page.goto(base + "/audit")
        verified = page.text_content("#verify-status") or ""
    finally:
        page.context.close()
    expect("OK" in verified, f"the audit page says {verified.strip()[:120]!r}")
    login = demo.seed.login("support")
    return (
        f"{base}/login  {login.username} / {login.password} + TOTP "
        f"(secret {login.totp_secret}); search and payment page (masked), audit page verified"
    )


def step_audit(demo: Demo) -> str:
    """Both zones' audit logs verify (hash chains and signed checkpoints)."""
    env = cli_env(demo.plan, "api", actor="demo")
    result = subprocess.run(
        [sys.executable, "-m", "audit", "verify", "--json"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    expect(result.stdout.strip(), f"audit verify failed: {result.stderr.strip()[-300:]}")
    report = json.loads(result.stdout)
    zones = {s["zone"]: s["records"] for s in report["streams"]}
    expect(result.returncode == 0 and report["ok"], f"first bad: {report['first_bad']}")
    expect(set(zones) == {"cde", "noncde"}, f"zones {sorted(zones)}")
    return (
        f"cde {zones['cde']} records, noncde {zones['noncde']} records: chains and checkpoints OK"
    )


def sweep_targets(plan: Plan) -> list[str]:
    var = plan.var_dir
    noncde = [var / "noncde", var / "audit" / "noncde", var / "reconciliation", var / "dashboard"]
    logs = [var / "log" / f"{name}.log" for name in NONCDE_LOGS + CDE_LOGS]
    cde = [var / "audit" / "cde", var / "cde" / "gateway.db"]
    return [str(p) for p in [*noncde, *logs, *cde] if p.exists()]


def step_sweep(plan: Plan, canary: str) -> str:
    """After the run: no card number (published test cards included) and no trace of the
    refused merchant's canary card in any non-CDE store or log, in the CDE's logs and audit
    log, or in the gateway's token-only store."""
    targets = sweep_targets(plan)
    with tempfile.TemporaryDirectory(prefix="fincore-demo-") as folder:
        canaries = Path(folder) / "canaries"
        fd = os.open(canaries, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(canary + "\n")
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "fincore",
                "sweep",
                "--json",
                "--canary-file",
                str(canaries),
                *targets,
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    report = json.loads(result.stdout)
    findings = report["findings"]
    expect(result.returncode == 0 and not findings, f"{len(findings)} finding(s): {findings[:3]}")
    stats = report["stats"]
    return (
        f"0 findings in {len(targets)} targets ({stats['files']} files, {stats['tables']} "
        f"tables, {stats['rows']} rows): non-CDE stores and logs, CDE logs"
    )


# In the order they run: (title in the summary, step).
STEPS: list[tuple[str, DemoStep]] = [
    ("platform running", step_health),
    ("S2S raw card, permitted merchant", step_s2s_authorized),
    ("S2S raw card, merchant not permitted", step_s2s_refused),
    ("partial capture", step_partial_capture),
    ("partial refund", step_partial_refund),
    ("decline", step_decline),
    ("SDK token (Chromium)", step_sdk),
    ("hosted page (Chromium)", step_hosted),
    ("merchant webhooks", step_webhooks),
    ("reconciliation (today)", step_reconciliation),
    ("ledger", step_ledger),
    ("dashboard", step_dashboard),
    ("audit logs verify", step_audit),
]


# ---------------------------------------------------------------- running it


def _table(steps: list[Step]) -> str:
    width = max((len(s.name) for s in steps), default=10)
    lines = [f"{'step':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    for s in steps:
        lines.append(f"{s.name:<{width}}  {'PASS' if s.ok else 'FAIL':<6}  {s.detail}")
    return "\n".join(lines)


def _run_step(step: Callable[[], str], name: str) -> Step:
    try:
        return Step(name, True, step())
    except Unexpected as exc:
        return Step(name, False, str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken step is a failed step
        return Step(name, False, f"{type(exc).__name__}: {str(exc)[:300]}")


@contextlib.contextmanager
def _browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (never a downloaded browser), or None."""
    if not CHROMIUM.exists():
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _webhook_endpoint(plan: Plan, merchant_id: str, url: str) -> tuple[str, str]:
    """Register the demo site's receiver for the permitted merchant (before the platform
    starts, so the webhooks process reads it on its first directory fetch)."""
    added = run_cli(
        plan,
        "api",
        ["admin", "webhooks", "add", merchant_id, "--url", url, "--events", "charge.*,refund.*"],
    )
    return str(added["id"]), str(added["secret"])


def run_demo(plan: Plan, *, verbose: bool = False) -> int:
    names = available()
    if not names:
        print("demo: no component exists yet")
        return 1
    out: Any = sys.stdout if verbose else io.StringIO()
    started = time.monotonic()
    results: list[Step] = []
    canary = canary_pan()
    first_run = load_seed(plan) is None
    try:
        seed = ensure_seed(plan)
    except SeedError as exc:
        print(f"\nFinCore demo: seeding failed: {exc}", file=sys.stderr)
        return 1
    seeded = f"made in {time.monotonic() - started:.1f}s (first run)" if first_run else "reused"
    site = MerchantSite(
        api_url=plan.url("api"),
        ca_file=plan.ca_file,
        sandbox_url=plan.url("psp-sandbox"),
        psp_publishable_key="",
        secret_key=seed.sdk.secret_key,
    ).start()
    endpoint: str | None = None
    try:
        # Registered before the platform starts: the webhooks process reads the endpoints
        # when it fans events out and keeps them for 30 s.
        endpoint, site.webhook_secret = _webhook_endpoint(plan, seed.raw.id, site.url + "/webhooks")
        starting = time.monotonic()
        with running(plan, names, out=out) as runner:
            start_s = time.monotonic() - starting
            context = ssl.create_default_context(cafile=str(plan.ca_file))
            site.psp_publishable_key = psp_publishable_key(plan) or ""
            with httpx.Client(verify=context, timeout=30.0) as client, _browser() as browser:
                demo = Demo(plan, seed, runner, client, site, canary, browser)
                demo.facts.update(start_s=start_s, seed=seeded)
                for title, step in STEPS:
                    results.append(_run_step(lambda step=step: step(demo), title))  # type: ignore[misc]
    except (RuntimeError, SeedError) as exc:
        results.append(Step("start", False, str(exc)))
        if isinstance(out, io.StringIO):
            print(out.getvalue()[-4000:], file=sys.stderr)
    finally:
        site.stop()
    # Everything is stopped (files flushed): sweep, and retire this run's webhook endpoint.
    retire = None
    if endpoint is not None:
        retire = start_cli(plan, "api", ["admin", "webhooks", "disable", endpoint])
    results.append(_run_step(lambda: step_sweep(plan, canary), "PAN sweep"))
    if retire is not None:
        retire.communicate(timeout=120)
    elapsed = time.monotonic() - started
    print("\nFinCore demo summary")
    print(_table(results))
    passed = sum(s.ok for s in results)
    print(f"\n{passed}/{len(results)} expectations held in {elapsed:.0f}s")
    print(
        f"Everything is stopped. `make run` starts it again with the same merchants, keys and "
        f"logins ({seed_file(plan)})."
    )
    return 0 if results and passed == len(results) else 1
