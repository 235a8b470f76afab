"""Canary PANs and CVCs in every field of every non-CDE endpoint (PCI DSS checklist A2), on the
running processes: the merchant API's documented operations and its undocumented staff routes,
every page and form of the staff dashboard, and the HTTP endpoints of the workers and read
models. Every request is refused with a 400 before anything runs, the answer never holds the
canary, and nothing is stored (the dashboard's own store is checked here; every store and log
is swept at the end of the folder, tests/security/test_z_pan_sweep.py).

`tests/integration/api/test_card_data_guard.py` already covers the API's documented operations
in-process with every variant; here the same variants go over TLS to the real process (the
path as uvicorn decodes it, real headers), and the routes it does not reach are added."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fincore.pan_sweep import sweep_text
from noncde.api.web.staff import install_staff_routes
from noncde.dashboard.web.routes import create_app as create_dashboard_app
from tests.integration.api.test_card_data_guard import CALLER, EXAMPLES, body_variants
from tests.security.stack import BRAND_CANARIES, Stack, csrf_of, pan_forms
from tests.unit.dashboard.support import make_harness

pytestmark = pytest.mark.e2e

TEMPLATES = Path(__file__).resolve().parents[2] / "noncde" / "dashboard" / "web" / "templates"
KIT = ("/healthz", "/readyz", "/metrics")
# The workers' and read models' HTTP endpoints (noncde/workers/app.py, noncde/readmodels/app.py).
WORKER_ENDPOINTS = {
    "worker": KIT,
    "webhooks": KIT,
    "reconciler": (*KIT, "/status"),
    "projectionist": (*KIT, "/lag"),
    "ledger": (*KIT, "/lag"),
}
AMEX, CID = next(iter(BRAND_CANARIES.items()))


class Refusals:
    """Sends requests that must be refused and collects every one that was not."""

    def __init__(self, stack: Stack, expected: str) -> None:
        self.stack = stack
        self.expected = expected  # "json" (Stripe-style 400) or "html" (the dashboard's page)
        self.sent = 0
        self.failures: list[str] = []

    def expect(self, client: httpx.Client, label: str, method: str, url: str, **kw: Any) -> None:
        self.sent += 1
        answer = client.request(method, url, **kw)
        problem = None
        if answer.status_code != 400:
            problem = f"status {answer.status_code}"
        elif self.expected == "json" and answer.json()["error"]["code"] != "card_data_not_allowed":
            problem = f"code {answer.json()['error'].get('code')}"
        elif self.expected == "html" and not answer.headers["content-type"].startswith("text/html"):
            problem = f"content type {answer.headers['content-type']}"
        shown = answer.text + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
        if sweep_text(shown, self.stack.canaries):
            problem = "the answer holds a canary"
        if problem:
            self.failures.append(f"{method} {url.split('?')[0]} [{label}]: {problem}")


def canary_values(stack: Stack) -> Iterator[str]:
    """Every PAN canary in every written form, round-robin, forever."""
    forms = [form for pan in stack.pans for form in pan_forms(pan)]
    index = 0
    while True:
        yield forms[index % len(forms)]
        index += 1


# ---------------------------------------------------------------- the merchant API


def staff_routes() -> list[tuple[str, str]]:
    """The API's staff routes (not in the OpenAPI document), read from the code that adds them."""
    app = FastAPI()
    install_staff_routes(
        app,
        SimpleNamespace(directory=None),  # type: ignore[arg-type]
        lambda _allowed: lambda: None,
    )
    return [
        (method, str(getattr(route, "path", "")))
        for route in app.routes
        for method in sorted(getattr(route, "methods", set()) - {"HEAD"})
    ]


STAFF_BODIES: dict[str, dict[str, Any]] = {
    "/internal/v1/staff/keys/{key_id}/rotate": {"actor": "ops.alice", "overlap_hours": 1},
    "/internal/v1/staff/keys/{key_id}/revoke": {"actor": "ops.alice", "reason": "leaked"},
    "/internal/v1/staff/merchants/{merchant_id}/raw_card": {
        "actor": "ops.alice",
        "granted": False,
        "reason": "attestation withdrawn",
    },
    "/internal/v1/staff/refunds": {
        "actor": "fin.bob",
        "requested_by": "sup.carol",
        "merchant_id": "mer_x",
        "charge": "ch_x",
        "amount": 100,
        "reason": "duplicate",
    },
}


