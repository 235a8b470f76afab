"""The vault process over real TLS with real service identities: tokenize, the detokenize
authorization matrix (audited refusals), metadata and delete, errors, limits, a swapped
ciphertext, and a database dump that shows no card data."""

from __future__ import annotations

import re
import sqlite3

import pytest

from fincore.cards import is_card_key
from fincore.identity import TOKEN_HEADER
from tests.integration.vault.conftest import Cde, sweep_findings, tokenize

VISA = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
AMEX = {
    "number": "378282246310005",
    "exp_month": 3,
    "exp_year": 2032,
    "cvc": "7391",
    "name": "Grace Hopper",
}


def test_tokenize_answers_display_data(cde: Cde) -> None:
    """201 with the token and brand/last4/BIN/expiry/fingerprint; same card, same merchant,
    same fingerprint; another merchant, another fingerprint."""
    with cde.client() as client:
        first = tokenize(cde, client, "mer_alpha", VISA)
        again = tokenize(cde, client, "mer_alpha", VISA)
        other = tokenize(cde, client, "mer_beta", VISA)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["token"].startswith("tok_") and len(body["token"]) == 30
    assert body["card"] | {"fingerprint": None} == {
        "brand": "visa",
        "last4": "4242",
        "bin": "424242",
        "exp_month": 12,
        "exp_year": 2031,
        "fingerprint": None,
    }
    assert again.json()["token"] != body["token"]
    assert again.json()["card"]["fingerprint"] == body["card"]["fingerprint"]
    assert other.json()["card"]["fingerprint"] != body["card"]["fingerprint"]


@pytest.mark.parametrize(
    ("card", "param", "code"),
    [
        ({**VISA, "number": "4242424242424241"}, "card[number]", "incorrect_number"),
        ({**VISA, "exp_year": 2020}, "card[exp_year]", "expired_card"),
        ({**VISA, "exp_month": 13}, "card[exp_month]", "invalid_expiry_month"),
        ({**AMEX, "cvc": "739"}, "card[cvc]", "invalid_cvc"),
    ],
)
def test_bad_cards_get_422_naming_the_field(
    cde: Cde, card: dict[str, object], param: str, code: str
) -> None:
    """Stripe-style 422 with the parameter; the submitted value is nowhere in the answer."""
    with cde.client() as client:
        response = tokenize(cde, client, "mer_alpha", card)
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("card_error", param, code)
    assert str(card["number"]) not in response.text
    assert str(card["cvc"]) not in error["message"]


def test_unknown_fields_and_bad_bodies_are_400(cde: Cde) -> None:
    """An unknown card field or a non-object body is refused before anything is stored."""
    with cde.client() as client:
        unknown = tokenize(cde, client, "mer_alpha", {**VISA, "pin": "1234"})
        broken = client.post(
            cde.url("vault") + "/v1/tokens", content=b"[1,2]", headers=cde.headers("ingress")
        )
        no_merchant = tokenize(cde, client, "acct_1", VISA)
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "card[pin]")
    assert broken.status_code == 400
    assert (no_merchant.status_code, no_merchant.json()["error"]["param"]) == (400, "merchant_id")


