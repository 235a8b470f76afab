"""The API as a real process over TLS, as the runner starts it, managed by its admin CLI:
merchants and keys (rotation with overlap, revocation), the raw-card capability as the ingress
sees it, risk rules published from a file, every change in the non-CDE audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fincore.netutil import free_port
from fincore.pki import ensure_ca
from fincore.runner import Plan, default_ports
from tests.integration.api.conftest import CHARGE
from tests.integration.api.processes import ApiProcess


def make_process(tmp: Path, **extra_env: str) -> ApiProcess:
    ports = default_ports()
    ports["api"] = free_port()
    plan = Plan(var_dir=tmp / "var", ports=ports, environment="test")
    ensure_ca(plan.pki_dir)
    # Changes made by the CLI (another process) reach the API at once, not within the
    # authentication cache's second: these tests check each change right after making it.
    return ApiProcess(plan, {"FINCORE_API_AUTH_CACHE_S": "0", **extra_env})


@pytest.fixture(scope="module")
def api_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """One API process for this module, in a fresh folder."""
    process = make_process(tmp_path_factory.mktemp("api-process")).start()
    try:
        yield process
    finally:
        process.stop()


def test_a_merchant_created_by_the_cli_charges_over_tls(api_process: ApiProcess) -> None:
    """The CLI prints the keys once; the key works over TLS; the log holds no key."""
    created = api_process.admin("merchants", "create", "--name", "TLS shop")
    secret = created["secret_key"]["value"]
    assert secret.startswith("sk_test_") and created["secret_key"]["shown_once"] is True
    assert created["publishable_key"]["value"].startswith("pk_test_")
    with api_process.client() as client:
        headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "tls-1"}
        charge = client.post("/v1/charges", json=CHARGE, headers=headers)
        assert charge.status_code == 201, charge.text
        again = client.post("/v1/charges", json=CHARGE, headers=headers)
        assert again.json() == charge.json() and again.headers["idempotent-replayed"] == "true"
        fetched = client.get(f"/v1/charges/{charge.json()['id']}", auth=(secret, ""))
        assert fetched.json()["status"] == "processing"
        deadline = time.monotonic() + 10
        listed: list[str] = []
        while charge.json()["id"] not in listed and time.monotonic() < deadline:
            listed = [c["id"] for c in client.get("/v1/charges", auth=(secret, "")).json()["data"]]
            time.sleep(0.05)
        assert charge.json()["id"] in listed
        assert client.get("/docs").status_code == 200
        assert client.get("/readyz").json()["status"] == "ready"
    shown = api_process.admin("keys", "list", created["merchant"]["id"])
    assert all("value" not in k or k["kind"] == "publishable" for k in shown)
    log = (api_process.var / "log" / "api.log").read_text()
    assert secret not in log and '"route": "/v1/charges"' in log
    creations = [
        r for r in api_process.audit_records() if r["event_type"] == "system.merchant_create"
    ]
    assert creations[-1]["actor"]["id"] == "ops-alice"
    assert secret not in json.dumps(api_process.audit_records())


def test_key_rotation_overlap_and_revocation(api_process: ApiProcess) -> None:
    """A rotated key keeps working during the overlap only; a revoked one stops at once."""
    created = api_process.admin("merchants", "create", "--name", "Rotating shop")
    old = created["secret_key"]
    with api_process.client() as client:

        def status(key: str) -> int:
            return client.get("/v1/charges", auth=(key, "")).status_code

        rotated = api_process.admin("keys", "rotate", old["id"], "--overlap-hours", "1")
        new = rotated["new_key"]["value"]
        assert (status(old["value"]), status(new)) == (200, 200)
        assert rotated["old_key"]["expires_at"] is not None
        again = api_process.admin(
            "keys", "rotate", rotated["new_key"]["id"], "--overlap-hours", "0"
        )
        assert status(new) == 401 and status(again["new_key"]["value"]) == 200
        api_process.admin("keys", "revoke", again["new_key"]["id"], "--reason", "leaked")
        assert status(again["new_key"]["value"]) == 401
        assert status(old["value"]) == 200  # its own overlap has not ended
    kinds = {r["event_type"] for r in api_process.audit_records()}
    assert {"identity.api_key_rotate", "identity.api_key_revoke"} <= kinds


def test_the_raw_card_capability_as_the_ingress_sees_it(api_process: ApiProcess) -> None:
    """Granted with an attestation date: active for the ingress; revoked: inactive."""
    created = api_process.admin("merchants", "create", "--name", "S2S shop")
    merchant_id, secret = created["merchant"]["id"], created["secret_key"]["value"]
    api_process.admin(
        "raw-card", "grant", merchant_id, "--attestation-expires", "2099-03-31", "--reason", "ROC"
    )
    with api_process.client() as client:

        def lookup() -> Any:
            return client.post(
                "/internal/v1/merchant-auth",
                json={"api_key": secret},
                headers=api_process.token_headers("ingress"),
            ).json()

        assert lookup()["capabilities"] == {
            "raw_card_data": {"active": True, "attestation_expires_at": "2099-03-31"}
        }
        api_process.admin("raw-card", "revoke", merchant_id)
        assert lookup()["capabilities"]["raw_card_data"]["active"] is False
    past = api_process.admin(
        "raw-card", "grant", merchant_id, "--attestation-expires", "2020-01-01", check=False
    )
    assert past.returncode == 2 and "expired" in past.stderr


def test_rules_published_from_a_file_apply_to_the_running_process(
    api_process: ApiProcess, tmp_path: Path
) -> None:
    """Invalid rules are refused; valid ones take effect without a restart."""
    created = api_process.admin("merchants", "create", "--name", "Risky shop")
    secret = created["secret_key"]["value"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"type": "amount_limit"}]))
    refused = api_process.admin("rules", "publish", str(bad), check=False)
    assert refused.returncode == 2 and "max_amount" in refused.stderr
    good = tmp_path / "rules.json"
    good.write_text(json.dumps([{"id": "tiny", "type": "amount_limit", "max_amount": 10}]))
    published = api_process.admin("rules", "publish", str(good))
    assert api_process.admin("rules", "show")["version"] == published["version"]
    with api_process.client() as client:
        deadline = time.monotonic() + 10
        status = 0
        while status != 402 and time.monotonic() < deadline:
            status = client.post("/v1/charges", json=CHARGE, auth=(secret, "")).status_code
            time.sleep(0.2)
        assert status == 402
    api_process.admin("rules", "publish", str(tmp_path / "none.json"), check=False)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    api_process.admin("rules", "publish", str(empty))


def test_two_worker_processes_serve_the_same_api(tmp_path: Path) -> None:
    """FINCORE_API_WORKERS=2: both workers answer and share state (keys, idempotency)."""
    process = make_process(tmp_path, FINCORE_API_WORKERS="2").start()
    try:
        secret = process.admin("merchants", "create", "--name", "Two")["secret_key"]["value"]
        with process.client() as client:
            answers = [
                client.post(
                    "/v1/charges",
                    json=CHARGE,
                    headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "two"},
                )
                for _ in range(6)
            ]
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["id"] for a in answers}) == 1
    finally:
        process.stop()
