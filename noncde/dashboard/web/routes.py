"""noncde.dashboard web (non-CDE): the dashboard's pages and actions, and the app factory.

Every route names its permission through `Pages.route` (deny by default, PCI DSS 7.2.1).
Handlers are plain functions (run in the thread pool: the stores, argon2 and the readers
block); they read and change things only through the runtime's use cases and readers.
Card data appears only masked (brand, last four, expiry), and every page is swept for card
numbers by the tests.
"""

from __future__ import annotations

import base64
import hashlib
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from audit.domain import AuditError
from audit.service import SearchQuery
from fincore.card_guard import CardDataGuard
from fincore.ids import random_token
from fincore.logs import get_logger
from fincore.web import create_service_app
from noncde.dashboard.bootstrap import DashboardRuntime
from noncde.dashboard.domain import (
    AccountLocked,
    AuthenticationFailed,
    DashboardError,
    InvalidInput,
    NotFound,
    Permission,
    RefundRequestStatus,
    Unavailable,
    token_key,
)
from noncde.dashboard.domain.reconciliation import ResolutionStatus
from noncde.dashboard.domain.views import (
    PaymentQuery,
    charge_detail,
    decimals,
    describe_event,
    format_money,
    is_refundable,
    parse_money,
)
from noncde.dashboard.service import SessionEnded
from noncde.dashboard.service.finance import series, summarize
from noncde.dashboard.web import charts
from noncde.dashboard.web.pages import (
    PUBLIC,
    NotSignedIn,
    PageContext,
    Pages,
    Redirect,
    origin_of,
    safe_next,
)
from noncde.dashboard.web.security import LOGIN_COOKIE, SESSION_COOKIE, SecurityHeaders

STATIC = Path(__file__).with_name("static")
_P = Permission


def _ctx(request: Request) -> PageContext:
    page: PageContext = request.state.page
    return page


def _set_session(response: Response, token: str) -> None:
    # PCI DSS 8.2.8 / 4.2.1: a __Host- cookie, Secure, HttpOnly, SameSite=Strict, no
    # Max-Age (ends with the browser; the server ends it after 15 idle minutes anyway).
    response.set_cookie(
        SESSION_COOKIE, token, secure=True, httponly=True, samesite="strict", path="/"
    )


def _clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, secure=True, httponly=True, samesite="strict", path="/")


