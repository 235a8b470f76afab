"""Forged service identities, expired attestations, another merchant's token and replayed or
forged PSP webhooks (issue #11 "Bad input"): each is refused AND leaves an audit record of the
refusal, with the right event type, in the audit log of the zone that refused it (found by the
refusal's request id through the `audit` package's reader), and changes nothing."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from audit.domain import AuditRecord
from fincore.identity import TOKEN_HEADER, ServiceCredentials
from fincore.ids import random_id
from fincore.pki import ensure_ca, issue_service_credentials
from tests.security.fuzz import sign
from tests.security.stack import BRAND_CANARIES, Stack

pytestmark = pytest.mark.e2e

NON_CDE_SERVICES = ("api", "worker", "dashboard", "webhooks", "projectionist", "ledger")
AMEX, CID = next(iter(BRAND_CANARIES.items()))


# ---------------------------------------------------------------- forgeries


@dataclass(frozen=True)
class Forgery:
    """A way to present a service identity that must not be accepted."""

    label: str
    reason: str  # what the refusal's audit record names
    make: Callable[[Stack, str, str], dict[str, str]]  # (stack, caller, audience) -> headers


def _rogue(stack: Stack, caller: str, audience: str) -> dict[str, str]:
    """A certificate for the same service name and zone from another CA, and its token."""
    root = stack.var.parent / "rogue-pki"
    ensure_ca(root)
    zone = "cde" if caller in {"ingress", "vault", "gateway"} else "noncde"
    files = issue_service_credentials(root, caller, zone)
    return {TOKEN_HEADER: ServiceCredentials.from_files(files.key, files.cert).token_for(audience)}


def _expired(stack: Stack, caller: str, audience: str) -> dict[str, str]:
    """The genuine key and certificate, a token whose life ended an hour ago."""
    files = issue_service_credentials(stack.plan.pki_dir, caller, _zone(caller))
    credentials = ServiceCredentials.from_files(files.key, files.cert)
    return {TOKEN_HEADER: credentials.token_for(audience, now=time.time() - 3600)}


def _other_audience(stack: Stack, caller: str, audience: str) -> dict[str, str]:
    """A valid token of the caller, minted for another service."""
    other = "api" if audience != "api" else "vault"
    return stack.headers(caller, other)


def _tampered(stack: Stack, caller: str, audience: str) -> dict[str, str]:
    """A valid token whose claims were edited (a longer life) without the key."""
    header, claims, signature = stack.token(caller, audience).split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["exp"] += 600
    edited = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return {TOKEN_HEADER: f"{header}.{edited}.{signature}"}


def _missing(_stack: Stack, _caller: str, _audience: str) -> dict[str, str]:
    return {}


FORGERIES = [
    Forgery("signed by a rogue CA", "not issued by the trusted CA", _rogue),
    Forgery("expired", "expired", _expired),
    Forgery("for another audience", "another audience", _other_audience),
    Forgery("claims edited", "signature", _tampered),
    Forgery("no token", "missing service token", _missing),
]


def _zone(service: str) -> str:
    return "cde" if service in {"ingress", "vault", "gateway"} else "noncde"


# ---------------------------------------------------------------- refusal + audit


def refused_and_audited(
    stack: Stack,
    answer: httpx.Response,
    *,
    status: int,
    code: str,
    zone: str,
    event_type: str,
    reason: str | None = None,
) -> AuditRecord:
    """The answer is the refusal, and the refusing zone's audit log holds its record."""
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    request_id = error.get("request_id") or answer.headers["x-request-id"]
    found = stack.wait_for_audit(zone, request_id=request_id, event_types=(event_type,))
    assert found, f"no {event_type} record for {request_id} in the {zone} audit log"
    record = found[-1]
    assert record.outcome == "failure"
    if reason is not None:
        assert reason in (record.reason or ""), (record.reason, reason)
    return record


@dataclass(frozen=True)
class Endpoint:
    """One service-identity-protected endpoint: who may call it, how, and what is audited."""

    service: str
    method: str
    path: str
    allowed: tuple[str, ...]
    body: dict[str, Any] | None = None
    event_type: str = "access.service_identity_refused"

    @property
    def zone(self) -> str:
        return _zone(self.service)


