"""noncde.dashboard web (non-CDE): the page framework: one permission per route, the session
and anti-forgery checks, and HTML rendering.

`Pages.route(path, permission)` is the only way a route is added: it records the permission
in `registry`, and `Pages.check_complete()` refuses to start an app that has a route without
one (PCI DSS 7.2.1 deny by default; tests/unit/dashboard/test_access.py). On each request the
guard resolves the session (idle timeout, 8.2.8), checks the form's origin and anti-forgery
token on every POST, forces a pending password change, checks the permission (403, audited)
and, for sensitive pages, a recent second factor (step-up).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from audit.domain import EventType, Outcome
from noncde.dashboard.bootstrap import DashboardRuntime
from noncde.dashboard.domain import (
    CsrfRejected,
    Permission,
    StaffUser,
    permissions_of,
)
from noncde.dashboard.domain.views import format_money
from noncde.dashboard.service import Origin, SessionEnded, SignedIn
from noncde.dashboard.service.context import staff_actor
from noncde.dashboard.web.security import LOGIN_COOKIE, SESSION_COOKIE, same_origin

TEMPLATES = Path(__file__).with_name("templates")
# Routes of the service kit (health, readiness, metrics): no page, no session.
KIT_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
PUBLIC: None = None


class Redirect(Exception):
    """Answer with a 303 to `url` (and optionally drop the session cookie)."""

    def __init__(self, url: str, *, clear_session: bool = False) -> None:
        super().__init__(url)
        self.url = url
        self.clear_session = clear_session


class NotSignedIn(Exception):
    """A POST without a valid session (a GET is redirected to the login page instead)."""


@dataclass
class PageContext:
    """What a page handler gets: the request, who is signed in, the parsed form."""

    request: Request
    origin: Origin
    nonce: str
    signed: SignedIn | None = None
    form: FormData | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)

    @property
    def user(self) -> StaffUser:
        assert self.signed is not None, "a public page has no user"
        return self.signed.user

    @property
    def csrf(self) -> str:
        if self.signed is not None:
            return self.signed.session.csrf_token
        return self.request.cookies.get(LOGIN_COOKIE, "")

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def query(self, name: str) -> str:
        return self.request.query_params.get(name, "").strip()


def expected_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def origin_of(request: Request) -> Origin:
    client = request.client.host if request.client else None
    return Origin(ip=client, request_id=getattr(request.state, "request_id", None))


def safe_next(value: str) -> str:
    """A same-site path to return to (never another host: no open redirect)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:300]
    return "/"


