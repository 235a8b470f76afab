"""The card ingress process over real TLS, with the vault process and a recording HTTPS server
playing the API's merchant directory and charge endpoint: the raw-card capability matrix
(both the directory and the CDE register must agree), "403 and nothing stored anywhere", and
forwarding with the card replaced by a vault token."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.vault.conftest import (
    Cde,
    RecordingApi,
    merchant_answer,
    sweep_findings,
)

PAN = "4000002760003184"  # a published Visa test card, used only in this module
CVC = "913"
KEY_OK = "sk_test_ingress_ok_0001"
KEY_INACTIVE = "sk_test_ingress_inactive"
KEY_DIR_EXPIRED = "sk_test_ingress_dir_expired"
KEY_NO_REGISTER = "sk_test_ingress_no_register"
KEY_REG_EXPIRED = "sk_test_ingress_reg_expired"


def charge(pan: str = PAN, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": 1999,
        "currency": "usd",
        "description": "order 1",
        "payment_method": {
            "type": "card",
            "card": {"number": pan, "exp_month": 11, "exp_year": 2030, "cvc": CVC},
        },
    }
    body.update(extra)
    return body


@pytest.fixture(scope="module")
def ingress(cde: Cde, recording_api: RecordingApi) -> Iterator[Cde]:
    """The ingress process wired to the vault and the recording API, with five merchants."""
    recording_api.keys.update(
        {
            KEY_OK: merchant_answer("mer_alpha"),
            KEY_INACTIVE: merchant_answer("mer_beta", active=False),
            KEY_DIR_EXPIRED: merchant_answer("mer_beta", expires="2020-01-31"),
            KEY_NO_REGISTER: merchant_answer("mer_gamma"),
            KEY_REG_EXPIRED: merchant_answer("mer_delta"),
        }
    )
    cde.cli("attest", "mer_delta", "--expires", "2021-06-30")
    cde.start(
        "ingress",
        {
            "FINCORE_INGRESS_VAULT_URL": cde.url("vault"),
            "FINCORE_INGRESS_API_URL": recording_api.url,
        },
    )
    yield cde
    cde.stop("ingress")


@pytest.fixture
def api(recording_api: RecordingApi) -> RecordingApi:
    """The recording API with no requests yet and the default 201 answer."""
    recording_api.requests.clear()
    recording_api.charge_status, recording_api.charge_headers = 201, {}
    recording_api.charge_body = {"id": "ch_test", "object": "charge", "status": "processing"}
    return recording_api


def post(cde: Cde, body: Any, key: str | None, **headers: str) -> Any:
    sent = dict(headers)
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    with cde.client() as client:
        return client.post(
            cde.url("ingress") + "/v1/charges",
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **sent},
        )


def record_count(cde: Cde) -> int:
    with sqlite3.connect(cde.db_path()) as conn:
        return int(conn.execute("SELECT count(*) FROM vault_records").fetchone()[0])


def test_a_permitted_merchant_is_forwarded_with_a_token(ingress: Cde, api: RecordingApi) -> None:
    """The API receives the same charge with a vault token instead of the card, the merchant's
    Authorization and Idempotency-Key, and the ingress's identity; its answer comes back as is."""
    api.charge_status = 202
    api.charge_body = {"id": "ch_123", "object": "charge", "status": "processing", "x": [1]}
    response = post(ingress, charge(), KEY_OK, **{"Idempotency-Key": "order-1-attempt"})
    assert response.status_code == 202
    assert response.json() == api.charge_body
    (forwarded,) = api.charges()
    assert forwarded.caller == "ingress"
    assert forwarded.headers["authorization"] == f"Bearer {KEY_OK}"
    assert forwarded.headers["idempotency-key"] == "order-1-attempt"
    body = json.loads(forwarded.body)
    assert (body["amount"], body["currency"], body["description"]) == (1999, "usd", "order 1")
    method = body["payment_method"]
    assert method["type"] == "vault_token" and method["token"].startswith("tok_")
    assert method["card"] | {"fingerprint": None} == {
        "brand": "visa",
        "last4": "3184",
        "bin": "400000",
        "exp_month": 11,
        "exp_year": 2030,
        "fingerprint": None,
    }
    assert PAN not in forwarded.body.decode()
    # The three-digit CVC is looked for as a value of its own: it turns up by chance inside
    # the token and the hex fingerprint.
    assert not re.search(rf"(?<![0-9A-Za-z]){CVC}(?![0-9A-Za-z])", json.dumps(method))
    with ingress.client() as client:
        detok = client.post(
            ingress.url("vault") + f"/v1/tokens/{method['token']}/detokenize",
            json={"merchant_id": "mer_alpha"},
            headers=ingress.headers("gateway"),
        )
    assert detok.json()["card"]["number"] == PAN and detok.json()["cvc"] == CVC


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (KEY_INACTIVE, "capability_inactive"),
        (KEY_DIR_EXPIRED, "directory_attestation_expired"),
        (KEY_NO_REGISTER, "cde_attestation_missing"),
        (KEY_REG_EXPIRED, "cde_attestation_expired"),
    ],
)
def test_a_merchant_without_the_capability_gets_403_and_nothing_is_kept(
    ingress: Cde, api: RecordingApi, key: str, reason: str
) -> None:
    """403 raw_card_data_not_permitted; no token, no CVC, no log or audit line with the card,
    nothing forwarded; the refusal is audited with its reason."""
    canary_pan = "4000000000000077"  # used by this test only
    before = record_count(ingress)
    response = post(ingress, charge(canary_pan), key)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "raw_card_data_not_permitted"
    assert record_count(ingress) == before
    assert api.charges() == []
    refusal = ingress.audit_events("access.denied")[-1]
    assert (refusal["reason"], refusal["resource"]) == (reason, "ingress.charges")
    # Every file of this CDE: database, WAL, key file, audit log, process logs and stdout.
    assert sweep_findings([str(ingress.var)], [canary_pan]) == []