def _tokenize(stack: Stack) -> str:
    merchant = stack.merchants["raw"]
    with stack.client() as client:
        answer = client.post(
            stack.url("vault") + "/v1/tokens",
            json={
                "merchant_id": merchant.merchant_id,
                "card": {"number": AMEX, "exp_month": 12, "exp_year": 2031, "cvc": CID},
            },
            headers=stack.headers("ingress", "vault"),
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    """A live vault token of the merchant `raw` (a canary card)."""
    return _tokenize(stack)


def endpoints(stack: Stack, token: str) -> list[Endpoint]:
    """Every endpoint that takes a service identity (the DELETE aims at a token of its own:
    the allowed caller's control call deletes it)."""
    spare = _tokenize(stack)
    merchant_id = stack.merchants["raw"].merchant_id
    key = stack.merchants["raw"].secret_key
    charge = {
        "charge_id": "ch_forged000001",
        "merchant_id": merchant_id,
        "amount": 100,
        "currency": "usd",
        "payment_method": {"type": "vault_token", "token": token},
    }
    return [
        Endpoint(
            "vault", "POST", "/v1/tokens", ("ingress",), {"merchant_id": merchant_id, "card": {}}
        ),
        Endpoint(
            "vault", "GET", f"/v1/tokens/{token}?merchant_id={merchant_id}", ("ingress", "gateway")
        ),
        Endpoint(
            "vault",
            "DELETE",
            f"/v1/tokens/{spare}?merchant_id={merchant_id}",
            ("ingress", "gateway"),
        ),
        Endpoint(
            "vault",
            "POST",
            f"/v1/tokens/{token}/detokenize",
            ("gateway",),
            {"merchant_id": merchant_id},
            event_type="card.detokenize_denied",
        ),
        Endpoint("vault", "GET", f"/v1/attestations/{merchant_id}", ("ingress",)),
        Endpoint("gateway", "POST", "/v1/authorizations", ("worker",), charge),
        Endpoint(
            "gateway",
            "POST",
            "/v1/refunds",
            ("worker",),
            {"refund_id": "re_forged01", "charge_id": "ch_forged000001"},
        ),
        Endpoint("gateway", "POST", "/v1/checkout_sessions", ("api",), {}),
        Endpoint("gateway", "GET", "/v1/payments/ch_forged000001", ("worker", "api")),
        Endpoint("api", "POST", "/internal/v1/merchant-auth", ("ingress",), {"api_key": key}),
        Endpoint("api", "POST", "/internal/v1/psp-events", ("gateway",), {"id": "pspevt_1"}),
        Endpoint("api", "GET", "/internal/v1/webhook_endpoints", ("webhooks",)),
        Endpoint("api", "GET", "/internal/v1/staff/merchants", ("dashboard",)),
        Endpoint("api", "POST", "/internal/v1/staff/refunds", ("dashboard",), {}),
    ]


def _call(
    stack: Stack, client: httpx.Client, endpoint: Endpoint, headers: dict[str, str]
) -> httpx.Response:
    return client.request(
        endpoint.method,
        stack.url(endpoint.service) + endpoint.path,
        json=endpoint.body,
        headers=headers,
    )


def test_forged_service_identities_are_refused_and_audited(stack: Stack, token: str) -> None:
    """A rogue CA's certificate, an expired token, a token for another service, edited claims
    and no token at all: 401 at every vault, gateway and API-internal endpoint, each with a
    refusal record naming the problem in the callee's zone (vault and gateway: CDE; API:
    non-CDE; a refused detokenize is `card.detokenize_denied`)."""
    checked = 0
    with stack.client() as client:
        for endpoint in endpoints(stack, token):
            caller = endpoint.allowed[0]
            for forgery in FORGERIES:
                answer = _call(
                    stack, client, endpoint, forgery.make(stack, caller, endpoint.service)
                )
                refused_and_audited(
                    stack,
                    answer,
                    status=401,
                    code="service_identity_invalid",
                    zone=endpoint.zone,
                    event_type=endpoint.event_type,
                    reason=forgery.reason,
                )
                checked += 1
    assert checked == 14 * len(FORGERIES)


def test_services_off_an_endpoints_allow_list_are_refused_and_audited(
    stack: Stack, token: str
) -> None:
    """Genuine identities of every other service: 403 `service_not_allowed` and an audit
    record naming the caller, at every endpoint; the allowed caller gets past (control)."""
    services = ("ingress", "vault", "gateway", *NON_CDE_SERVICES)
    with stack.client() as client:
        for endpoint in endpoints(stack, token):
            for caller in services:
                if caller in endpoint.allowed:
                    continue
                answer = _call(stack, client, endpoint, stack.headers(caller, endpoint.service))
                record = refused_and_audited(
                    stack,
                    answer,
                    status=403,
                    code="service_not_allowed",
                    zone=endpoint.zone,
                    event_type=endpoint.event_type,
                    reason="not allowed",
                )
                assert record.actor.id == caller
            allowed = _call(
                stack, client, endpoint, stack.headers(endpoint.allowed[-1], endpoint.service)
            )
            assert allowed.status_code not in (401, 403), (endpoint, allowed.text)


def test_non_cde_services_calling_detokenize_are_refused_and_audited(
    stack: Stack, token: str
) -> None:
    """Every non-CDE identity (and the CDE's own ingress and vault) asking the vault for the
    card behind a token: 403 and `card.detokenize_denied` in the CDE log naming the caller
    and the token; the card was not revealed and the gateway still gets it (control)."""
    merchant_id = stack.merchants["raw"].merchant_id
    url = stack.url("vault") + f"/v1/tokens/{token}/detokenize"
    with stack.client() as client:
        for caller in (*NON_CDE_SERVICES, "ingress", "vault"):
            answer = client.post(
                url, json={"merchant_id": merchant_id}, headers=stack.headers(caller, "vault")
            )
            assert AMEX not in answer.text
            record = refused_and_audited(
                stack,
                answer,
                status=403,
                code="service_not_allowed",
                zone="cde",
                event_type="card.detokenize_denied",
            )
            assert (record.actor.id, record.target) == (caller, token)
        revealed = client.post(
            url, json={"merchant_id": merchant_id}, headers=stack.headers("gateway", "vault")
        )
    assert revealed.status_code == 200 and revealed.json()["card"]["number"] == AMEX


# ---------------------------------------------------------------- attestations at the ingress


def _vault_records(stack: Stack) -> int:
    with sqlite3.connect(stack.var / "cde" / "vault.db") as conn:
        return int(conn.execute("SELECT count(*) FROM vault_records").fetchone()[0])


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("cde_expired", "cde_attestation_expired"),
        ("cde_missing", "cde_attestation_missing"),
        # The directory itself reports a lapsed attestation as an inactive capability.
        ("directory_expired", "capability_inactive"),
        ("sdk_only", "capability_inactive"),
    ],
)
def test_raw_cards_without_a_valid_attestation_are_refused_and_audited(
    stack: Stack, label: str, reason: str
) -> None:
    """The CDE register or the merchant directory says no (expired, missing, never granted):
    403 `raw_card_data_not_permitted` and `access.denied` with the reason in the CDE log;
    no card reaches the vault and the API holds no charge of the merchant."""
    merchant = stack.merchants[label]
    before = _vault_records(stack)
    with stack.client() as client:
        answer = client.post(
            stack.url("ingress") + "/v1/charges",
            json={
                "amount": 500,
                "currency": "usd",
                "payment_method": {
                    "type": "card",
                    "card": {"number": AMEX, "exp_month": 12, "exp_year": 2031, "cvc": CID},
                },
            },
            headers={"Authorization": f"Bearer {merchant.secret_key}"},
        )
        assert AMEX not in answer.text
        record = refused_and_audited(
            stack,
            answer,
            status=403,
            code="raw_card_data_not_permitted",
            zone="cde",
            event_type="access.denied",
        )
        assert (record.reason, record.actor.id) == (reason, merchant.merchant_id)
        charges = client.get(
            stack.url("api") + "/v1/charges",
            headers={"Authorization": f"Bearer {merchant.secret_key}"},
        )
    assert _vault_records(stack) == before
    assert charges.status_code == 200 and charges.json()["data"] == []


