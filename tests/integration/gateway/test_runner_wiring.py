"""The local runner's wiring of the PSP sandbox and the gateway: one generated pair of dev
secrets under var/ (never in the repository) that both sides read, so the gateway can call the
sandbox and verify the sandbox's webhooks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest

from fincore.runner import running
from fincore.web import service_client
from tests.integration.gateway.peers import authorize_body, credentials, make_plan
from tests.integration.psp_sandbox.peer import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.psp]


def test_runner_gives_sandbox_and_gateway_the_same_secrets(tmp_path: Path) -> None:
    """Started by the runner, the gateway authorizes at the sandbox and accepts its signed
    webhooks; the secrets are files under var/psp-dev/ readable by the owner only."""
    plan = make_plan(tmp_path / "var")
    with running(plan, ["psp-sandbox", "vault", "gateway"], out=io.StringIO()):
        folder = plan.var_dir / "psp-dev"
        assert folder.stat().st_mode & 0o777 == 0o700
        for name in ("secret_key", "webhook_secret"):
            assert (folder / name).stat().st_mode & 0o777 == 0o600
        secret_key = (folder / "secret_key").read_text()
        assert secret_key.startswith("sk_test_")
        sandbox = plan.url("psp-sandbox")
        pm = httpx.post(
            sandbox + "/v1/payment_methods",
            auth=(secret_key, ""),
            data={
                "type": "card",
                "card[number]": "4242424242424242",
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
            timeout=10,
        ).json()["id"]
        worker = service_client(
            plan.url("gateway"),
            credentials=credentials(plan, "worker", "noncde"),
            audience="gateway",
            ca_file=plan.ca_file,
        )
        assert isinstance(worker, httpx.Client)
        with worker:
            answer = worker.post(
                "/v1/authorizations", json=authorize_body(pm, method="psp_token")
            ).json()
        assert answer["status"] == "succeeded", answer
        stored = json.loads((plan.var_dir / "psp-sandbox" / "credentials.json").read_text())
        admin = {"Authorization": f"Bearer {stored['admin_token']}"}

        def delivered() -> bool:
            deliveries = httpx.get(sandbox + "/_sandbox/webhooks", headers=admin, timeout=10)
            states = [d["state"] for d in deliveries.json()["deliveries"]]
            return bool(states) and all(s == "delivered" for s in states)

        # Every webhook was acknowledged by the gateway: its signature checked out.
        wait_until(delivered, timeout_s=20)
