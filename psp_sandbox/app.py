"""psp_sandbox: the process entry point: the Stripe-compatible HTTP API, the hosted checkout page,
the browser tokenization library and the admin endpoints; plus the `settle` CLI.

Outside both zones ("it is the PSP"). Requests are form-encoded with bracket notation, as the
official SDK sends them; answers are Stripe-shaped JSON. Card fields are never logged: the
access log records route templates only and no handler logs a parameter.

Run: python -m psp_sandbox.app                      (serve on FINCORE_PORT, plain HTTP, loopback)
     python -m psp_sandbox.app settle 2026-11-27    (write that UTC day's settlement file)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fincore.logs import get_logger
from fincore.process import start_process
from fincore.settings import SettingsError
from fincore.web import create_service_app, serve
from psp_sandbox.bootstrap import Runtime, build_runtime, build_sandbox, build_store
from psp_sandbox.config import SandboxSettings
from psp_sandbox.domain import (
    DECLINES,
    TEST_CARDS,
    StripeError,
    invalid,
    parse_fault,
)
from psp_sandbox.ports import WebhookEndpoint
from psp_sandbox.service import (
    CURRENT_REQUEST,
    Idempotency,
    RequestInfo,
    SessionClosed,
    format_amount,
)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
ACCOUNT = "acct_sandbox"
MAX_FIELDS = 1000
MAX_DEPTH = 6
_NAME = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")

log = get_logger("psp_sandbox")


# ---------------------------------------------------------------- Stripe form encoding


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket notation (`card[number]`, `metadata[k]`, `expand[]`, `items[0][x]`)
    to nested dicts and lists. Names only ever appear in error messages, never values."""
    if len(pairs) > MAX_FIELDS:
        raise invalid("Too many parameters.")
    root: dict[str, Any] = {}
    for name, value in pairs:
        match = _NAME.match(name)
        if match is None:
            raise invalid("Invalid parameter name.", code="parameter_invalid")
        parts = [match.group(1), *_PART.findall(match.group(2))]
        if len(parts) > MAX_DEPTH:
            raise invalid("Parameters are nested too deeply.")
        container = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                part = str(len(container))
            if last:
                if isinstance(container.get(part), dict):
                    raise invalid("Invalid parameter structure.", param=parts[0])
                container[part] = value
            else:
                child = container.setdefault(part, {})
                if not isinstance(child, dict):
                    raise invalid("Invalid parameter structure.", param=parts[0])
                container = child
    return {key: _listify(item) for key, item in root.items()}


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _listify(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


async def read_params(request: Request) -> dict[str, Any]:
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    if request.method in ("POST", "PUT", "DELETE"):
        body = await request.body()
        if body:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/x-www-form-urlencoded":
                raise invalid(
                    "The sandbox accepts application/x-www-form-urlencoded bodies, as Stripe."
                )
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise invalid("The request body is not valid UTF-8.") from None
            pairs.extend(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    try:
        return decode_form(pairs)
    except ValueError:
        raise invalid("Too many parameters.") from None


# ---------------------------------------------------------------- responses


def stripe_json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, indent=2).encode(),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def error_response(error: StripeError, request: Request) -> Response:
    body = error.body()
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["error"]["request_log_url"] = f"sandbox://requests/{request_id}"
    return stripe_json(body, error.status, {"Request-Id": request_id or "", **error.headers})


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(self)",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def csp(**directives: str) -> str:
    return "; ".join(f"{name.replace('_', '-')} {value}" for name, value in directives.items())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _sri(path: Path) -> str:
    digest = hashlib.sha384(path.read_bytes()).digest()
    return "sha384-" + base64.b64encode(digest).decode()


def _origin_allowed(origin: str, patterns: tuple[str, ...]) -> bool:
    """Is `origin` one of the CSP host-sources (`scheme://host`, `scheme://host:port`,
    `scheme://host:*`) configured as frame ancestors?"""
    match = re.fullmatch(r"(https?)://([a-z0-9.\-]+|\[[0-9a-f:]+\])(?::([0-9]{1,5}))?", origin)
    if match is None:
        return False
    scheme, host, port = match.groups()
    for pattern in patterns:
        p = re.fullmatch(r"(https?)://([a-z0-9.\-]+|\[[0-9a-f:]+\])(?::([0-9]{1,5}|\*))?", pattern)
        if p is None:
            continue
        p_scheme, p_host, p_port = p.groups()
        if p_scheme == scheme and p_host == host and (p_port == "*" or p_port == port):
            return True
    return False


# ---------------------------------------------------------------- the app


def create_app(runtime: Runtime) -> FastAPI:
    settings = runtime.settings
    sandbox = runtime.sandbox
    idempotency: Idempotency = runtime.idempotency
    credentials = settings.credentials
    templates = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html"]),
    )
    scripts = {name: (STATIC / name) for name in ("sandbox.js", "elements.js")}
    integrity = {name: _sri(path) for name, path in scripts.items()}
    stylesheet = STATIC / "sandbox.css"
    stylesheet_integrity = _sri(stylesheet)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = create_service_app(
        "psp-sandbox",
        readiness={"store": lambda: runtime.store.count("event") >= 0},
        lifespan=lifespan,
    )

    # ------------------------------------------------------------ auth

    def authenticate(request: Request, params: dict[str, Any], publishable_ok: bool) -> str:
        header = request.headers.get("authorization", "")
        key = ""
        if header.lower().startswith("bearer "):
            key = header[7:].strip()
        elif header.lower().startswith("basic "):
            try:
                key = base64.b64decode(header[6:].strip()).decode().split(":", 1)[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        body_key = params.pop("key", None)
        if not key and isinstance(body_key, str):
            key = body_key
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        for secret in credentials.secret_keys:
            if hmac.compare_digest(key.encode(), secret.reveal().encode()):
                return "secret"
        if hmac.compare_digest(key.encode(), credentials.publishable_key.encode()):
            if publishable_ok:
                return "publishable"
            raise StripeError(
                401,
                "This API call cannot be made with a publishable API key. Please use a secret "
                "API key.",
            )
        # Never echo the key, not even masked: a mistyped secret is still a secret.
        raise StripeError(401, "Invalid API Key provided.")

    def admin(request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token or not hmac.compare_digest(
            token.encode(), credentials.admin_token.reveal().encode()
        ):
            raise StripeError(
                401, "A valid sandbox admin token is required.", type="authentication_error"
            )

    # ------------------------------------------------------------ the API wrapper

    async def api(
        request: Request,
        handler: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        publishable_ok: bool = False,
    ) -> Response:
        request_id = getattr(request.state, "request_id", None) or ""
        try:
            params = await read_params(request)
            authenticate(request, params, publishable_ok)
            expand = sandbox.expand_paths(params.get("expand"))
        except StripeError as exc:
            return error_response(exc, request)
        faults = runtime.sandbox.faults.for_request(request.url.path)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.error_status is not None:
            return error_response(
                StripeError(
                    faults.error_status,
                    "An unknown error occurred (sandbox fault injection).",
                    type="api_error",
                ),
                request,
            )
        if faults.timeout_hold_s is not None and not faults.timeout_execute:
            await asyncio.sleep(faults.timeout_hold_s)
            return error_response(
                StripeError(
                    504, "The request timed out (sandbox fault injection).", type="api_error"
                ),
                request,
            )
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        headers = {"Request-Id": request_id}
        token = CURRENT_REQUEST.set(RequestInfo(request_id, key))
        try:
            if key:
                headers["Idempotency-Key"] = key
                try:
                    record = idempotency.begin(
                        ACCOUNT,
                        key,
                        Idempotency.fingerprint(request.method, request.url.path, params),
                    )
                except StripeError as exc:
                    return error_response(exc, request)
                if record is not None:
                    assert record.status is not None and record.body is not None
                    return Response(
                        record.body,
                        status_code=record.status,
                        media_type="application/json",
                        headers={**headers, "Idempotent-Replayed": "true"},
                    )
            try:
                body = handler(params)
                if expand:
                    body = sandbox.expand(body, expand)
                status, payload, save = 200, body, True
            except StripeError as exc:
                error_body = exc.body()
                error_body["error"]["request_log_url"] = f"sandbox://requests/{request_id}"
                status, payload, save = exc.status, error_body, exc.executed
                headers.update(exc.headers)
            except BaseException:
                if key:
                    idempotency.forget(ACCOUNT, key)
                raise
            encoded = json.dumps(payload, indent=2).encode()
            if key:
                if save:
                    idempotency.finish(ACCOUNT, key, status, encoded)
                else:
                    idempotency.forget(ACCOUNT, key)
        finally:
            CURRENT_REQUEST.reset(token)
        if faults.timeout_hold_s is not None:
            # The work is done and saved; the answer is held past the client's timeout, so
            # the caller sees a timeout for a request that did succeed (an unknown outcome).
            await asyncio.sleep(faults.timeout_hold_s)
        return Response(encoded, status_code=status, media_type="application/json", headers=headers)

    # ------------------------------------------------------------ Stripe API

    @app.post("/v1/payment_methods")
    async def create_payment_method(request: Request) -> Response:
        response = await api(request, sandbox.create_payment_method, publishable_ok=True)
        # Stripe.js posts from the browser; the card element frame is same-origin, so no CORS.
        return response

    @app.get("/v1/payment_methods/{pm_id}")
    async def retrieve_payment_method(request: Request, pm_id: str) -> Response:
        return await api(request, lambda _p: sandbox.retrieve_payment_method(pm_id))

    @app.post("/v1/payment_intents")
    async def create_payment_intent(request: Request) -> Response:
        return await api(request, sandbox.create_payment_intent)

    @app.get("/v1/payment_intents")
    async def list_payment_intents(request: Request) -> Response:
        return await api(request, sandbox.list_payment_intents)

    @app.get("/v1/payment_intents/search")
    async def search_payment_intents(request: Request) -> Response:
        return await api(request, sandbox.search_payment_intents)

    @app.get("/v1/payment_intents/{pi_id}")
    async def retrieve_payment_intent(request: Request, pi_id: str) -> Response:
        def handler(params: dict[str, Any]) -> dict[str, Any]:
            params.pop("client_secret", None)
            return sandbox.retrieve_payment_intent(pi_id)

        return await api(request, handler)

    @app.post("/v1/payment_intents/{pi_id}/confirm")
    async def confirm_payment_intent(request: Request, pi_id: str) -> Response:
        return await api(request, lambda p: sandbox.confirm_payment_intent(pi_id, p))

    @app.post("/v1/payment_intents/{pi_id}/capture")
    async def capture_payment_intent(request: Request, pi_id: str) -> Response:
        return await api(request, lambda p: sandbox.capture_payment_intent(pi_id, p))

    @app.post("/v1/payment_intents/{pi_id}/cancel")
    async def cancel_payment_intent(request: Request, pi_id: str) -> Response:
        return await api(request, lambda p: sandbox.cancel_payment_intent(pi_id, p))

    @app.get("/v1/charges")
    async def list_charges(request: Request) -> Response:
        return await api(request, sandbox.list_charges)

    @app.get("/v1/charges/{charge_id}")
    async def retrieve_charge(request: Request, charge_id: str) -> Response:
        return await api(request, lambda _p: sandbox.retrieve_charge(charge_id))

    @app.post("/v1/refunds")
    async def create_refund(request: Request) -> Response:
        return await api(request, sandbox.create_refund)

    @app.get("/v1/refunds")
    async def list_refunds(request: Request) -> Response:
        return await api(request, sandbox.list_refunds)

    @app.get("/v1/refunds/{refund_id}")
    async def retrieve_refund(request: Request, refund_id: str) -> Response:
        return await api(request, lambda _p: sandbox.retrieve_refund(refund_id))

    @app.post("/v1/checkout/sessions")
    async def create_checkout_session(request: Request) -> Response:
        return await api(request, sandbox.create_checkout_session)

    @app.get("/v1/checkout/sessions")
    async def list_checkout_sessions(request: Request) -> Response:
        return await api(request, sandbox.list_checkout_sessions)

    @app.get("/v1/checkout/sessions/{session_id}")
    async def retrieve_checkout_session(request: Request, session_id: str) -> Response:
        return await api(request, lambda _p: sandbox.retrieve_checkout_session(session_id))

    @app.post("/v1/checkout/sessions/{session_id}/expire")
    async def expire_checkout_session(request: Request, session_id: str) -> Response:
        return await api(request, lambda _p: sandbox.expire_checkout_session(session_id))

    @app.get("/v1/events")
    async def list_events(request: Request) -> Response:
        return await api(request, sandbox.list_events)

    @app.get("/v1/events/{event_id}")
    async def retrieve_event(request: Request, event_id: str) -> Response:
        return await api(request, lambda _p: sandbox.retrieve_event(event_id))

    @app.get("/v1/balance_transactions")
    async def list_balance_transactions(request: Request) -> Response:
        return await api(request, sandbox.list_balance_transactions)

    @app.get("/v1/balance_transactions/{txn_id}")
    async def retrieve_balance_transaction(request: Request, txn_id: str) -> Response:
        return await api(request, lambda _p: sandbox.retrieve_balance_transaction(txn_id))

    # ------------------------------------------------------------ hosted checkout page

    def page_headers(session: Mapping[str, Any] | None) -> dict[str, str]:
        form_action = "'self'"
        if session is not None:
            # The POST answers with a redirect to the merchant's success URL; CSP form-action
            # covers redirects, so that origin (only) is allowed too.
            targets = {_origin(session["success_url"])}
            form_action += " " + " ".join(sorted(targets))
        policy = csp(
            default_src="'none'",
            script_src="'none'",
            style_src="'self'",
            img_src="'self'",
            form_action=form_action,
            frame_ancestors="'none'",
            base_uri="'none'",
            report_uri="/v1/csp-report",
        )
        return {**_SECURITY_HEADERS, "Content-Security-Policy": policy, "X-Frame-Options": "DENY"}

    def render_checkout(
        session: Mapping[str, Any],
        private: Mapping[str, Any],
        *,
        error: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        template = templates.get_template("checkout.html")
        html = template.render(
            session=session,
            items=[
                {**item, "display": format_amount(item["amount"], session["currency"])}
                for item in private.get("line_items", [])
            ],
            total=format_amount(session["amount_total"], session["currency"]),
            error=error,
            stylesheet_integrity=stylesheet_integrity,
        )
        return HTMLResponse(html, status_code=status, headers=page_headers(session))

    def render_closed(session: Mapping[str, Any] | None, status: int, reason: str) -> HTMLResponse:
        html = templates.get_template("closed.html").render(session=session, reason=reason)
        return HTMLResponse(html, status_code=status, headers=page_headers(None))

    def closed_status(status: str) -> tuple[int, str]:
        if status == "complete":
            return 409, "This checkout session has already been paid."
        return 410, "This checkout session has expired."

    @app.get("/c/pay/{session_id}", include_in_schema=False)
    async def checkout_page(session_id: str) -> HTMLResponse:
        try:
            session, private = sandbox.checkout_page(session_id)
        except StripeError:
            return render_closed(None, 404, "This checkout session does not exist.")
        if session["status"] != "open":
            code, reason = closed_status(session["status"])
            return render_closed(session, code, reason)
        return render_checkout(session, private)

    @app.post("/c/pay/{session_id}", include_in_schema=False)
    async def checkout_pay(request: Request, session_id: str) -> Response:
        try:
            form = await read_params(request)
            redirect = sandbox.pay_checkout_session(session_id, form)
        except SessionClosed as closed:
            session, _ = sandbox.checkout_page(session_id)
            code, reason = closed_status(closed.status)
            return render_closed(session, code, reason)
        except StripeError as exc:
            if exc.status == 404:
                return render_closed(None, 404, "This checkout session does not exist.")
            session, private = sandbox.checkout_page(session_id)
            if session["status"] != "open":
                code, reason = closed_status(session["status"])
                return render_closed(session, code, reason)
            return render_checkout(session, private, error=exc.message, status=exc.status)
        return RedirectResponse(redirect, status_code=303, headers=page_headers(None))

    # ------------------------------------------------------------ browser tokenization

    def frame_ancestors() -> str:
        return " ".join(settings.frame_ancestors) or "'none'"

    @app.get("/v1/elements/card", include_in_schema=False)
    async def card_element(request: Request) -> HTMLResponse:
        key = request.query_params.get("key", "")
        origin = request.query_params.get("origin", "")
        if not hmac.compare_digest(key.encode(), credentials.publishable_key.encode()):
            return HTMLResponse(
                "Invalid publishable key.", status_code=401, headers=dict(_SECURITY_HEADERS)
            )
        if not _origin_allowed(origin, settings.frame_ancestors):
            return HTMLResponse(
                "This origin may not embed the card element.",
                status_code=403,
                headers=dict(_SECURITY_HEADERS),
            )
        html = templates.get_template("elements.html").render(
            key=key,
            origin=origin,
            script_integrity=integrity["elements.js"],
            stylesheet_integrity=stylesheet_integrity,
        )
        policy = csp(
            default_src="'none'",
            script_src="'self'",
            style_src="'self'",
            connect_src="'self'",
            img_src="'self'",
            form_action="'none'",
            frame_ancestors=frame_ancestors(),
            base_uri="'none'",
            report_uri="/v1/csp-report",
        )
        return HTMLResponse(
            html,
            headers={
                **_SECURITY_HEADERS,
                "Content-Security-Policy": policy,
                "Cross-Origin-Opener-Policy": "unsafe-none",
            },
        )

    @app.get("/v1/js/{name}", include_in_schema=False)
    async def script(name: str) -> Response:
        path = scripts.get(name)
        if path is None:
            return error_response_plain(404)
        return Response(
            path.read_bytes(),
            media_type="text/javascript; charset=utf-8",
            headers={
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
                # Merchants load sandbox.js cross-origin with an SRI integrity attribute,
                # which needs CORS (crossorigin="anonymous").
                "Access-Control-Allow-Origin": "*",
            },
        )

    @app.get("/v1/js-inventory.json", include_in_schema=False)
    async def script_inventory() -> JSONResponse:
        """PCI DSS 6.4.3: every payment-page script, its hash and why it is there."""
        return JSONResponse(
            {
                "scripts": [
                    {
                        "path": "/v1/js/sandbox.js",
                        "integrity": integrity["sandbox.js"],
                        "runs_on": "merchant checkout page",
                        "justification": "mounts the card element frame and returns a pm_ token",
                    },
                    {
                        "path": "/v1/js/elements.js",
                        "integrity": integrity["elements.js"],
                        "runs_on": "sandbox card element frame",
                        "justification": "reads the card fields and tokenizes them same-origin",
                    },
                ],
                "hosted_checkout_page": "no scripts (script-src 'none')",
            }
        )

    @app.get("/static/sandbox.css", include_in_schema=False)
    async def css() -> Response:
        return Response(
            stylesheet.read_bytes(),
            media_type="text/css; charset=utf-8",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    @app.post("/v1/csp-report", include_in_schema=False)
    async def csp_report(request: Request) -> Response:
        try:
            report = json.loads(await request.body() or b"{}").get("csp-report", {})
            directive = str(report.get("violated-directive", ""))[:100]
        except (ValueError, AttributeError):
            directive = "unparsable"
        # Only the directive: a report's URLs could carry anything (PCI DSS 11.6.1 alerting).
        log.warning("csp_violation", directive=directive)
        return Response(status_code=204)

    def error_response_plain(status: int) -> Response:
        return stripe_json(
            {"error": {"type": "invalid_request_error", "message": "Not found."}}, status
        )

    # ------------------------------------------------------------ admin (tests, chaos, ops)

    async def admin_call(request: Request, handler: Callable[[Any], Any]) -> Response:
        try:
            admin(request)
            raw = await request.body()
            body = json.loads(raw) if raw else {}
            return stripe_json(handler(body))
        except StripeError as exc:
            return error_response(exc, request)
        except ValueError:
            return error_response(invalid("The body must be JSON."), request)

    @app.get("/_sandbox/faults", include_in_schema=False)
    async def list_faults(request: Request) -> Response:
        return await admin_call(
            request, lambda _b: {"faults": [f.describe() for f in sandbox.faults.active()]}
        )

    @app.post("/_sandbox/faults", include_in_schema=False)
    async def add_fault(request: Request) -> Response:
        def handler(body: Any) -> dict[str, Any]:
            if not isinstance(body, dict):
                raise invalid("The body must be a JSON object.")
            return sandbox.faults.add(parse_fault(body)).describe()

        return await admin_call(request, handler)

    @app.delete("/_sandbox/faults", include_in_schema=False)
    async def clear_faults(request: Request) -> Response:
        def handler(_body: Any) -> dict[str, Any]:
            sandbox.faults.clear()
            return {"faults": []}

        return await admin_call(request, handler)

    @app.post("/_sandbox/settlements/{day}", include_in_schema=False)
    async def write_settlement(request: Request, day: str) -> Response:
        def handler(_body: Any) -> dict[str, Any]:
            try:
                parsed = date.fromisoformat(day)
            except ValueError:
                raise invalid("The date must be YYYY-MM-DD.", param="date") from None
            name, rows = sandbox.write_settlement(parsed)
            return {"file": name, "rows": rows, "folder": str(settings.settlements_dir)}

        return await admin_call(request, handler)

    @app.get("/_sandbox/settlements", include_in_schema=False)
    async def list_settlements(request: Request) -> Response:
        return await admin_call(request, lambda _b: {"files": list(sandbox.sink.files())})

    @app.get("/_sandbox/webhook_endpoints", include_in_schema=False)
    async def list_endpoints(request: Request) -> Response:
        return await admin_call(
            request,
            lambda _b: {
                "endpoints": [
                    {"id": e.id, "url": e.url, "events": list(e.events), "source": e.source}
                    for e in runtime.store.endpoints()
                ]
            },
        )

    @app.put("/_sandbox/webhook_endpoints", include_in_schema=False)
    async def set_endpoints(request: Request) -> Response:
        def handler(body: Any) -> dict[str, Any]:
            items = body.get("endpoints") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise invalid('Give {"endpoints": [{"url": …}]}.', param="endpoints")
            endpoints = []
            for index, item in enumerate(items):
                url = item.get("url") if isinstance(item, dict) else None
                if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                    raise invalid("Each endpoint needs an http(s) url.", param="endpoints")
                secret = item.get("secret") or credentials.webhook_secret.reveal()
                events = item.get("events") or ["*"]
                if not isinstance(secret, str) or not isinstance(events, list):
                    raise invalid("Invalid endpoint.", param="endpoints")
                endpoints.append(
                    WebhookEndpoint(
                        f"we_admin_{index}", url, secret, tuple(str(e) for e in events), "admin"
                    )
                )
            sandbox.set_endpoints("admin", endpoints)
            replace_config = body.get("replace_config", True)
            if replace_config:
                sandbox.set_endpoints("config", [])
            return {"endpoints": [{"id": e.id, "url": e.url} for e in endpoints]}

        return await admin_call(request, handler)

    @app.get("/_sandbox/webhooks", include_in_schema=False)
    async def list_deliveries(request: Request) -> Response:
        event_id = request.query_params.get("event")

        def handler(_body: Any) -> dict[str, Any]:
            return {
                "deliveries": [
                    {
                        "id": d.id,
                        "event_id": d.event_id,
                        "endpoint_id": d.endpoint_id,
                        "url": d.url,
                        "state": d.state,
                        "attempts": runtime.store.attempts(d.id),
                        "next_attempt_at": d.next_attempt_at,
                        "created": d.created,
                        "delivered_at": d.delivered_at,
                    }
                    for d in runtime.store.deliveries(event_id, limit=500)
                ]
            }

        return await admin_call(request, handler)

    @app.post("/_sandbox/webhooks/{event_id}/resend", include_in_schema=False)
    async def resend(request: Request, event_id: str) -> Response:
        return await admin_call(request, lambda _b: {"queued": sandbox.resend_event(event_id)})

    @app.post("/_sandbox/clock", include_in_schema=False)
    async def advance_clock(request: Request) -> Response:
        def handler(body: Any) -> dict[str, Any]:
            seconds = body.get("advance_s") if isinstance(body, dict) else None
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not (0 <= seconds <= 366 * 86400)
            ):
                raise invalid(
                    "advance_s must be a number of seconds (0 to 366 days).", param="advance_s"
                )
            now = sandbox.advance_clock(float(seconds))
            expired = sandbox.expire_due_sessions()
            return {"now": int(now), "expired_sessions": expired}

        return await admin_call(request, handler)

    @app.post("/_sandbox/jobs/settlements", include_in_schema=False)
    async def run_settlement_job(request: Request) -> Response:
        return await admin_call(
            request, lambda _b: {"written": sandbox.write_missing_settlements()}
        )

    @app.get("/_sandbox/test_cards", include_in_schema=False)
    async def test_cards() -> JSONResponse:
        return JSONResponse(
            {
                "test_cards": [
                    {
                        "number": card.number,
                        "brand": card.brand.value,
                        "funding": card.funding,
                        "outcome": card.outcome,
                        "code": DECLINES[card.outcome].code if card.outcome in DECLINES else None,
                        "description": card.description,
                    }
                    for card in TEST_CARDS
                ]
            }
        )

    return app


# ---------------------------------------------------------------- entry points


def _settle(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m psp_sandbox.app settle",
        description="Write the settlement file of one UTC day (default: yesterday).",
    )
    parser.add_argument("date", nargs="?", help="YYYY-MM-DD (UTC)")
    args = parser.parse_args(argv)
    settings = SandboxSettings.from_env(port=0)
    store = build_store(settings)
    # A reader of the running sandbox's database: it must not touch the webhook endpoints.
    sandbox = build_sandbox(settings, store, register_endpoints=False)
    try:
        day = (
            date.fromisoformat(args.date)
            if args.date
            else datetime.now(UTC).date() - timedelta(days=1)
        )
    except ValueError:
        print("date must be YYYY-MM-DD", file=sys.stderr)
        return 2
    name, rows = sandbox.write_settlement(day)
    store.close()
    print(f"wrote {settings.settlements_dir / name} ({rows} rows)")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "settle":
        raise SystemExit(_settle(args[1:]))
    process = start_process("psp-sandbox", "external", 8400)
    try:
        settings = SandboxSettings.from_env(process.port, ca_file=process.ca_file)
    except SettingsError as exc:
        print(f"psp-sandbox: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    runtime = build_runtime(settings)
    app = create_app(runtime)
    log.info(
        "psp_sandbox_ready",
        public_url=settings.public_url,
        webhook_endpoints=len(settings.webhook_urls),
        sftp_port=settings.sftp_port,
        credentials_file=str(settings.credentials_file),
    )
    # Plain HTTP on loopback: the runner registers the sandbox with tls=False (it plays an
    # external PSP; the gateway reaches real Stripe over TLS).
    serve(app, host=process.host, port=process.port, tls=None)


if __name__ == "__main__":
    main()