def _integrity(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def _date(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("Dates are YYYY-MM-DD.", field=field) from None


def create_app(runtime: DashboardRuntime, *, manage_runtime: bool = True) -> FastAPI:
    """The dashboard app. With `manage_runtime` the app closes the runtime on shutdown."""
    log = get_logger("dashboard")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        try:
            yield
        finally:
            if manage_runtime:
                await run_in_threadpool(runtime.close)

    app = create_service_app(
        "dashboard",
        title="FinCore dashboard",
        readiness=runtime.readiness,
        max_body=256 * 1024,
        lifespan=lifespan,
    )
    # PCI DSS 3.2.1 (checklist A2): card data typed into any field, search or URL is refused
    # with a 400 before a page, a session or a store sees it (inside the security headers, so
    # the refusal page carries them too). Only where it was is logged.
    app.add_middleware(
        CardDataGuard,
        max_body=256 * 1024,
        html=True,
        on_refusal=lambda where: log.warning("card data refused", location=where),
    )
    app.add_middleware(SecurityHeaders)
    pages = Pages(app, runtime)
    app.state.pages = pages
    assets = {name: (STATIC / name).read_bytes() for name in ("dashboard.css", "dashboard.js")}
    pages.static.update(
        css=f"/static/dashboard.css?v={_integrity(assets['dashboard.css'])[7:19]}",
        js=f"/static/dashboard.js?v={_integrity(assets['dashboard.js'])[7:19]}",
        js_integrity=_integrity(assets["dashboard.js"]),
    )

    # ------------------------------------------------------------ errors as pages

    def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        page: PageContext | None = getattr(request.state, "page", None)
        if page is None:
            page = PageContext(
                request=request,
                origin=origin_of(request),
                nonce=request.scope.get("state", {}).get("csp_nonce", ""),
            )
        return pages.render(page, "error.html", status=status, title=title, message=message)

    @app.exception_handler(Redirect)
    async def on_redirect(request: Request, exc: Redirect) -> Response:
        response = RedirectResponse(exc.url, status_code=303)
        if exc.clear_session:
            _clear_session(response)
        return response

    @app.exception_handler(NotSignedIn)
    async def on_not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        return error_page(
            request, 401, "Signed out", "Your session has ended. Sign in again and retry."
        )

    @app.exception_handler(DashboardError)
    async def on_dashboard_error(request: Request, exc: DashboardError) -> Response:
        titles = {
            403: "Not allowed",
            404: "Not found",
            409: "Changed meanwhile",
            503: "Unavailable",
        }
        return error_page(request, exc.status, titles.get(exc.status, "Refused"), exc.message)

    @app.exception_handler(AuditError)
    async def on_audit_down(request: Request, exc: AuditError) -> Response:
        # Fail closed (PCI DSS 10.7.2): what cannot be audited is not done or shown.
        log.error("audit log unavailable", error=type(exc).__name__)
        return error_page(
            request,
            503,
            "Audit log unavailable",
            "The audit log cannot record this action right now, so nothing was done.",
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_page(request, 404, "Not found", "There is no such page.")
        return error_page(request, exc.status_code, "Refused", "This request is not allowed.")

    # ------------------------------------------------------------ static files (first party)

    def static_file(name: str, kind: str) -> Any:
        def serve_static(request: Request) -> Response:
            return Response(assets[name], media_type=kind)

        return serve_static

    pages.route("/static/dashboard.css", PUBLIC)(static_file("dashboard.css", "text/css"))
    pages.route("/static/dashboard.js", PUBLIC)(static_file("dashboard.js", "text/javascript"))

    # ------------------------------------------------------------ login, MFA, logout

    @pages.route("/login", PUBLIC)
    def login_page(request: Request) -> Response:
        ctx = _ctx(request)
        signed = None
        try:
            signed = runtime.auth.resolve(request.cookies.get(SESSION_COOKIE), ctx.origin)
        except SessionEnded:
            signed = None
        if signed is not None:
            return pages.redirect("/")
        notice = {
            "idle_timeout": "Your session ended after 15 minutes without activity.",
            "absolute_timeout": "Your session reached its maximum length.",
            "mfa_timeout": "The code was not entered in time. Sign in again.",
            "account_unavailable": "This account is not available.",
            "logout": "You are signed out.",
        }.get(ctx.query("ended"), "")
        return login_response(ctx, notice=notice)

    def login_response(
        ctx: PageContext, *, status: int = 200, error: str = "", notice: str = ""
    ) -> Response:
        token = ctx.request.cookies.get(LOGIN_COOKIE) or random_token(24)
        ctx_token = PageContext(request=ctx.request, origin=ctx.origin, nonce=ctx.nonce)
        response = pages.render(
            ctx_token, "login.html", status=status, error=error, notice=notice, login_csrf=token
        )
        response.set_cookie(
            LOGIN_COOKIE, token, secure=True, httponly=True, samesite="strict", path="/"
        )
        return response

    @pages.route("/login", PUBLIC, methods=("POST",))
    def login_submit(request: Request) -> Response:
        ctx = _ctx(request)
        try:
            token = runtime.auth.login(ctx.field("username"), ctx.field("password"), ctx.origin)
        except AccountLocked as exc:
            return login_response(ctx, status=423, error=exc.message)
        except AuthenticationFailed as exc:
            return login_response(ctx, status=401, error=exc.message)
        response = pages.redirect("/login/mfa")
        _set_session(response, token)
        return response

    @pages.route("/login/mfa", PUBLIC)
    def mfa_page(request: Request) -> Response:
        ctx = _ctx(request)
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token or runtime.auth.pending_user(token) is None:
            return pages.redirect("/login")
        return mfa_response(ctx, token)

    def mfa_response(
        ctx: PageContext, token: str, *, status: int = 200, error: str = ""
    ) -> Response:
        session = runtime.store.get_session(token_key(token))
        csrf = session.csrf_token if session else ""
        return pages.render(ctx, "mfa.html", status=status, error=error, mfa_csrf=csrf)

    @pages.route("/login/mfa", PUBLIC, methods=("POST",))
    def mfa_submit(request: Request) -> Response:
        ctx = _ctx(request)
        token = request.cookies.get(SESSION_COOKIE, "")
        try:
            new_token = runtime.auth.verify_code(token, ctx.field("code"), ctx.origin)
        except SessionEnded:
            ended: Response = pages.redirect("/login?ended=mfa_timeout")
            _clear_session(ended)
            return ended
        except AccountLocked as exc:
            locked = login_response(ctx, status=423, error=exc.message)
            _clear_session(locked)
            return locked
        except AuthenticationFailed:
            return mfa_response(
                ctx, token, status=401, error="That code is not valid. Try the current one."
            )
        response = pages.redirect("/")
        _set_session(response, new_token)
        return response

    @pages.route("/login/oidc", PUBLIC, methods=("POST",))
    def oidc_start(request: Request) -> Response:
        url = runtime.auth.oidc_begin(runtime.config.public_url + "/oidc/callback")
        return RedirectResponse(url, status_code=303)

    @pages.route("/oidc/callback", PUBLIC)
    def oidc_callback(request: Request) -> Response:
        ctx = _ctx(request)
        try:
            token, stage = runtime.auth.oidc_finish(
                ctx.query("code"),
                ctx.query("state"),
                runtime.config.public_url + "/oidc/callback",
                ctx.origin,
            )
        except AccountLocked as exc:
            return login_response(ctx, status=423, error=exc.message)
        except AuthenticationFailed as exc:
            return login_response(ctx, status=401, error=exc.message)
        response = pages.redirect("/" if stage == "active" else "/login/mfa")
        _set_session(response, token)
        return response

    @pages.route("/logout", _P.ACCOUNT_SELF, methods=("POST",))
    def logout(request: Request) -> Response:
        ctx = _ctx(request)
        assert ctx.signed is not None
        runtime.auth.logout(ctx.signed, ctx.origin)
        response = pages.redirect("/login?ended=logout")
        _clear_session(response)
        return response

    @pages.route("/", _P.ACCOUNT_SELF)
    def home(request: Request) -> Response:
        return pages.render(_ctx(request), "home.html")

    @pages.route("/account/password", _P.ACCOUNT_SELF)
    def password_page(request: Request) -> Response:
        return pages.render(_ctx(request), "password.html", error="", done=ctx_done(request))

    def ctx_done(request: Request) -> bool:
        return request.query_params.get("done") == "1"

    @pages.route("/account/password", _P.ACCOUNT_SELF, methods=("POST",))
    def password_submit(request: Request) -> Response:
        ctx = _ctx(request)
        assert ctx.signed is not None
        if ctx.field("new_password") != ctx.field("confirm"):
            return pages.render(
                ctx, "password.html", status=400, error="The two new passwords differ.", done=False
            )
        try:
            runtime.auth.change_password(
                ctx.signed, ctx.field("current"), ctx.field("new_password"), ctx.origin
            )
        except AccountLocked as exc:
            response = login_response(ctx, status=423, error=exc.message)
            _clear_session(response)
            return response
        except AuthenticationFailed:
            return pages.render(
                ctx, "password.html", status=401, error="The current password is wrong.", done=False
            )
        except InvalidInput as exc:
            return pages.render(ctx, "password.html", status=400, error=exc.message, done=False)
        return pages.redirect("/account/password?done=1")

    @pages.route("/step-up", _P.ACCOUNT_SELF)
    def step_up_page(request: Request) -> Response:
        ctx = _ctx(request)
        return pages.render(ctx, "stepup.html", error="", next=safe_next(ctx.query("next")))

    @pages.route("/step-up", _P.ACCOUNT_SELF, methods=("POST",))
    def step_up_submit(request: Request) -> Response:
        ctx = _ctx(request)
        assert ctx.signed is not None
        target = safe_next(ctx.field("next"))
        try:
            runtime.auth.step_up(ctx.signed, ctx.field("code"), ctx.origin)
        except AccountLocked as exc:
            response = login_response(ctx, status=423, error=exc.message)
            _clear_session(response)
            return response
        except AuthenticationFailed:
            return pages.render(
                ctx, "stepup.html", status=401, error="That code is not valid.", next=target
            )
        return pages.redirect(target)

    # ------------------------------------------------------------ payments and refunds

    def need(component: Any, what: str) -> Any:
        if component is None:
            raise Unavailable(f"The {what} is not connected to this dashboard.")
        return component

    @pages.route("/payments", _P.PAYMENTS_VIEW)
    def payments_page(request: Request) -> Response:
        ctx = _ctx(request)
        reads = need(runtime.payments, "payment read model")
        form = {
            name: ctx.query(name)
            for name in (
                "charge_id",
                "merchant_id",
                "status",
                "from",
                "to",
                "amount",
                "currency",
                "last4",
            )
        }
        error = ""
        rows: list[Any] = []
        query = None
        try:
            amount = None
            if form["amount"]:
                amount = parse_money(form["amount"], form["currency"] or "usd")
                if amount is None:
                    raise InvalidInput("The amount is a decimal number like 12.50.", field="amount")
            last4 = form["last4"]
            if last4 and (len(last4) != 4 or not last4.isdigit()):
                raise InvalidInput("Last 4 is exactly four digits.", field="last4")
            query = PaymentQuery(
                charge_id=form["charge_id"] or None,
                merchant_id=form["merchant_id"] or None,
                status=form["status"] or None,
                created_from=_date(form["from"], "from"),
                created_to=_date(form["to"], "to"),
                amount=amount,
                last4=last4 or None,
            )
            rows = reads.search(query)
        except InvalidInput as exc:
            error = exc.message
        return pages.render(
            ctx,
            "payments.html",
            form=form,
            rows=rows,
            error=error,
            searched=query is not None and not query.empty,
            statuses=["processing", "requires_capture", "succeeded", "failed", "canceled"],
        )

    @pages.route("/payments/{charge_id}", _P.PAYMENTS_VIEW)
    def payment_page(request: Request, charge_id: str) -> Response:
        ctx = _ctx(request)
        reads = need(runtime.payments, "payment read model")
        charge = reads.charge(charge_id)
        if charge is None:
            raise NotFound("No such charge.")
        detail = charge_detail(charge)
        timeline = [
            {
                "at": event.recorded_at,
                "type": event.type,
                "summary": describe_event(event.type, event.data, charge.currency),
                "version": event.version,
            }
            for event in reads.events(charge_id)
        ]
        requests = runtime.refunds.for_charge(charge.id) if runtime.refunds else []
        return pages.render(
            ctx,
            "payment.html",
            detail=detail,
            timeline=timeline,
            requests=requests,
            refundable=is_refundable(detail),
            refunds_enabled=runtime.refunds is not None,
            error=ctx.query("error"),
            done=ctx.query("done"),
        )

    @pages.route("/payments/{charge_id}/refund-requests", _P.REFUNDS_REQUEST, methods=("POST",))
    def refund_request_submit(request: Request, charge_id: str) -> Response:
        ctx = _ctx(request)
        refunds = need(runtime.refunds, "refund service")
        reads = need(runtime.payments, "payment read model")
        charge = reads.charge(charge_id)
        if charge is None:
            raise NotFound("No such charge.")
        amount = parse_money(ctx.field("amount"), charge.currency)
        try:
            if amount is None:
                raise InvalidInput("The amount is a decimal number like 12.50.", field="amount")
            made = refunds.request(
                ctx.user,
                charge.id,
                amount,
                ctx.field("reason"),
                ctx.origin,
                category=ctx.field("category", "requested_by_customer"),
            )
        except InvalidInput as exc:
            return pages.redirect(f"/payments/{charge.id}?error={_q(exc.message)}")
        message = f"Refund request {made.id} waits for a finance approval."
        return pages.redirect(f"/payments/{charge.id}?done={_q(message)}")

    @pages.route("/refunds", _P.REFUNDS_VIEW)
    def refunds_page(request: Request) -> Response:
        ctx = _ctx(request)
        refunds = need(runtime.refunds, "refund service")
        chosen = ctx.query("status")
        status = RefundRequestStatus(chosen) if chosen in set(RefundRequestStatus) else None
        return pages.render(
            ctx,
            "refunds.html",
            requests=refunds.requests(status),
            chosen=chosen,
            statuses=[s.value for s in RefundRequestStatus],
            done=ctx.query("done"),
        )

    def decide(request: Request, request_id: str, action: str) -> Response:
        ctx = _ctx(request)
        refunds = need(runtime.refunds, "refund service")
        if action == "approve":
            result = refunds.approve(ctx.user, request_id, ctx.origin)
        elif action == "retry":
            result = refunds.retry(ctx.user, request_id, ctx.origin)
        else:
            result = refunds.reject(ctx.user, request_id, ctx.field("note"), ctx.origin)
        message = f"Refund request {result.id} is {result.status.value.replace('_', ' ')}."
        if result.error:
            message += f" The API said: {result.error}"
        return pages.redirect(f"/refunds?done={_q(message)}")

    @pages.route("/refunds/{request_id}/approve", _P.REFUNDS_APPROVE, methods=("POST",))
    def refund_approve(request: Request, request_id: str) -> Response:
        return decide(request, request_id, "approve")

    @pages.route("/refunds/{request_id}/retry", _P.REFUNDS_APPROVE, methods=("POST",))
    def refund_retry(request: Request, request_id: str) -> Response:
        return decide(request, request_id, "retry")

    @pages.route("/refunds/{request_id}/reject", _P.REFUNDS_APPROVE, methods=("POST",))
    def refund_reject(request: Request, request_id: str) -> Response:
        return decide(request, request_id, "reject")

    # ------------------------------------------------------------ merchants (admins)

    @pages.route("/merchants", _P.MERCHANTS_VIEW)
    def merchants_page(request: Request) -> Response:
        ctx = _ctx(request)
        commands = need(runtime.commands, "merchant API")
        return pages.render(ctx, "merchants.html", merchants=commands.merchants())

    @pages.route("/merchants/{merchant_id}", _P.MERCHANTS_VIEW)
    def merchant_page(request: Request, merchant_id: str) -> Response:
        ctx = _ctx(request)
        commands = need(runtime.commands, "merchant API")
        return merchant_view(ctx, commands, merchant_id)

    def merchant_view(
        ctx: PageContext, commands: Any, merchant_id: str, *, issued: Any = None, status: int = 200
    ) -> Response:
        details = commands.merchant(merchant_id)
        endpoints = [e["id"] for e in details["webhook_endpoints"]]
        deliveries = need(runtime.merchants, "merchant API").deliveries(merchant_id, endpoints)
        today = datetime.now(UTC).date()
        return pages.render(
            ctx,
            "merchant.html",
            status=status,
            m=details,
            deliveries=deliveries,
            webhooks_connected=runtime.webhooks is not None,
            issued=issued,
            today=today.isoformat(),
            done=ctx.query("done"),
            error=ctx.query("error"),
        )

    @pages.route(
        "/merchants/{merchant_id}/keys/{key_id}/rotate",
        _P.MERCHANTS_MANAGE,
        methods=("POST",),
        step_up=True,
    )
    def key_rotate(request: Request, merchant_id: str, key_id: str) -> Response:
        ctx = _ctx(request)
        commands = need(runtime.commands, "merchant API")
        try:
            hours = float(ctx.field("overlap_hours", "24") or "24")
        except ValueError:
            raise InvalidInput("The overlap is a number of hours.", field="overlap_hours") from None
        issued = need(runtime.merchants, "merchant API").rotate_key(
            ctx.user, merchant_id, key_id, overlap_hours=hours, origin=ctx.origin
        )
        # The new key is shown on this answer only (never stored here, never in a URL).
        return merchant_view(ctx, commands, merchant_id, issued=issued)

    @pages.route(
        "/merchants/{merchant_id}/keys/{key_id}/revoke",
        _P.MERCHANTS_MANAGE,
        methods=("POST",),
        step_up=True,
    )
    def key_revoke(request: Request, merchant_id: str, key_id: str) -> Response:
        ctx = _ctx(request)
        need(runtime.merchants, "merchant API").revoke_key(
            ctx.user, merchant_id, key_id, reason=ctx.field("reason"), origin=ctx.origin
        )
        message = f"Key {key_id} is revoked."
        return pages.redirect(f"/merchants/{_q(merchant_id)}?done={_q(message)}")

    @pages.route(
        "/merchants/{merchant_id}/raw-card", _P.MERCHANTS_MANAGE, methods=("POST",), step_up=True
    )
    def raw_card(request: Request, merchant_id: str) -> Response:
        ctx = _ctx(request)
        grant = ctx.field("action") == "grant"
        expires = _date(ctx.field("attestation_expires_on"), "attestation_expires_on")
        need(runtime.merchants, "merchant API").set_raw_card(
            ctx.user,
            merchant_id,
            granted=grant,
            attestation_expires_on=expires,
            reason=ctx.field("reason"),
            origin=ctx.origin,
        )
        message = "raw_card_data " + ("granted." if grant else "revoked.")
        return pages.redirect(f"/merchants/{_q(merchant_id)}?done={_q(message)}")

    @pages.route(
        "/merchants/{merchant_id}/deliveries/{delivery_id}/redeliver",
        _P.MERCHANTS_MANAGE,
        methods=("POST",),
    )
    def redeliver(request: Request, merchant_id: str, delivery_id: int) -> Response:
        ctx = _ctx(request)
        need(runtime.merchants, "merchant API").redeliver(
            ctx.user, merchant_id, delivery_id, origin=ctx.origin
        )
        message = f"Delivery {delivery_id} is queued again."
        return pages.redirect(f"/merchants/{_q(merchant_id)}?done={_q(message)}")

    # ------------------------------------------------------------ finance

    @pages.route("/finance", _P.FINANCE_VIEW)
    def finance_page(request: Request) -> Response:
        ctx = _ctx(request)
        finance = need(runtime.finance, "ledger")
        today = datetime.now(UTC).date()
        start = today - timedelta(days=13)
        summary = summarize(finance.balances())
        shown = []
        for line in series(finance.daily_stats(start, today), start, today):
            label = line.currency.upper()
            volume = [
                charts.Point(
                    d.day.strftime("%m-%d"),
                    float(d.volume) / 10 ** decimals(d.currency),
                    format_money(d.volume, d.currency),
                )
                for d in line.days
            ]
            rate = [
                charts.Point(
                    d.day.strftime("%m-%d"),
                    d.approval_rate,
                    "no decided charges"
                    if d.approval_rate is None
                    else f"{d.approval_rate:.0%} of {d.succeeded + d.failed}",
                )
                for d in line.days
            ]
            shown.append(
                {
                    "currency": label,
                    "volume": charts.bar_chart(f"Daily captured volume, {label}", volume),
                    "rate": charts.rate_chart(f"Daily approval rate, {label}", rate),
                }
            )
        return pages.render(
            ctx,
            "finance.html",
            summary=summary,
            charts=shown,
            reports=need(runtime.reconciliation, "ledger").reports(),
            resolutions=[s.value for s in ResolutionStatus],
            done=ctx.query("done"),
            start=start,
            end=today,
        )

    @pages.route("/finance/reconciliation/{day}/resolve", _P.FINANCE_RESOLVE, methods=("POST",))
    def reconciliation_resolve(request: Request, day: str) -> Response:
        ctx = _ctx(request)
        chosen = _date(day, "day")
        assert chosen is not None
        resolution = need(runtime.reconciliation, "ledger").resolve(
            ctx.user, chosen, ctx.field("key"), ctx.field("status"), ctx.field("note"), ctx.origin
        )
        message = f"{resolution.key} of {day} is {resolution.status.value}."
        return pages.redirect(f"/finance?done={_q(message)}#recon-{day}")

    # ------------------------------------------------------------ operations (admins)

    @pages.route("/operations", _P.OPERATIONS_VIEW)
    def operations_page(request: Request) -> Response:
        ctx = _ctx(request)
        operations = need(runtime.operations, "platform")
        return pages.render(
            ctx,
            "operations.html",
            jobs=operations.dead_jobs(),
            lags=operations.projection_lags(),
            done=ctx.query("done"),
        )

    @pages.route("/operations/dlq/replay", _P.OPERATIONS_REPLAY, methods=("POST",))
    def dlq_replay(request: Request) -> Response:
        ctx = _ctx(request)
        chosen = [v for v in ctx.form.getlist("job_id") if isinstance(v, str)] if ctx.form else []
        admin = need(runtime.operations_service, "platform")
        count = admin.replay(ctx.user, chosen, ctx.origin)
        return pages.redirect(f"/operations?done={_q(f'{count} job(s) put back on the queue.')}")

    # ------------------------------------------------------------ audit (auditors)

    @pages.route("/audit", _P.AUDIT_VIEW, step_up=True)
    def audit_page(request: Request) -> Response:
        ctx = _ctx(request)
        form = {
            name: ctx.query(name)
            for name in ("actor", "event_type", "outcome", "target", "request_id", "from", "to")
        }
        error = ""
        records: list[Any] = []
        searched = any(form.values()) or ctx.query("search") == "1"
        if searched:
            try:
                start = _date(form["from"], "from")
                end = _date(form["to"], "to")
                query = SearchQuery(
                    actor=form["actor"] or None,
                    event_types=(form["event_type"],) if form["event_type"] else (),
                    outcome=form["outcome"] or None,
                    target=form["target"] or None,
                    request_id=form["request_id"] or None,
                    time_from=_day_start(start) if start else None,
                    time_to=_day_start(end + timedelta(days=1)) if end else None,
                )
                records = runtime.audit_pages.search(ctx.user, query, ctx.origin)
            except InvalidInput as exc:
                error = exc.message
        report = runtime.audit_pages.verify(ctx.user, ctx.origin)
        today = datetime.now(UTC).date()
        return pages.render(
            ctx,
            "audit.html",
            form=form,
            records=records,
            searched=searched,
            error=error,
            report=report,
            zones=list(runtime.audit_pages.viewer.zones),
            export_from=(today - timedelta(days=7)).isoformat(),
            export_to=today.isoformat(),
        )

    @pages.route("/audit/records/{stream}/{seq}", _P.AUDIT_VIEW, step_up=True)
    def audit_record_page(request: Request, stream: str, seq: int) -> Response:
        ctx = _ctx(request)
        record = runtime.audit_pages.record(ctx.user, stream, seq, ctx.origin)
        return pages.render(ctx, "audit_record.html", record=record, body=record.to_dict())

    @pages.route("/audit/export", _P.AUDIT_EXPORT, methods=("POST",), step_up=True)
    def audit_export(request: Request) -> Response:
        ctx = _ctx(request)
        start = _date(ctx.field("from"), "from")
        end = _date(ctx.field("to"), "to")
        if start is None or end is None:
            raise InvalidInput("Give the first and the last day of the range.", field="from")
        evidence = runtime.audit_pages.export(
            ctx.user,
            datetime(start.year, start.month, start.day, tzinfo=UTC),
            datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1),
            ctx.origin,
        )
        return FileResponse(
            evidence.path,
            media_type="application/zip",
            filename=evidence.name,
            headers={"X-Evidence-Manifest-SHA256": evidence.manifest_sha256},
            background=BackgroundTask(_remove, evidence.path),
        )

    # ------------------------------------------------------------ staff accounts

    @pages.route("/staff", _P.STAFF_VIEW)
    def staff_page(request: Request) -> Response:
        ctx = _ctx(request)
        return pages.render(
            ctx,
            "staff.html",
            users=runtime.staff.users(),
            locked=runtime.staff.locked_names(),
            roles=runtime.staff.roles(),
            done=ctx.query("done"),
        )

    def secret_page(ctx: PageContext, title: str, username: str, **values: Any) -> Response:
        return pages.render(ctx, "staff_secret.html", title=title, username=username, **values)

    @pages.route("/staff", _P.STAFF_MANAGE, methods=("POST",), step_up=True)
    def staff_create(request: Request) -> Response:
        ctx = _ctx(request)
        made = runtime.staff.create_user(
            ctx.field("username"), ctx.field("role"), actor=ctx.user.username, origin=ctx.origin
        )
        return secret_page(
            ctx,
            "Account created",
            made.user.username,
            provisioning_uri=made.provisioning_uri,
            password=made.initial_password,
        )

    @pages.route("/staff/{username}/reset-mfa", _P.STAFF_MANAGE, methods=("POST",), step_up=True)
    def staff_reset_mfa(request: Request, username: str) -> Response:
        ctx = _ctx(request)
        uri = runtime.staff.reset_mfa(username, actor=ctx.user.username, origin=ctx.origin)
        return secret_page(ctx, "MFA reset", username, provisioning_uri=uri, password=None)

    @pages.route(
        "/staff/{username}/reset-password", _P.STAFF_MANAGE, methods=("POST",), step_up=True
    )
    def staff_reset_password(request: Request, username: str) -> Response:
        ctx = _ctx(request)
        password = runtime.staff.reset_password(
            username, actor=ctx.user.username, origin=ctx.origin
        )
        return secret_page(
            ctx, "Password reset", username, provisioning_uri=None, password=password
        )

    @pages.route("/staff/{username}/unlock", _P.STAFF_MANAGE, methods=("POST",))
    def staff_unlock(request: Request, username: str) -> Response:
        ctx = _ctx(request)
        runtime.staff.unlock(username, actor=ctx.user.username, origin=ctx.origin)
        return pages.redirect(f"/staff?done={_q(username + ' is unlocked.')}")

    @pages.route("/staff/{username}/role", _P.STAFF_MANAGE, methods=("POST",), step_up=True)
    def staff_role(request: Request, username: str) -> Response:
        ctx = _ctx(request)
        changed = runtime.staff.set_role(
            username, ctx.field("role"), actor=ctx.user.username, origin=ctx.origin
        )
        return pages.redirect(
            f"/staff?done={_q(changed.username + ' is now ' + changed.role.value + '.')}"
        )

    @pages.route("/staff/{username}/status", _P.STAFF_MANAGE, methods=("POST",))
    def staff_status(request: Request, username: str) -> Response:
        ctx = _ctx(request)
        changed = runtime.staff.set_status(
            username, ctx.field("status"), actor=ctx.user.username, origin=ctx.origin
        )
        return pages.redirect(
            f"/staff?done={_q(changed.username + ' is ' + changed.status.value + '.')}"
        )

    pages.check_complete()
    return app


def _q(text: str) -> str:
    return quote(text[:300], safe="")


def _day_start(day: date) -> str:
    return f"{day.isoformat()}T00:00:00.000Z"


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