def test_the_api_staff_routes_refuse_card_data_everywhere(stack: Stack) -> None:
    """The dashboard's commands at the API (dashboard identity): a canary in the path, the
    query, a header, each body field, a metadata-like extra field and a `cvc` key is a 400."""
    routes = staff_routes()
    assert len(routes) >= 6, routes
    refusals = Refusals(stack, "json")
    values = canary_values(stack)
    base = stack.url("api")
    with stack.client() as client:
        for method, template in routes:
            headers = {**stack.headers("dashboard", "api"), "Idempotency-Key": "sec-staff-1"}
            path = re.sub(r"\{[a-z_]+\}", "mer_AbCdEf123", template)
            example = STAFF_BODIES.get(template)
            body = {"json": example} if example is not None else {}
            for name in re.findall(r"\{([a-z_]+)\}", template):
                bad = template.replace("{" + name + "}", next(values))
                bad = re.sub(r"\{[a-z_]+\}", "mer_AbCdEf123", bad)
                refusals.expect(client, f"path {name}", method, base + bad, headers=headers, **body)
            refusals.expect(
                client, "query", method, base + path, params={"q": next(values)}, headers=headers
            )
            refusals.expect(
                client, "header", method, base + path, headers={**headers, "X-Note": next(values)}
            )
            refusals.expect(
                client,
                "idempotency key",
                method,
                base + path,
                headers={**headers, "Idempotency-Key": next(values)},
                **body,
            )
            if example is None:
                continue
            for field in example:
                changed = {**example, field: next(values)}
                refusals.expect(
                    client, f"body {field}", method, base + path, headers=headers, json=changed
                )
            refusals.expect(
                client,
                "extra field",
                method,
                base + path,
                headers=headers,
                json={**example, "note": next(values)},
            )
            refusals.expect(
                client,
                "cvc key",
                method,
                base + path,
                headers=headers,
                json={**example, "cvc": CID},
            )
    assert not refusals.failures, refusals.failures[:20]
    assert refusals.sent > 40


def test_the_api_documented_operations_refuse_card_data_over_tls(stack: Stack) -> None:
    """The integration test's variants (every string field in every written form, metadata
    keys and values, a card as payment method, a PAN as amount) against the real process."""
    refusals = Refusals(stack, "json")
    values = canary_values(stack)
    key = stack.merchants["raw"].secret_key
    base = stack.url("api")
    with stack.client() as client:
        document = client.get(base + "/openapi.json").json()
        for template, operations in document["paths"].items():
            for method in operations:
                headers = {"Authorization": f"Bearer {key}"}
                if template in CALLER:
                    headers.update(stack.headers(CALLER[template], "api"))
                path = template.replace("{id}", "ch_AbCdEfGhIjKlMnOpQrStUvWx")
                canary = next(values)
                refusals.expect(
                    client,
                    "path",
                    method.upper(),
                    base + template.replace("{id}", canary)
                    if "{id}" in template
                    else f"{base}{template}/{canary}",
                    headers=headers,
                )
                refusals.expect(
                    client,
                    "query",
                    method.upper(),
                    base + path,
                    params={"limit": next(values)},
                    headers=headers,
                )
                example = EXAMPLES.get(template)
                if example is None:
                    continue
                pan = stack.pans[refusals.sent % len(stack.pans)]
                for label, body in body_variants(example, pan):
                    refusals.expect(
                        client, label, method.upper(), base + path, headers=headers, json=body
                    )
    assert not refusals.failures, refusals.failures[:20]
    assert refusals.sent > 150