# ---------------------------------------------------------------- another merchant's token


def test_another_merchants_token_is_refused_and_audited_at_the_vault(
    stack: Stack, token: str
) -> None:
    """Read, delete and detokenize a token in the name of another (attested) merchant: 403
    `token_not_owned` each time, audited as `card.read`, `card.token_delete` and
    `card.detokenize_denied` failures; the owner's token is untouched (control)."""
    owner = stack.merchants["raw"].merchant_id
    other = stack.merchants["raw_other"].merchant_id
    base = stack.url("vault") + f"/v1/tokens/{token}"
    with stack.client() as client:
        attempts = [
            (
                client.get(
                    base, params={"merchant_id": other}, headers=stack.headers("gateway", "vault")
                ),
                "card.read",
            ),
            (
                client.delete(
                    base, params={"merchant_id": other}, headers=stack.headers("ingress", "vault")
                ),
                "card.token_delete",
            ),
            (
                client.post(
                    base + "/detokenize",
                    json={"merchant_id": other},
                    headers=stack.headers("gateway", "vault"),
                ),
                "card.detokenize_denied",
            ),
        ]
        for answer, event_type in attempts:
            assert AMEX not in answer.text
            record = refused_and_audited(
                stack,
                answer,
                status=403,
                code="token_not_owned",
                zone="cde",
                event_type=event_type,
                reason="token_not_owned",
            )
            assert record.target == token
        still = client.get(
            base, params={"merchant_id": owner}, headers=stack.headers("gateway", "vault")
        )
    assert still.status_code == 200 and still.json()["card"]["last4"] == AMEX[-4:]


