"""Signing in (PCI DSS 8.3-8.5): password then TOTP, lockout after 10 failures for 30
minutes, 15-minute idle timeout, one-time codes, session rotation, logout, first-login
password change, step-up, security headers, and the audit record of each."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from noncde.dashboard.domain import token_key
from noncde.dashboard.service.context import shown_name
from noncde.dashboard.web.security import SESSION_COOKIE
from tests.unit.dashboard.support import PASSWORD, Harness, csrf_of


def _password_step(harness: Harness, client: TestClient, username: str, password: str) -> Any:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "username": username, "password": password},
        follow_redirects=False,
    )


def _code_step(client: TestClient, code: str) -> Any:
    page = client.get("/login/mfa")
    return client.post(
        "/login/mfa",
        data={"csrf_token": csrf_of(page.text), "code": code},
        follow_redirects=False,
    )


def test_login_with_password_and_totp_is_audited_and_sets_a_strict_cookie(
    harness: Harness,
) -> None:
    """Both factors open the start page; the login is recorded; the cookie is __Host-,
    Secure, HttpOnly and SameSite=Strict."""
    client = harness.client()
    answer = _password_step(harness, client, "support.one", PASSWORD)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=")
    for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert flag in cookie
    assert "Domain" not in cookie and "Max-Age" not in cookie
    done = _code_step(client, harness.code("support.one"))
    assert done.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and 'id="who">support.one<' in home.text
    logins = harness.events("admin.login")
    assert [(r.actor.id, r.outcome, r.details["second_factor"]) for r in logins] == [
        ("support.one", "success", "totp")
    ]
    assert logins[0].origin.ip == "testclient" and logins[0].request_id


def test_the_password_alone_opens_no_page(harness: Harness) -> None:
    """PCI DSS 8.4.2 / 8.5.1: between the password and the code, every page sends to login."""
    client = harness.client()
    _password_step(harness, client, "finance.one", PASSWORD)
    for url in ("/", "/payments", "/finance", "/account/password"):
        answer = client.get(url, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login/mfa", url


def test_session_id_changes_after_the_code(harness: Harness) -> None:
    """No session fixation: the pre-code token is dead once the code is accepted."""
    client = harness.client()
    _password_step(harness, client, "auditor.one", PASSWORD)
    before = client.cookies[SESSION_COOKIE]
    _code_step(client, harness.code("auditor.one"))
    after = client.cookies[SESSION_COOKIE]
    assert before != after
    assert harness.runtime.store.get_session(token_key(before)) is None
    stale = harness.client()
    stale.cookies.set(SESSION_COOKIE, before, domain="testserver")
    assert stale.get("/", follow_redirects=False).headers["location"] == "/login"


def test_wrong_and_replayed_codes_are_refused_and_audited(harness: Harness) -> None:
    """A wrong code fails; a code already used (same time step) cannot sign in again."""
    first = harness.client()
    _password_step(harness, first, "support.one", PASSWORD)
    wrong = "000000" if harness.code("support.one") != "000000" else "111111"
    refused = _code_step(first, wrong)
    assert refused.status_code == 401
    code = harness.code("support.one")
    assert _code_step(first, code).headers["location"] == "/"
    second = harness.client()
    _password_step(harness, second, "support.one", PASSWORD)
    replay = _code_step(second, code)
    assert replay.status_code == 401
    reasons = [r.reason for r in harness.events("access.authentication_failure")]
    assert reasons == ["totp_invalid", "totp_replayed"]


def test_ten_failures_lock_the_account_for_thirty_minutes(harness: Harness) -> None:
    """PCI DSS 8.3.4: after 10 wrong passwords the 11th attempt, even with the right
    password, is refused; at 29:59 it still is; at 30:00 the right password works again."""
    client = harness.client()
    for attempt in range(1, 11):
        answer = _password_step(harness, client, "finance.one", f"wrong password {attempt}")
        expected = 423 if attempt == 10 else 401
        assert answer.status_code == expected, attempt
    eleventh = _password_step(harness, client, "finance.one", PASSWORD)
    assert eleventh.status_code == 423
    assert "locked" in eleventh.text
    harness.clock.advance(minutes=29, seconds=59)
    assert _password_step(harness, client, "finance.one", PASSWORD).status_code == 423
    harness.clock.advance(seconds=1)
    assert _password_step(harness, client, "finance.one", PASSWORD).status_code == 303
    failures = harness.events("access.authentication_failure")
    assert [r.reason for r in failures] == ["bad_password"] * 10 + ["account_locked"] * 2
    assert failures[9].details["failures"] == 10 and failures[9].details["locked_until"]
    assert all(r.target == "finance.one" for r in failures)


def test_wrong_codes_count_toward_the_lockout(harness: Harness) -> None:
    """Failures of the second factor count too: the 10th wrong code locks the account."""
    client = harness.client()
    statuses = []
    for _ in range(10):
        if client.get("/login/mfa", follow_redirects=False).status_code != 200:
            _password_step(harness, client, "admin.one", PASSWORD)
        statuses.append(
            _code_step(
                client, "999999" if harness.code("admin.one") != "999999" else "888888"
            ).status_code
        )
    assert statuses[-1] == 423 and statuses[:-1] == [401] * 9
    assert _password_step(harness, client, "admin.one", PASSWORD).status_code == 423


def test_unknown_names_lock_like_real_ones_and_show_the_same_message(harness: Harness) -> None:
    """A login reveals nothing about which names exist: same answers, same lockout."""
    client = harness.client()
    unknown = _password_step(harness, client, "nobody.here", "some password 1")
    known = _password_step(harness, client, "support.one", "some password 1")
    assert unknown.status_code == known.status_code == 401
    assert "Invalid username, password or code." in unknown.text
    assert "Invalid username, password or code." in known.text
    for _ in range(9):
        _password_step(harness, client, "nobody.here", "some password 1")
    assert _password_step(harness, client, "nobody.here", "x").status_code == 423


def test_card_numbers_typed_as_user_name_are_never_audited(harness: Harness) -> None:
    """A card number in the user-name field is refused (the card-data guard's 400, before the
    login runs) and kept out of the audit log; the login's own check stays behind it."""
    client = harness.client()
    before = len(harness.events("access.authentication_failure"))
    answer = _password_step(harness, client, "4111 1111 1111 1111", "x")
    assert answer.status_code == 400
    assert len(harness.events("access.authentication_failure")) == before
    assert shown_name("4111 1111 1111 1111") is None


