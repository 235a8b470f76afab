"""noncde.dashboard web (non-CDE): response security headers, the CSP nonce, cookies and the
cross-site checks of form posts.

- A strict Content-Security-Policy on every response: nothing may load from another origin,
  no inline script without this response's nonce, no inline style, no framing, forms post
  only to this origin (PCI DSS 6.4.3-style control of what runs on the page).
- HSTS, nosniff, referrers only to this origin (`same-origin`: with `no-referrer` browsers
  send `Origin: null` on form posts, which would blind the origin check), no caching of
  pages, a cross-origin opener/resource policy.
- Cookies are `__Host-` prefixed, Secure, HttpOnly and SameSite=Strict.
- Every POST must come from this origin (Origin / Sec-Fetch-Site) and carry the session's
  anti-forgery token (checked by the routes against the session).
"""

from __future__ import annotations

import base64
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "__Host-fincore-dash"
LOGIN_COOKIE = "__Host-fincore-dash-login"


def new_nonce() -> str:
    return base64.b64encode(secrets.token_bytes(18)).decode("ascii")


def content_security_policy(nonce: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "upgrade-insecure-requests",
        )
    )


STATIC_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (
        b"permissions-policy",
        b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    ),
)


class SecurityHeaders:
    """Pure ASGI middleware: a fresh CSP nonce per request (`scope["state"]["csp_nonce"]`) and
    the security headers on every response. Pages are never cached (`no-store`); only the
    first-party static files may be."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = new_nonce()
        scope.setdefault("state", {})["csp_nonce"] = nonce
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {b"content-security-policy", b"cache-control", b"server"}
                ]
                headers.append(
                    (b"content-security-policy", content_security_policy(nonce).encode())
                )
                headers.extend(STATIC_HEADERS)
                headers.append(
                    (b"cache-control", b"public, max-age=3600" if static else b"no-store")
                )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def same_origin(origin: str | None, fetch_site: str | None, expected: str) -> bool:
    """A form post came from this dashboard's own pages.

    Browsers send `Sec-Fetch-Site` (same-origin for our own forms) and `Origin` on POST; a
    cross-site post is refused even before the anti-forgery token is looked at.
    """
    if fetch_site is not None and fetch_site not in {"same-origin", "none"}:
        return False
    return origin is None or origin == expected