def test_another_merchants_token_is_refused_and_audited_at_the_gateway(
    stack: Stack, token: str
) -> None:
    """The worker asks the gateway to charge merchant B with merchant A's vault token: 403
    `token_not_owned` (audited by the gateway as `access.denied`, and by the vault, which it
    asked, as `card.detokenize_denied`); no payment exists for the charge afterwards."""
    other = stack.merchants["raw_other"].merchant_id
    charge_id = random_id("ch", 20)
    body = {
        "charge_id": charge_id,
        "merchant_id": other,
        "amount": 700,
        "currency": "usd",
        "payment_method": {"type": "vault_token", "token": token},
    }
    vault_refusals = {
        "event_types": ("card.detokenize_denied",),
        "target": token,
        "actor": "gateway",
    }
    before = len(stack.audit_records("cde", **vault_refusals))
    with stack.client() as client:
        answer = client.post(
            stack.url("gateway") + "/v1/authorizations",
            json=body,
            headers=stack.headers("worker", "gateway"),
        )
        record = refused_and_audited(
            stack,
            answer,
            status=403,
            code="token_not_owned",
            zone="cde",
            event_type="access.denied",
        )
        assert record.target == charge_id
        asked = stack.audit_records("cde", **vault_refusals)
        assert len(asked) == before + 1 and asked[-1].reason == "token_not_owned"
        status = client.get(
            stack.url("gateway") + f"/v1/payments/{charge_id}",
            headers=stack.headers("worker", "gateway"),
        )
    assert status.status_code == 404, status.text


# ---------------------------------------------------------------- PSP webhooks


def _event(event_id: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "object": "payment_intent",
                    "id": "pi_" + random_id("x", 16)[2:],
                    "status": "succeeded",
                    "amount": 100,
                    "currency": "usd",
                    "metadata": {"reference": random_id("ch", 20)},
                }
            },
        }
    ).encode()


