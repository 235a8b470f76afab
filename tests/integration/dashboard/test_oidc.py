"""Single sign-on through OpenID Connect (authlib), against a tiny stand-in provider over TLS:
code flow with PKCE, ID token checks, the provider's second factor or our own TOTP, and each
way a login must fail."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from noncde.dashboard.adapters.oidc import AuthlibOidcProvider, OidcSettings
from tests.integration.dashboard.oidc_idp import StandInIdp
from tests.unit.dashboard.support import Harness, csrf_of, make_harness

CALLBACK = "https://testserver/oidc/callback"


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[StandInIdp]:
    server = StandInIdp(tmp_path / "pki", redirect_uris={CALLBACK}).start()
    yield server
    server.stop()


@pytest.fixture
def harness(tmp_path: Path, idp: StandInIdp) -> Iterator[Harness]:
    provider = AuthlibOidcProvider(
        OidcSettings(
            issuer=idp.url,
            client_id=idp.client_id,
            client_secret=idp.client_secret,
            ca_file=idp.ca_file,
        )
    )
    made = make_harness(
        tmp_path / "var",
        extra_env={"FINCORE_DASHBOARD_PUBLIC_URL": "https://testserver"},
        oidc=provider,
    )
    made.add_user("alice@example.com", "finance")
    yield made
    made.close()


def _to_provider(client: TestClient) -> str:
    page = client.get("/login")
    assert 'id="sso"' in page.text
    started = client.post(
        "/login/oidc", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert started.status_code == 303
    return started.headers["location"]


def _provider_redirect(idp: StandInIdp, url: str) -> str:
    context = ssl.create_default_context(cafile=str(idp.ca_file))
    answer = httpx.get(url, verify=context, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    back = answer.headers["location"]
    assert back.startswith(CALLBACK)
    parts = urlsplit(back)
    return f"{parts.path}?{parts.query}"


def test_sso_login_with_the_providers_second_factor(harness: Harness, idp: StandInIdp) -> None:
    """amr says MFA: the callback opens the dashboard; the login is audited as oidc/idp."""
    client = harness.client()
    url = _to_provider(client)
    assert url.startswith(idp.url + "/authorize?")
    assert "code_challenge_method=S256" in url and "nonce=" in url and "state=" in url
    done = client.get(_provider_redirect(idp, url), follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert client.get("/finance", follow_redirects=False).status_code != 303
    login = harness.events("admin.login")[-1]
    assert login.actor.id == "alice@example.com"
    assert login.details == {"method": "oidc", "role": "finance", "second_factor": "idp"}


def test_sso_without_a_provider_second_factor_asks_for_our_code(
    harness: Harness, idp: StandInIdp
) -> None:
    """amr without MFA: the TOTP code is still required before any page opens."""
    idp.amr = ["pwd"]
    client = harness.client()
    done = client.get(_provider_redirect(idp, _to_provider(client)), follow_redirects=False)
    assert done.headers["location"] == "/login/mfa"
    assert client.get("/", follow_redirects=False).headers["location"] == "/login/mfa"
    page = client.get("/login/mfa")
    verified = client.post(
        "/login/mfa",
        data={"csrf_token": csrf_of(page.text), "code": harness.code("alice@example.com")},
        follow_redirects=False,
    )
    assert verified.headers["location"] == "/"
    assert harness.events("admin.login")[-1].details["second_factor"] == "totp"


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("other_key", "oidc_id_token_signature"),
        ("audience", "oidc_id_token_claims:invalid_claim"),
        ("nonce", "oidc_id_token_claims:invalid_claim"),
        ("unknown_user", "oidc_unknown_user"),
    ],
)
def test_broken_id_tokens_and_unknown_people_are_refused(
    harness: Harness, idp: StandInIdp, breakage: str, reason: str
) -> None:
    """A token signed by another key, for another client or another login, or for a person
    without a staff account, signs nobody in, and the failure is audited."""
    if breakage == "other_key":
        idp.sign_with_other_key = True
    elif breakage == "audience":
        idp.audience = "someone-else"
    elif breakage == "nonce":
        idp.nonce_override = "not-the-nonce"
    else:
        idp.next_user = "mallory@example.com"
    client = harness.client()
    answer = client.get(_provider_redirect(idp, _to_provider(client)), follow_redirects=False)
    assert answer.status_code == 401
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    failure = harness.events("access.authentication_failure")[-1]
    assert failure.reason is not None and failure.reason.startswith(reason.split(":")[0])
    if ":" in reason:
        assert failure.reason == reason


def test_a_callback_cannot_be_replayed(harness: Harness, idp: StandInIdp) -> None:
    """The state is one-time: the same callback URL a second time is refused."""
    client = harness.client()
    callback = _provider_redirect(idp, _to_provider(client))
    assert client.get(callback, follow_redirects=False).status_code == 303
    other = harness.client()
    assert other.get(callback, follow_redirects=False).status_code == 401
    assert harness.events("access.authentication_failure")[-1].reason == "oidc_state_invalid"