@pytest.mark.parametrize("caller", ["ingress", "api", "worker", "dashboard", "vault"])
def test_only_the_gateway_may_detokenize(cde: Cde, caller: str) -> None:
    """Every identity but the gateway's gets 403 and an audit record naming it; the gateway
    gets the card and the CVC, once."""
    with cde.client() as client:
        token = tokenize(cde, client, "mer_alpha", AMEX).json()["token"]
        url = cde.url("vault") + f"/v1/tokens/{token}/detokenize"
        refused = client.post(url, json={"merchant_id": "mer_alpha"}, headers=cde.headers(caller))
        allowed = client.post(
            url, json={"merchant_id": "mer_alpha"}, headers=cde.headers("gateway")
        )
        again = client.post(url, json={"merchant_id": "mer_alpha"}, headers=cde.headers("gateway"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "service_not_allowed"
    assert "378282246310005" not in refused.text
    denied = [d for d in cde.audit_events("card.detokenize_denied") if d["target"] == token]
    assert [(d["actor"]["id"], d["outcome"]) for d in denied] == [(caller, "failure")]
    assert allowed.status_code == 200
    assert allowed.json() == {
        "card": {
            "number": "378282246310005",
            "exp_month": 3,
            "exp_year": 2032,
            "name": "Grace Hopper",
        },
        "cvc": "7391",
    }
    assert allowed.headers["cache-control"] == "no-store"
    assert again.json()["cvc"] is None


def test_no_or_forged_identity_is_401_and_audited(cde: Cde) -> None:
    """Without a valid service token nothing is answered, and the attempt is recorded."""
    with cde.client() as client:
        token = tokenize(cde, client, "mer_alpha", VISA).json()["token"]
        url = cde.url("vault") + f"/v1/tokens/{token}/detokenize"
        missing = client.post(url, json={"merchant_id": "mer_alpha"})
        forged = client.post(
            url, json={"merchant_id": "mer_alpha"}, headers={TOKEN_HEADER: "a.b.c"}
        )
        wrong_audience = client.post(
            url,
            json={"merchant_id": "mer_alpha"},
            headers={TOKEN_HEADER: cde.token("gateway", audience="api")},
        )
    assert [r.status_code for r in (missing, forged, wrong_audience)] == [401, 401, 401]
    denied = [d for d in cde.audit_events("card.detokenize_denied") if d["target"] == token]
    assert len(denied) == 3
    assert {d["actor"]["type"] for d in denied} == {"anonymous"}


def test_a_forwarded_for_header_does_not_change_the_audited_origin(cde: Cde) -> None:
    """The origin IP in an audit record is the TCP peer: a caller cannot put another address
    there with X-Forwarded-For (no proxy is trusted unless FINCORE_FORWARDED_ALLOW_IPS says)."""
    with cde.client() as client:
        token = tokenize(cde, client, "mer_alpha", VISA).json()["token"]
        refused = client.post(
            cde.url("vault") + f"/v1/tokens/{token}/detokenize",
            json={"merchant_id": "mer_alpha"},
            headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"},
        )
    assert refused.status_code == 401
    (denied,) = [d for d in cde.audit_events("card.detokenize_denied") if d["target"] == token]
    assert denied["origin"]["ip"] == "127.0.0.1"


def test_another_merchants_token_is_403_and_audited(cde: Cde) -> None:
    """The gateway itself cannot detokenize a token for another merchant."""
    with cde.client() as client:
        token = tokenize(cde, client, "mer_alpha", VISA).json()["token"]
        response = client.post(
            cde.url("vault") + f"/v1/tokens/{token}/detokenize",
            json={"merchant_id": "mer_beta"},
            headers=cde.headers("gateway"),
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "token_not_owned"
    denied = cde.audit_events("card.detokenize_denied")[-1]
    assert (denied["actor"]["id"], denied["reason"], denied["target"]) == (
        "gateway",
        "token_not_owned",
        token,
    )


def test_metadata_and_delete(cde: Cde) -> None:
    """Ingress and gateway read metadata and delete; the API may not; a deleted token is 404."""
    with cde.client() as client:
        created = tokenize(cde, client, "mer_alpha", VISA).json()
        url = cde.url("vault") + f"/v1/tokens/{created['token']}"
        shown = client.get(url, params={"merchant_id": "mer_alpha"}, headers=cde.headers("gateway"))
        by_api = client.get(url, params={"merchant_id": "mer_alpha"}, headers=cde.headers("api"))
        deleted = client.delete(
            url, params={"merchant_id": "mer_alpha"}, headers=cde.headers("ingress")
        )
        after = client.get(url, params={"merchant_id": "mer_alpha"}, headers=cde.headers("gateway"))
    assert shown.status_code == 200 and shown.json()["card"] == created["card"]
    assert by_api.status_code == 403
    assert deleted.status_code == 200
    assert after.status_code == 404
    assert cde.audit_events("card.token_delete")[-1]["target"] == created["token"]
    refused = cde.audit_events("access.service_identity_refused")
    assert refused[-1]["actor"]["id"] == "api"


def test_limits_body_size_and_rate(cde: Cde) -> None:
    """A huge body is 413; past the per-merchant burst tokenization is 429 with Retry-After."""
    with cde.client() as client:
        huge = client.post(
            cde.url("vault") + "/v1/tokens",
            content=b'{"x":"' + b"a" * 20000 + b'"}',
            headers=cde.headers("ingress"),
        )
        statuses = [tokenize(cde, client, "mer_rate", VISA).status_code for _ in range(45)]
        limited = tokenize(cde, client, "mer_rate", VISA)
        other = tokenize(cde, client, "mer_alpha", VISA)
    assert huge.status_code == 413
    assert statuses.count(201) <= 41 and 429 in statuses
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert other.status_code == 201
    refused = [
        r
        for r in cde.audit_events("card.tokenize")
        if r["details"].get("merchant_id") == "mer_rate" and r["outcome"] == "failure"
    ]
    assert refused and {r["reason"] for r in refused} == {"rate_limited"}


def test_readiness_reports_keys_store_and_audit(cde: Cde) -> None:
    """/readyz checks the KEK, the store, the CVC store and the audit sink."""
    with cde.client() as client:
        ready = client.get(cde.url("vault") + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"keys": True, "store": True, "cvc_store": True, "audit": True}


def test_a_swapped_ciphertext_fails_to_decrypt(cde: Cde) -> None:
    """Two rows with their ciphertexts exchanged in the database both fail (500, audited)."""
    with cde.client() as client:
        first = tokenize(cde, client, "mer_alpha", VISA).json()["token"]
        second = tokenize(cde, client, "mer_alpha", AMEX).json()["token"]
        with sqlite3.connect(cde.db_path()) as conn:
            rows = dict(
                conn.execute(
                    "SELECT token, ciphertext FROM vault_records WHERE token IN (?, ?)",
                    (first, second),
                ).fetchall()
            )
            conn.execute(
                "UPDATE vault_records SET ciphertext=? WHERE token=?", (rows[second], first)
            )
            conn.execute(
                "UPDATE vault_records SET ciphertext=? WHERE token=?", (rows[first], second)
            )
        answers = [
            client.post(
                cde.url("vault") + f"/v1/tokens/{token}/detokenize",
                json={"merchant_id": "mer_alpha"},
                headers=cde.headers("gateway"),
            )
            for token in (first, second)
        ]
    for answer in answers:
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "record_integrity_error"
        assert "4242" not in answer.text and "3782" not in answer.text
    failures = [
        r
        for r in cde.audit_events("card.detokenize")
        if r["outcome"] == "failure" and r["target"] in {first, second}
    ]
    assert [f["reason"] for f in failures] == ["record_integrity_error"] * 2


def test_a_database_dump_shows_only_ciphertext(cde: Cde) -> None:
    """No PAN (raw or grouped), no expiry, no name and no CVC column anywhere in a dump."""
    with cde.client() as client:
        for card in (VISA, AMEX):
            assert tokenize(cde, client, "mer_alpha", card).status_code == 201
    with sqlite3.connect(cde.db_path()) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dump = "\n".join(conn.iterdump())
        columns = [
            row[1]
            for table in ("vault_records", "vault_data_keys", "vault_keks", "vault_attestations")
            for row in conn.execute(f"PRAGMA table_info({table})")
        ]
    for secret in ("4242424242424242", "378282246310005", "Grace Hopper"):
        for form in (secret, secret.encode().hex(), secret.encode().hex().upper()):
            assert form not in dump
    # A four-digit CVC turns up by chance inside hex ciphertext, digests and timestamps, so it
    # is looked for as a value of its own, in its hex forms, and inside every decoded blob.
    cvc = "7391"
    assert not re.search(rf"(?<![0-9A-Za-z]){cvc}(?![0-9A-Za-z])", dump)
    for form in (cvc.encode().hex(), cvc.encode().hex().upper()):
        assert form not in dump
    blobs = [bytes.fromhex(b) for b in re.findall(r"X'([0-9A-Fa-f]*)'", dump)]
    assert blobs
    assert not [b for b in blobs if cvc.encode() in b]
    assert not [c for c in columns if is_card_key(c) or c.startswith("exp_") or "cvc" in c]
    raw = cde.db_path().read_bytes()
    for secret in ("4242424242424242", "378282246310005", "Grace Hopper"):
        assert secret.encode() not in raw
    assert sweep_findings([f"sqlite:///{cde.db_path()}"], ["Grace Hopper", "7391"]) == []
    assert "X'46435631" in dump  # every record is a sealed FCV1 blob (hex in the dump)