def _webhook(
    stack: Stack, client: httpx.Client, payload: bytes, signature: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post(stack.url("gateway") + "/v1/psp/webhooks", content=payload, headers=headers)


def test_forged_and_replayed_webhooks_are_refused_and_audited(stack: Stack) -> None:
    """Unsigned, signed with another secret, a body changed after signing, a timestamp from
    the future, and a genuine delivery replayed after the 300 s tolerance: 400 and a
    `psp.webhook_verification_failure` record each. The genuine delivery is accepted once; the
    same bytes replayed inside the window are dropped (`duplicate`, nothing relayed) and
    audited as well (reason `duplicate_event`)."""
    secret = (stack.var / "psp-dev" / "webhook_secret").read_text().strip().encode()
    payload = _event(random_id("evt", 20))
    now = int(time.time())
    forged = [
        ("unsigned", None),
        ("another secret", sign(b"whsec_not_the_secret", payload, at=now)),
        ("body changed", sign(secret, payload.replace(b"succeeded", b"failed"), at=now)),
        ("future", sign(secret, payload, at=now + 600)),
    ]
    with stack.client() as client:
        for label, signature in forged:
            answer = _webhook(stack, client, payload, signature)
            refused_and_audited(
                stack,
                answer,
                status=400,
                code="webhook_signature_invalid",
                zone="cde",
                event_type="psp.webhook_verification_failure",
            )
            assert answer.status_code == 400, label
        genuine = sign(secret, payload, at=now)
        first = _webhook(stack, client, payload, genuine)
        assert first.status_code == 200 and first.json()["duplicate"] is False, first.text
        replay = _webhook(stack, client, payload, genuine)
        assert replay.json() == {"received": True, "duplicate": True, "relayed": False}
        request_id = replay.headers["x-request-id"]
        found = stack.wait_for_audit(
            "cde", request_id=request_id, event_types=("psp.webhook_verification_failure",)
        )
        assert found and found[-1].reason == "duplicate_event", found
        stale = _webhook(stack, client, payload, sign(secret, payload, at=now - 301))
        refused_and_audited(
            stack,
            stale,
            status=400,
            code="webhook_signature_invalid",
            zone="cde",
            event_type="psp.webhook_verification_failure",
            reason="signature",
        )


def test_a_webhook_with_an_impossible_time_is_refused_not_a_500(stack: Stack) -> None:
    """Found by the fuzzer: a validly signed event whose `created` (or a session's
    `expires_at`) is beyond what a datetime holds crashed the gateway with a 500. Now it is
    an audited 400, and the gateway keeps answering."""
    secret = (stack.var / "psp-dev" / "webhook_secret").read_text().strip().encode()
    event = json.loads(_event(random_id("evt", 20)))
    event["created"] = 10**15
    payload = json.dumps(event).encode()
    with stack.client() as client:
        answer = _webhook(stack, client, payload, sign(secret, payload))
        refused_and_audited(
            stack,
            answer,
            status=400,
            code="webhook_signature_invalid",
            zone="cde",
            event_type="psp.webhook_verification_failure",
            reason="malformed",
        )
        session = {
            "object": "checkout.session",
            "id": "cs_test_" + random_id("x", 20)[2:],
            "status": "expired",
            "expires_at": 10**15,
        }
        event = json.loads(_event(random_id("evt", 20)))
        event.update(type="checkout.session.expired", data={"object": session})
        payload = json.dumps(event).encode()
        odd = _webhook(stack, client, payload, sign(secret, payload))
        assert odd.status_code == 200, odd.text
        opened = client.post(
            stack.url("gateway") + "/v1/checkout_sessions",
            json={
                "session_id": random_id("ps", 20),
                "merchant_id": stack.merchants["raw"].merchant_id,
                "amount": 1000,
                "currency": "usd",
                "success_url": "https://shop.example/paid",
                "expires_at": 10**15,
            },
            headers=stack.headers("api", "gateway"),
        )
        assert opened.status_code == 400 and opened.json()["error"]["param"] == "expires_at"
        assert client.get(stack.url("gateway") + "/healthz").status_code == 200


def test_card_like_ids_in_cde_paths_are_refused_and_audited_masked(stack: Stack) -> None:
    """Found by the fuzzer: a token, merchant id or charge id holding a Luhn-valid digit run
    made the vault and the gateway write an audit record the audit log refuses (card data as
    its target), so the request ended in a 500 and the refusal went unaudited. Now such an id
    is a 400, and a refused caller's record names the path's id masked."""
    card_like_token = (
        "tok_222k22222l2222222224222222"  # the fuzzer's: 2222222224222222 is Luhn-valid
    )
    merchant_id = stack.merchants["raw"].merchant_id
    vault = stack.url("vault")
    with stack.client() as client:
        for method, path, body in (
            ("GET", f"/v1/tokens/{card_like_token}?merchant_id={merchant_id}", None),
            ("DELETE", f"/v1/tokens/{card_like_token}?merchant_id={merchant_id}", None),
            ("POST", f"/v1/tokens/{card_like_token}/detokenize", {"merchant_id": merchant_id}),
            ("GET", f"/v1/tokens/tok_abcdefghijklmnopqrstuvwxyz?merchant_id=mer_{AMEX}", None),
        ):
            caller = "gateway"
            answer = client.request(
                method, vault + path, json=body, headers=stack.headers(caller, "vault")
            )
            assert answer.status_code == 400, answer.text
        tokenize = client.post(
            vault + "/v1/tokens",
            json={
                "merchant_id": f"mer_{AMEX}",
                "card": {"number": AMEX, "exp_month": 1, "exp_year": 2031},
            },
            headers=stack.headers("ingress", "vault"),
        )
        assert tokenize.status_code == 400, tokenize.text
        # A caller the vault refuses, aiming at a card-like path: 401/403 and an audit record.
        for headers, status in (({}, 401), (stack.headers("api", "vault"), 403)):
            answer = client.post(
                vault + f"/v1/tokens/{card_like_token}/detokenize",
                json={"merchant_id": merchant_id},
                headers=headers,
            )
            record = refused_and_audited(
                stack,
                answer,
                status=status,
                code="service_identity_invalid" if status == 401 else "service_not_allowed",
                zone="cde",
                event_type="card.detokenize_denied",
            )
            assert record.target is not None and "*" in record.target
        gateway = stack.url("gateway")
        pan_charge = f"ch_{AMEX}"
        bad = client.get(
            gateway + f"/v1/payments/{pan_charge}", headers=stack.headers("worker", "gateway")
        )
        assert bad.status_code == 400, bad.text
        refused = client.get(gateway + f"/v1/payments/{pan_charge}")
        record = refused_and_audited(
            stack,
            refused,
            status=401,
            code="service_identity_invalid",
            zone="cde",
            event_type="access.service_identity_refused",
        )
        assert record.target is not None and AMEX not in record.target
        expire = client.post(
            gateway + f"/v1/checkout_sessions/ps_{AMEX}/expire",
            headers=stack.headers("api", "gateway"),
        )
        assert expire.status_code == 400, expire.text


def test_a_signed_webhook_with_a_card_number_as_its_id_is_refused_and_not_stored(
    stack: Stack,
) -> None:
    """Found by the fuzzer and the sweep: the gateway stored a validly signed event's id as it
    came, so a card number there sat in the clear in the CDE's gateway database (and its replay
    then crashed the duplicate audit). Now such an event is malformed: 400, audited."""
    secret = (stack.var / "psp-dev" / "webhook_secret").read_text().strip().encode()
    for field in ("id", "type"):
        event = json.loads(_event(random_id("evt", 20)))
        event[field] = stack.synthetic[0] if field == "id" else f"charge.{stack.synthetic[0]}"
        payload = json.dumps(event).encode()
        with stack.client() as client:
            for _attempt in range(2):  # the second one used to be a 500 (duplicate)
                answer = _webhook(stack, client, payload, sign(secret, payload))
                refused_and_audited(
                    stack,
                    answer,
                    status=400,
                    code="webhook_signature_invalid",
                    zone="cde",
                    event_type="psp.webhook_verification_failure",
                    reason="malformed",
                )
    with sqlite3.connect(stack.var / "cde" / "gateway.db") as conn:
        ids = [row[0] for row in conn.execute("SELECT psp_event_id FROM gateway_psp_events")]
    assert stack.synthetic[0] not in " ".join(ids)