def test_an_administrator_unlocks_an_account_and_it_is_audited(harness: Harness) -> None:
    """The lock can be lifted before 30 minutes by an admin (audited with the admin's name)."""
    client = harness.client()
    for attempt in range(10):
        _password_step(harness, client, "support.one", f"wrong {attempt} xx")
    assert "support.one" in harness.runtime.staff.locked_names()
    admin = harness.client()
    harness.sign_in(admin, "admin.one")
    staff = admin.get("/staff")
    assert 'class="unlock"' in staff.text
    done = admin.post(
        "/staff/support.one/unlock",
        data={"csrf_token": csrf_of(staff.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert _password_step(harness, client, "support.one", PASSWORD).status_code == 303
    change = harness.events("identity.account_change")[-1]
    assert change.actor.id == "admin.one" and change.details["action"] == "unlock"
    assert change.details["failures_cleared"] == 10


def test_fifteen_idle_minutes_end_the_session(harness: Harness) -> None:
    """PCI DSS 8.2.8: a request 15 min after the last keeps the session; 15 min + 1 s of
    idleness ends it (redirect to login), and the end is audited."""
    client = harness.client()
    harness.sign_in(client, "support.one")
    harness.clock.advance(minutes=15)
    assert client.get("/", follow_redirects=False).status_code == 200
    harness.clock.advance(minutes=15, seconds=1)
    ended = client.get("/payments", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"] == "/login?ended=idle_timeout"
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    record = harness.events("admin.action")[-1]
    assert record.details == {"action": "session_end", "cause": "idle_timeout"}
    assert record.actor.id == "support.one"
    login = client.get("/login?ended=idle_timeout")
    assert "15 minutes without activity" in login.text


def test_abandoned_sessions_are_deleted(harness: Harness) -> None:
    """A browser that never comes back leaves no live session row behind."""
    client = harness.client()
    harness.sign_in(client, "support.one")
    key = token_key(client.cookies[SESSION_COOKIE])
    harness.clock.advance(hours=2)
    harness.sign_in(harness.client(), "finance.one")
    assert harness.runtime.store.get_session(key) is None


def test_logout_ends_the_session_and_is_audited(harness: Harness) -> None:
    """After logout the same cookie opens nothing."""
    client = harness.client()
    harness.sign_in(client, "auditor.one")
    token = client.cookies[SESSION_COOKIE]
    out = client.post(
        "/logout", data={"csrf_token": csrf_of(client.get("/").text)}, follow_redirects=False
    )
    assert out.headers["location"] == "/login?ended=logout"
    reuse = harness.client()
    reuse.cookies.set(SESSION_COOKIE, token, domain="testserver")
    assert reuse.get("/", follow_redirects=False).headers["location"] == "/login"
    assert harness.events("admin.action")[-1].details == {"action": "logout"}


def test_disabling_an_account_ends_its_sessions(harness: Harness) -> None:
    """PCI DSS 8.2.5: access ends at once when an admin disables the account."""
    victim = harness.client()
    harness.sign_in(victim, "finance.one")
    harness.runtime.staff.set_status("finance.one", "disabled", actor="admin.one")
    assert victim.get("/", follow_redirects=False).headers["location"].startswith("/login")
    assert _password_step(harness, harness.client(), "finance.one", PASSWORD).status_code == 401
    assert harness.events("access.authentication_failure")[-1].reason == "account_disabled"


def test_first_login_must_change_the_password_and_history_is_kept(harness: Harness) -> None:
    """PCI DSS 8.3.5-8.3.7: the initial password must be replaced, by a new one that is not
    the same as a recent one; every page waits until then."""
    harness.add_user("new.person", "support", ready=False)
    client = harness.client()
    harness.sign_in(client, "new.person")
    assert (
        client.get("/payments", follow_redirects=False).headers["location"] == "/account/password"
    )
    page = client.get("/account/password")
    assert 'id="must-change"' in page.text
    same = client.post(
        "/account/password",
        data={
            "csrf_token": csrf_of(page.text),
            "current": PASSWORD,
            "new_password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert same.status_code == 400 and "last four" in same.text
    weak = client.post(
        "/account/password",
        data={
            "csrf_token": csrf_of(page.text),
            "current": PASSWORD,
            "new_password": "short1",
            "confirm": "short1",
        },
    )
    assert weak.status_code == 400 and "at least 12 characters" in weak.text
    fresh = "Another good phrase 77"
    done = client.post(
        "/account/password",
        data={
            "csrf_token": csrf_of(page.text),
            "current": PASSWORD,
            "new_password": fresh,
            "confirm": fresh,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert client.get("/payments", follow_redirects=False).status_code != 303
    record = harness.events("identity.password_reset")[-1]
    assert record.actor.id == "new.person" and record.details["action"] == "own_password_change"


def test_sensitive_pages_ask_for_a_fresh_code_after_the_step_up_window(harness: Harness) -> None:
    """The audit log needs a code from the last 10 minutes (MFA step-up); a fresh code opens
    it again and the step-up is audited."""
    client = harness.client()
    harness.sign_in(client, "auditor.one")
    assert client.get("/audit", follow_redirects=False).status_code == 200
    harness.clock.advance(minutes=10, seconds=1)
    again = client.get("/audit", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/step-up?next=/audit"
    page = client.get("/step-up?next=/audit")
    wrong = client.post(
        "/step-up", data={"csrf_token": csrf_of(page.text), "code": "12345x", "next": "/audit"}
    )
    assert wrong.status_code == 401
    done = client.post(
        "/step-up",
        data={
            "csrf_token": csrf_of(page.text),
            "code": harness.code("auditor.one"),
            "next": "/audit",
        },
        follow_redirects=False,
    )
    assert done.headers["location"] == "/audit"
    assert client.get("/audit", follow_redirects=False).status_code == 200
    assert harness.events("admin.action")[-1].details == {"action": "mfa_step_up"}


def test_step_up_never_redirects_to_another_site(harness: Harness) -> None:
    """The `next` of the step-up page only ever names a path on this dashboard."""
    client = harness.client()
    harness.sign_in(client, "auditor.one")
    page = client.get("/step-up?next=//evil.example/x")
    assert 'value="/"' in page.text and "evil.example" not in page.text


@pytest.mark.parametrize("path", ["/login", "/"])
def test_security_headers_on_every_page(harness: Harness, path: str) -> None:
    """A strict CSP with a per-response nonce and the usual headers, on public and
    signed-in pages; pages are never cached."""
    client = harness.client()
    if path != "/login":
        harness.sign_in(client, "support.one")
    first = client.get(path)
    second = client.get(path)
    policy = first.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    ):
        assert directive in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in first.text
    assert nonce not in second.headers["content-security-policy"]
    assert first.headers["strict-transport-security"].startswith("max-age=")
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["x-frame-options"] == "DENY"
    assert first.headers["referrer-policy"] == "same-origin"
    assert first.headers["cache-control"] == "no-store"
    assert "server" not in first.headers


def test_nothing_happens_when_the_audit_log_cannot_record(harness: Harness) -> None:
    """Fail closed (PCI DSS 10.7.2): with the audit log down, nobody signs in."""
    client = harness.client()
    _password_step(harness, client, "support.one", PASSWORD)
    code = harness.code("support.one")
    harness.audit.close()
    answer = _code_step(client, code)
    assert answer.status_code == 503
    assert "nothing was done" in answer.text
    assert client.get("/", follow_redirects=False).status_code == 303
