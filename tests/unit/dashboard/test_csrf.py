"""Cross-site request forgery: every form post needs the session's anti-forgery token and
must come from the dashboard's own origin; each refusal is audited and changes nothing."""

from __future__ import annotations

import pytest

from tests.unit.dashboard.support import PASSWORD, Harness, csrf_of


def test_a_post_without_the_token_is_refused_audited_and_changes_nothing(
    harness: Harness,
) -> None:
    """An admin action posted without the token is 403; the account stays unchanged."""
    client = harness.client()
    harness.sign_in(client, "admin.one")
    answer = client.post("/staff/support.one/status", data={"status": "disabled"})
    assert answer.status_code == 403
    user = harness.runtime.store.find_user("support.one")
    assert user is not None and user.active
    record = harness.events("access.denied")[-1]
    assert record.reason == "missing or wrong anti-forgery token"
    assert record.actor.id == "admin.one" and record.target == "/staff/support.one/status"


def test_a_token_of_another_session_is_refused(harness: Harness) -> None:
    """Tokens are bound to one session: another signed-in user's token does not work."""
    mine, theirs = harness.client(), harness.client()
    harness.sign_in(mine, "admin.one")
    harness.sign_in(theirs, "auditor.one")
    foreign = csrf_of(theirs.get("/").text)
    answer = mine.post(
        "/staff/support.one/status", data={"status": "disabled", "csrf_token": foreign}
    )
    assert answer.status_code == 403
    assert harness.runtime.store.find_user("support.one").active  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"origin": "null"},
    ],
)
def test_posts_from_another_origin_are_refused_even_with_the_token(
    harness: Harness, headers: dict[str, str]
) -> None:
    """Origin / Sec-Fetch-Site from another site: refused before the token is read."""
    client = harness.client()
    harness.sign_in(client, "admin.one")
    token = csrf_of(client.get("/").text)
    answer = client.post(
        "/staff/support.one/status",
        data={"status": "disabled", "csrf_token": token},
        headers=headers,
    )
    assert answer.status_code == 403
    assert harness.events("access.denied")[-1].reason == "cross-site form post"


def test_the_same_post_with_the_token_from_the_same_origin_works(harness: Harness) -> None:
    """The control case: our own form, our own origin, the right token."""
    client = harness.client()
    harness.sign_in(client, "admin.one")
    token = csrf_of(client.get("/").text)
    answer = client.post(
        "/staff/support.one/status",
        data={"status": "disabled", "csrf_token": token},
        headers={"origin": "https://testserver", "sec-fetch-site": "same-origin"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert not harness.runtime.store.find_user("support.one").active  # type: ignore[union-attr]


def test_the_login_form_is_protected_too(harness: Harness) -> None:
    """Login CSRF: a login post without the login page's token is refused (not even counted
    as a password attempt)."""
    client = harness.client()
    answer = client.post("/login", data={"username": "support.one", "password": PASSWORD})
    assert answer.status_code == 403
    assert harness.events("access.authentication_failure") == []
    page = client.get("/login")
    wrong = client.post(
        "/login",
        data={
            "username": "support.one",
            "password": PASSWORD,
            "csrf_token": "x" + csrf_of(page.text),
        },
    )
    assert wrong.status_code == 403


def test_logout_needs_the_token(harness: Harness) -> None:
    """A forged logout (no token) does not end the session."""
    client = harness.client()
    harness.sign_in(client, "finance.one")
    assert client.post("/logout", data={}).status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200
