"""The card-data guard on every endpoint (PCI DSS checklist A2): canary PANs and card field
names in every body field, metadata key and value, query parameter, header, Idempotency-Key and
path of every operation in the OpenAPI document are refused with 400 before anything runs; a
PAN sweep of the API's databases, logs and audit log afterwards finds none of them (A1)."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fincore.cards import luhn_valid
from fincore.pan_sweep import sweep
from tests.integration.api.conftest import CHARGE, Api, sweep_targets

BRAND_CANARIES = ["4000056655665556", "5200828282828210", "378282246310005", "6011111111111117"]


def synthetic_pan() -> str:
    """A fresh Luhn-valid 16-digit number on a test BIN, new for every run."""
    body = "4" + "".join(str(secrets.randbelow(10)) for _ in range(14))
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def forms(pan: str) -> list[str]:
    """The PAN raw, grouped by spaces and dashes, and embedded in text."""
    groups = [pan[i : i + 4] for i in range(0, len(pan), 4)]
    return [pan, " ".join(groups), "-".join(groups), f"ref {pan} thanks"]


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_paths(item, (*path, index))
    elif isinstance(value, str):
        yield path


def replaced(body: Any, path: tuple[Any, ...], new: Any) -> Any:
    copied = copy.deepcopy(body)
    target = copied
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return copied


def body_variants(example: dict[str, Any], pan: str) -> Iterator[tuple[str, Any]]:
    """The example with the canary in each string field, in metadata, as a key, as a number."""
    for path in string_paths(example):
        for form in forms(pan):
            yield f"body{list(path)}", replaced(example, path, form)
    yield "metadata value", {**example, "metadata": {"note": pan}}
    yield "metadata key", {**example, "metadata": {pan: "x"}}
    yield "metadata cvc", {**example, "metadata": {"cvc": "7391"}}
    yield "description", {**example, "description": f"card {forms(pan)[1]}"}
    yield "amount as number", {**example, "amount": int(pan)}
    yield (
        "raw card",
        {
            **example,
            "payment_method": {"type": "card", "card": {"number": pan, "cvc": "7391"}},
        },
    )


EXAMPLES: dict[str, dict[str, Any]] = {
    "/v1/charges": CHARGE,
    "/v1/charges/{id}/capture": {"amount": 100},
    "/v1/refunds": {"charge": "ch_AbCdEfGhIjKlMnOpQrStUvWx", "amount": 100},
    "/v1/payment_sessions": {
        "amount": 100,
        "currency": "usd",
        "success_url": "https://shop.example/ok",
        "cancel_url": "https://shop.example/no",
    },
    "/v1/payment_sessions/{id}/expire": {},
    "/v1/charges/{id}/cancel": {},
    "/internal/v1/merchant-auth": {"api_key": "sk_test_whatever"},
    "/internal/v1/psp-events": {
        "id": "pspevt_1",
        "type": "checkout_session.completed",
        "session_id": "ps_x",
        "psp_reference": "pi_1",
        "payment_method": {"type": "psp_token", "token": "pm_1", "card": {"brand": "visa"}},
    },
}
CALLER = {
    "/internal/v1/merchant-auth": "ingress",
    "/internal/v1/psp-events": "gateway",
    "/internal/v1/webhook_endpoints": "webhooks",
}


def test_canary_pans_in_every_field_of_every_endpoint_are_refused_and_never_stored(
    api: Api, tmp_path: Path
) -> None:
    """Hundreds of requests with card data anywhere: all 400 card_data_not_allowed; the sweep of
    every store and log of the API afterwards finds no canary and no card number."""
    pan = synthetic_pan()
    canaries = [pan, *BRAND_CANARIES]
    key = api.merchant(raw_card_until="2099-12-31")
    charge_id = api.post("/v1/charges", key, CHARGE).json()["id"]
    document = api.client.get("/openapi.json").json()
    sent = 0
    failures: list[str] = []

    def expect_refused(label: str, method: str, path: str, **kwargs: Any) -> None:
        nonlocal sent
        sent += 1
        response = api.client.request(method, path, **kwargs)
        code = response.json().get("error", {}).get("code") if response.content else None
        if response.status_code != 400 or code != "card_data_not_allowed":
            failures.append(f"{method} {path} {label}: {response.status_code} {code}")
        assert pan not in response.text

    for template, operations in document["paths"].items():
        for method in operations:
            method = method.upper()
            path = template.replace("{id}", charge_id)
            canary = canaries[sent % len(canaries)]
            headers = {"Authorization": f"Bearer {key}"}
            if template in CALLER:
                headers.update(api.pki.headers(CALLER[template]))
            example = EXAMPLES.get(template)
            json_kwargs = {"json": example} if example is not None else {}
            in_path = (
                template.replace("{id}", canary) if "{id}" in template else f"{template}/{canary}"
            )
            expect_refused("path", method, in_path, headers=headers, **json_kwargs)
            for form in forms(canary):
                expect_refused(
                    "query value",
                    method,
                    path,
                    params={"starting_after": form},
                    headers=headers,
                    **json_kwargs,
                )
            expect_refused(
                "query key",
                method,
                path,
                params={"card[number]": "1"},
                headers=headers,
                **json_kwargs,
            )
            for header in ("User-Agent", "X-Note", "Idempotency-Key", "Referer"):
                expect_refused(
                    f"header {header}",
                    method,
                    path,
                    headers={**headers, header: forms(canary)[1]},
                    **json_kwargs,
                )
            expect_refused(
                "header name", method, path, headers={**headers, "CVC": "7391"}, **json_kwargs
            )
            expect_refused(
                "bearer",
                method,
                path,
                headers={**headers, "Authorization": f"Bearer {canary}"},
                **json_kwargs,
            )
            if example is not None:
                for label, body in body_variants(example, canary):
                    expect_refused(label, method, path, headers=headers, json=body)
                raw = json.dumps(example).encode()[:-1] + f', "x": "{canary}"'.encode()
                expect_refused("broken json", method, path, headers=headers, content=raw)
                expect_refused(
                    "form body",
                    method,
                    path,
                    headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
                    content=f"amount=1&card[number]={canary}".encode(),
                )
    assert not failures, failures[:20]
    assert sent > 300
    metrics = api.client.get("/metrics").text
    assert "card_data_refused_total" in metrics

    api.catch_up()
    api.runtime.close()  # flush and close everything before sweeping
    findings = sweep(sweep_targets(api), canaries)
    assert findings == [], [f.as_dict() for f in findings][:5]

    # The sweep does find a canary where one is (it can fail).
    planted = tmp_path / "planted.log"
    planted.write_text(json.dumps({"note": forms(pan)[2]}))
    assert [f.kind for f in sweep([str(planted)], canaries)] == ["canary"]


@pytest.mark.parametrize("where", ["query", "header", "body"])
def test_refused_requests_leave_no_trace_in_the_access_log(api: Api, where: str) -> None:
    """The guard runs before the access log: a refused request is not even logged as a route."""
    key = api.merchant()
    pan = synthetic_pan()
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {key}"}}
    if where == "query":
        kwargs["params"] = {"q": pan}
    elif where == "header":
        kwargs["headers"]["X-Note"] = pan
    else:
        kwargs["json"] = {**CHARGE, "metadata": {"n": pan}}
    assert api.client.request("POST", "/v1/charges", **kwargs).status_code == 400
    log = (api.var / "log" / "api.log").read_text()
    refusals = [json.loads(line) for line in log.splitlines() if "card data refused" in line]
    assert refusals and refusals[-1]["location"] == where
    routes = [json.loads(line) for line in log.splitlines() if '"event": "request"' in line]
    assert not [r for r in routes if r.get("route") == "/v1/charges" and r["status"] == 400]