def test_unknown_or_missing_keys_are_401(ingress: Cde, api: RecordingApi) -> None:
    """No key, a malformed one or one the directory does not know: 401, nothing forwarded."""
    assert post(ingress, charge(), None).status_code == 401
    assert post(ingress, charge(), "pk_test_publishable").status_code == 401
    assert post(ingress, charge(), "sk_test_unknown_key_123").status_code == 401
    assert api.charges() == []
    assert ingress.audit_events("access.api_key_invalid")[-1]["outcome"] == "failure"
    assert ingress.audit_events("access.authentication_failure")


def test_bad_cards_are_422_with_the_merchants_param(ingress: Cde, api: RecordingApi) -> None:
    """A bad card is named as payment_method[card][…], and nothing reaches the API."""
    response = post(ingress, charge("4000002760003185"), KEY_OK)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "payment_method[card][number]"
    assert "4000002760003185" not in response.text
    assert api.charges() == []


def test_card_data_outside_the_card_is_refused(ingress: Cde, api: RecordingApi) -> None:
    """A card number in the description (or a cvc key in metadata) never reaches the API."""
    before = record_count(ingress)
    smuggled = post(ingress, charge(description=f"card {PAN}"), KEY_OK)
    metadata = post(ingress, charge(metadata={"cvc": "123"}), KEY_OK)
    wrong_type = post(ingress, charge() | {"payment_method": {"type": "psp_token"}}, KEY_OK)
    assert [smuggled.status_code, metadata.status_code, wrong_type.status_code] == [400, 400, 400]
    assert record_count(ingress) == before
    assert api.charges() == []


def test_a_refusing_api_gets_its_token_deleted(ingress: Cde, api: RecordingApi) -> None:
    """When the API refuses the charge (4xx) or replays an earlier one, the new token goes."""
    api.charge_status = 402
    api.charge_body = {"error": {"type": "card_error", "code": "card_declined"}}
    declined = post(ingress, charge(), KEY_OK, **{"Idempotency-Key": "k-402"})
    assert declined.status_code == 402 and declined.json() == api.charge_body
    api.charge_status, api.charge_headers = 200, {"Idempotent-Replayed": "true"}
    api.charge_body = {"id": "ch_first", "object": "charge"}
    replayed = post(ingress, charge(), KEY_OK, **{"Idempotency-Key": "k-402"})
    assert replayed.status_code == 200
    tokens = [json.loads(r.body)["payment_method"]["token"] for r in api.charges()]
    with ingress.client() as client:
        for token in tokens:
            gone = client.get(
                ingress.url("vault") + f"/v1/tokens/{token}",
                params={"merchant_id": "mer_alpha"},
                headers=ingress.headers("gateway"),
            )
            assert gone.status_code == 404


def test_the_refused_body_is_never_read(ingress: Cde, api: RecordingApi) -> None:
    """A refused merchant's body is not parsed: even invalid JSON gets the 403, not a 400."""
    with ingress.client() as client:
        response = client.post(
            ingress.url("ingress") + "/v1/charges",
            content=b"{not json at all",
            headers={"Authorization": f"Bearer {KEY_INACTIVE}"},
        )
    assert response.status_code == 403
    with ingress.client() as client:
        allowed = client.post(
            ingress.url("ingress") + "/v1/charges",
            content=b"{not json at all",
            headers={"Authorization": f"Bearer {KEY_OK}"},
        )
    assert allowed.status_code == 400