class Pages:
    """Registers routes with their permission and renders templates."""

    def __init__(self, app: FastAPI, runtime: DashboardRuntime) -> None:
        self.app = app
        self.runtime = runtime
        self.registry: dict[tuple[str, str], Permission | None] = {}
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(("html",), default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(money=format_money, Permission=Permission)
        self.env.filters["when"] = lambda value: (
            value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"
        )
        self.env.filters["urlpart"] = lambda value: quote(str(value), safe="")
        self.static: dict[str, Any] = {}

    # ------------------------------------------------------------ registration

    def route(
        self,
        path: str,
        permission: Permission | None,
        *,
        methods: tuple[str, ...] = ("GET",),
        step_up: bool = False,
    ) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        """Add a page or action; `permission` None marks a public page (login, static)."""

        def decorate(handler: Callable[..., Response]) -> Callable[..., Response]:
            async def guard(request: Request) -> None:
                request.state.page = await self._enter(request, permission, step_up)

            for method in methods:
                if (method, path) in self.registry:
                    raise RuntimeError(f"route {method} {path} registered twice")
                self.registry[(method, path)] = permission
            self.app.add_api_route(
                path,
                handler,
                methods=list(methods),
                dependencies=[Depends(guard)],
                include_in_schema=False,
                response_class=HTMLResponse,
            )
            return handler

        return decorate

    def check_complete(self) -> None:
        """Refuse an app with a route that declares no permission (deny by default)."""
        for route in self.app.routes:
            if not isinstance(route, APIRoute) or route.path in KIT_ROUTES:
                continue
            for method in route.methods or ():
                if method == "HEAD":
                    continue
                if (method, route.path) not in self.registry:
                    raise RuntimeError(f"route {method} {route.path} declares no permission")

    # ------------------------------------------------------------ the guard

    async def _enter(
        self, request: Request, permission: Permission | None, step_up: bool
    ) -> PageContext:
        runtime = self.runtime
        origin = origin_of(request)
        context = PageContext(
            request=request,
            origin=origin,
            nonce=request.scope.get("state", {}).get("csp_nonce", ""),
            path_params=dict(request.path_params),
        )
        token = request.cookies.get(SESSION_COOKIE)
        posting = request.method == "POST"
        if posting:
            if not same_origin(
                request.headers.get("origin"),
                request.headers.get("sec-fetch-site"),
                expected_origin(request),
            ):
                await self._refused(request, origin, "cross-site form post")
            context.form = await request.form()
        if permission is None:
            if posting:
                submitted = context.field("csrf_token")
                login_cookie = request.cookies.get(LOGIN_COOKIE, "")
                by_cookie = bool(login_cookie) and hmac.compare_digest(
                    login_cookie.encode(), submitted.encode()
                )
                by_session = await run_in_threadpool(
                    runtime.auth.check_csrf, None, token, submitted
                )
                if not (by_cookie or by_session):
                    await self._refused(request, origin, "missing or wrong anti-forgery token")
            return context
        try:
            signed = await run_in_threadpool(runtime.auth.resolve, token, origin)
        except SessionEnded as ended:
            raise Redirect(f"/login?ended={quote(ended.reason)}", clear_session=True) from None
        if signed is None:
            if posting:
                raise NotSignedIn()
            pending = await run_in_threadpool(runtime.auth.pending_user, token) if token else None
            if pending is not None:
                # The password was accepted; the code is still owed (no page opens before).
                raise Redirect("/login/mfa")
            raise Redirect("/login", clear_session=bool(token))
        context.signed = signed
        # Error pages from here on (403, step-up) show the signed-in menu.
        request.state.page = context
        if posting and not runtime.auth.check_csrf(signed, None, context.field("csrf_token")):
            await self._refused(request, origin, "missing or wrong anti-forgery token", signed)
        if signed.user.must_change_password and request.url.path not in {
            "/account/password",
            "/logout",
        }:
            raise Redirect("/account/password")
        await run_in_threadpool(
            runtime.access.require,
            signed.user,
            permission,
            resource=request.url.path,
            origin=origin,
        )
        if step_up and not runtime.auth.stepped_up(signed):
            target = safe_next(context.field("next") if posting else request.url.path)
            raise Redirect(f"/step-up?next={quote(target)}")
        return context

    async def _refused(
        self, request: Request, origin: Origin, reason: str, signed: SignedIn | None = None
    ) -> None:
        """Audit a refused form post (PCI DSS 10.2.1.4) and answer 403."""
        actor = staff_actor(signed.user.username) if signed else "anonymous"

        def record() -> None:
            self.runtime.audit.record(
                EventType.ACCESS_DENIED,
                actor=actor,
                outcome=Outcome.FAILURE,
                target=request.url.path[:200],
                resource="dashboard.form",
                reason=reason,
                request_id=origin.request_id,
                origin_ip=origin.ip,
            )

        await run_in_threadpool(record)
        raise CsrfRejected(
            "This form could not be accepted (it came from another page or expired). "
            "Go back, reload the page and try again."
        )

    # ------------------------------------------------------------ rendering

    def render(
        self, ctx: PageContext, template: str, *, status: int = 200, **values: Any
    ) -> HTMLResponse:
        signed = ctx.signed
        granted = permissions_of(signed.user.role) if signed else frozenset()
        html = self.env.get_template(template).render(
            nonce=ctx.nonce,
            csrf=ctx.csrf,
            user=signed.user if signed else None,
            can=lambda p: p in granted,
            idle_seconds=self.runtime.config.idle_timeout_s,
            static=self.static,
            oidc_enabled=self.runtime.auth.oidc is not None,
            **values,
        )
        return HTMLResponse(html, status_code=status)

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)