def test_the_api_never_echoes_a_submitted_id(stack: Stack) -> None:
    """A CVC typed into an id field passes the card-number guard (3-4 digits are not
    detectable), so a "No such charge" answer must not repeat the submitted value (it did)."""
    key = stack.merchants["raw"].secret_key
    base = stack.url("api")
    with stack.client(headers={"Authorization": f"Bearer {key}"}) as client:
        answers = [
            client.post(base + "/v1/refunds", json={"charge": CID}),
            client.get(base + f"/v1/charges/{CID}"),
            client.get(base + f"/v1/refunds/{CID}"),
            client.get(base + f"/v1/events/{CID}"),
            client.get(base + f"/v1/payment_sessions/{CID}"),
        ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert CID not in answer.text, answer.text


# ---------------------------------------------------------------- the dashboard


def dashboard_routes(tmp_path: Path) -> list[tuple[str, str]]:
    """Every dashboard route with its method, from the app's own permission registry."""
    harness = make_harness(tmp_path / "listing")
    try:
        app = create_dashboard_app(harness.runtime, manage_runtime=False)
        return sorted(app.state.pages.registry)
    finally:
        harness.close()


def form_fields() -> list[str]:
    """Every form and search field name the dashboard's templates use."""
    names = set()
    for template in TEMPLATES.glob("*.html"):
        names.update(re.findall(r'name="([a-z_]+)"', template.read_text()))
    names.discard("viewport")
    return sorted(names)


def refund_requests(stack: Stack) -> int:
    with sqlite3.connect(stack.var / "noncde" / "dashboard.db") as conn:
        return int(conn.execute("SELECT count(*) FROM dash_refund_requests").fetchone()[0])


def test_every_dashboard_page_and_form_refuses_card_data(stack: Stack, tmp_path: Path) -> None:
    """Signed in (so only the card data can be the reason): a canary in each path parameter,
    each form field of every form post, each search field of every page, a header, and a
    `cvc` or `card[number]` field name is refused with the 400 page, unseen by the page."""
    routes = dashboard_routes(tmp_path)
    fields = form_fields()
    assert len(routes) > 30 and len(fields) > 20, (routes, fields)
    refusals = Refusals(stack, "html")
    values = canary_values(stack)
    client = stack.staff_session("admin")
    csrf = csrf_of(client.get("/").text)
    for method, template in routes:
        path = re.sub(r"\{[a-z_]+\}", "x1", template)
        for name in re.findall(r"\{([a-z_]+)\}", template):
            bad = re.sub(r"\{[a-z_]+\}", "x1", template.replace("{" + name + "}", next(values)))
            refusals.expect(
                client,
                f"path {name}",
                method,
                bad,
                data={"csrf_token": csrf} if method == "POST" else None,
            )
        refusals.expect(client, "header", method, path, headers={"X-Note": next(values)})
        if method == "GET":
            for field in fields:
                refusals.expect(
                    client, f"query {field}", method, path, params={field: next(values)}
                )
            refusals.expect(
                client, "query card[number]", method, path, params={"card[number]": "1"}
            )
        else:
            for field in fields:
                form = {"csrf_token": csrf, field: next(values)}
                refusals.expect(client, f"form {field}", method, path, data=form)
            refusals.expect(client, "form cvc", method, path, data={"csrf_token": csrf, "cvc": CID})
    assert not refusals.failures, refusals.failures[:20]
    assert refusals.sent > 500


def test_a_refund_reason_with_a_card_number_is_refused_and_not_stored(stack: Stack) -> None:
    """The bug this folder found: support's refund note for the approver accepted and stored
    a card number. Now the form is refused; the same form without it is accepted (control)."""
    merchant = stack.merchants["raw"]
    with stack.client() as client:
        created = client.post(
            stack.url("ingress") + "/v1/charges",
            json={
                "amount": 4200,
                "currency": "usd",
                "payment_method": {
                    "type": "card",
                    "card": {"number": AMEX, "exp_month": 12, "exp_year": 2031, "cvc": CID},
                },
            },
            headers={"Authorization": f"Bearer {merchant.secret_key}"},
        )
    assert created.status_code == 201, created.text
    charge_id = created.json()["id"]
    support = stack.staff_session("support")
    page = support.get(f"/payments/{charge_id}")
    deadline = time.monotonic() + 60
    while "refund-requests" not in page.text and time.monotonic() < deadline:
        # The worker and the projectionist are asynchronous: wait for a refundable charge.
        time.sleep(0.5)
        page = support.get(f"/payments/{charge_id}")
    assert "refund-requests" in page.text, page.text[-2000:]
    form = {
        "csrf_token": csrf_of(page.text),
        "amount": "1.00",
        "category": "requested_by_customer",
    }
    before = refund_requests(stack)
    for reason in (f"card {pan_forms(AMEX)[1]} of the customer", f"card {stack.synthetic[0]}"):
        refused = support.post(
            f"/payments/{charge_id}/refund-requests", data={**form, "reason": reason}
        )
        assert refused.status_code == 400, refused.text
        assert not sweep_text(refused.text, stack.canaries)
    assert refund_requests(stack) == before
    accepted = support.post(
        f"/payments/{charge_id}/refund-requests", data={**form, "reason": "customer asked"}
    )
    assert accepted.status_code == 303, accepted.text
    assert refund_requests(stack) == before + 1


# ---------------------------------------------------------------- workers and read models


def test_worker_and_read_model_endpoints_refuse_card_data(stack: Stack) -> None:
    """Health, readiness, metrics, status and lag of every worker and read-model process: a
    canary in the path, the query (value or `cvc` key), a header or a body is a 400; the same
    request without it is answered as usual (control)."""
    refusals = Refusals(stack, "json")
    values = canary_values(stack)
    checked = 0
    with stack.client() as client:
        for name, endpoints in WORKER_ENDPOINTS.items():
            if name not in stack.names:
                continue
            base = stack.url(name)
            for endpoint in endpoints:
                assert client.get(base + endpoint).status_code == 200, (name, endpoint)
                checked += 1
                refusals.expect(client, "query", "GET", base + endpoint, params={"q": next(values)})
                refusals.expect(client, "query key", "GET", base + endpoint, params={"cvc": CID})
                refusals.expect(
                    client, "header", "GET", base + endpoint, headers={"X-Note": next(values)}
                )
                refusals.expect(
                    client, "body", "POST", base + endpoint, json={"note": next(values)}
                )
            refusals.expect(client, "path", "GET", f"{base}/{next(values)}")
    assert checked >= 15
    assert not refusals.failures, refusals.failures[:20]
