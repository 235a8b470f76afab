"""Least privilege (PCI DSS 7.2.1-7.2.2): the role matrix, the route registry (no route without
a permission) and audited 403s for every page a role may not open."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI

from noncde.dashboard.domain import ROLE_PERMISSIONS, Permission, Role, allowed
from noncde.dashboard.web.pages import PUBLIC, Pages
from tests.unit.dashboard.support import Harness, csrf_of

# The reviewed policy (what each role may do), written out independently of the code.
POLICY: dict[str, set[str]] = {
    "support": {"payments.view", "refunds.view", "refunds.request", "account.self"},
    "finance": {
        "payments.view",
        "refunds.view",
        "refunds.approve",
        "finance.view",
        "finance.resolve",
        "account.self",
    },
    "auditor": {"audit.view", "audit.export", "staff.view", "account.self"},
    "admin": {
        "merchants.view",
        "merchants.manage",
        "operations.view",
        "operations.replay",
        "staff.view",
        "staff.manage",
        "account.self",
    },
}
PUBLIC_ROUTES = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/login/mfa"),
    ("POST", "/login/mfa"),
    ("POST", "/login/oidc"),
    ("GET", "/oidc/callback"),
    ("GET", "/static/dashboard.css"),
    ("GET", "/static/dashboard.js"),
}


def test_role_permissions_equal_the_reviewed_policy() -> None:
    """Every role holds exactly the permissions of the reviewed policy, no more."""
    assert {str(r): {str(p) for p in ps} for r, ps in ROLE_PERMISSIONS.items()} == POLICY
    assert set(POLICY) == {r.value for r in Role}


def test_unknown_roles_are_denied_everything() -> None:
    """Deny by default: a role name that is not a known role holds no permission."""
    assert not any(allowed("superuser", p) for p in Permission)
    assert not allowed("", Permission.ACCOUNT_SELF)


def test_support_cannot_approve_and_admin_sees_no_money_or_audit_log() -> None:
    """Separation of duties: requesting and approving refunds are different roles."""
    assert allowed(Role.SUPPORT, Permission.REFUNDS_REQUEST)
    assert not allowed(Role.SUPPORT, Permission.REFUNDS_APPROVE)
    assert not allowed(Role.FINANCE, Permission.REFUNDS_REQUEST)
    for permission in (Permission.PAYMENTS_VIEW, Permission.FINANCE_VIEW, Permission.AUDIT_VIEW):
        assert not allowed(Role.ADMIN, permission)


def test_every_route_declares_a_permission(harness: Harness) -> None:
    """The registry covers every route; only the login flow and static files are public."""
    app = harness.client().app
    assert isinstance(app, FastAPI)
    pages: Pages = app.state.pages
    public = {key for key, permission in pages.registry.items() if permission is PUBLIC}
    assert public == PUBLIC_ROUTES
    pages.check_complete()


def test_a_route_without_a_permission_stops_the_app_from_starting(harness: Harness) -> None:
    """Adding a route outside the registry makes `check_complete` refuse the app."""
    app = harness.client().app
    assert isinstance(app, FastAPI)
    app.add_api_route("/sneaky", lambda: {"ok": True})
    with pytest.raises(RuntimeError, match="declares no permission"):
        app.state.pages.check_complete()


def _concrete(path: str) -> str:
    """A URL for a route template (made-up ids; the permission check comes first)."""
    return re.sub(r"\{[^}]+\}", "x1", path.replace("{seq}", "1"))


@pytest.mark.parametrize("role", ["support", "finance", "auditor", "admin"])
def test_each_role_gets_403_on_every_page_it_may_not_open_and_it_is_audited(
    harness: Harness, role: str
) -> None:
    """For every protected GET page: a role without its permission gets 403 and an
    `access.denied` record; a role with it is let through the permission check."""
    client = harness.client()
    harness.sign_in(client, f"{role}.one")
    pages: Pages = client.app.state.pages  # type: ignore[attr-defined]
    denied_paths = []
    for (method, path), permission in sorted(pages.registry.items()):
        if method != "GET" or permission is PUBLIC:
            continue
        url = _concrete(path)
        answer = client.get(url, follow_redirects=False)
        if str(permission) in POLICY[role]:
            # Allowed: anything but a 403 (a step-up redirect, a 404 for a made-up id, a 503
            # for a component this unit test does not connect).
            assert answer.status_code != 403, (role, url, answer.text[:200])
        else:
            assert answer.status_code == 403, (role, url)
            assert "may not open this page" in answer.text
            denied_paths.append(url)
    assert denied_paths, f"{role} should be refused somewhere"
    records = harness.events("access.denied")
    audited = {(r.actor.id, r.target) for r in records}
    for url in denied_paths:
        assert (f"{role}.one", url) in audited
    assert all(r.outcome == "failure" and r.details["role"] == role for r in records)


@pytest.mark.parametrize("role", ["support", "finance", "auditor"])
def test_actions_are_refused_to_roles_without_the_permission(harness: Harness, role: str) -> None:
    """A form post to an admin action (unlock, role change) is 403 for other roles."""
    client = harness.client()
    harness.sign_in(client, f"{role}.one")
    token = csrf_of(client.get("/").text)
    answer = client.post("/staff/admin.one/unlock", data={"csrf_token": token})
    assert answer.status_code == 403
    assert any(
        r.target == "/staff/admin.one/unlock" and r.actor.id == f"{role}.one"
        for r in harness.events("access.denied")
    )


def test_navigation_shows_only_permitted_pages(harness: Harness) -> None:
    """The menu of each role links only to pages it may open."""
    links = {
        "support": {"payments", "refunds"},
        "finance": {"payments", "refunds", "finance"},
        "auditor": {"audit", "staff"},
        "admin": {"merchants", "operations", "staff"},
    }
    for role, expected in links.items():
        client = harness.client()
        harness.sign_in(client, f"{role}.one")
        home = client.get("/").text
        assert set(re.findall(r'id="nav-([a-z]+)"', home)) == expected, role
