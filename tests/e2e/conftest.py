"""The whole platform as its users run it: every process of both zones, the PSP sandbox and its
SFTP server, started by the runner on free loopback ports with a throw-away var folder and the
demo data of `fincore.seed`. Tests talk to it over HTTPS like merchants and operators do."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fincore.ids import random_token
from fincore.netutil import free_port
from fincore.pan_sweep import sweep
from fincore.runner import COMPONENTS, PROJECT_ROOT, Plan, Runner, available, running
from fincore.seed import DemoSeed, cli_command, cli_env, ensure_seed

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
WAIT_S = 45.0


def free_ports() -> dict[str, int]:
    return {name: free_port() for name in [*COMPONENTS, "psp-sftp"]}


@dataclass
class Stack:
    """The running platform, its demo data and a merchant's view of it."""

    plan: Plan
    seed: DemoSeed
    runner: Runner
    http: httpx.Client
    log: Path

    # ---------------------------------------------------------------- HTTP

    def call(
        self,
        component: str,
        method: str,
        path: str,
        key: str,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self.http.request(
            method, self.plan.url(component) + path, json=body, headers=headers
        )

    def api(self, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
        return self.call("api", method, path, key, body, "e2e-" + random_token(16))

    def raw_card_charge(
        self,
        key: str,
        number: str,
        amount: int,
        *,
        capture: bool = True,
        cvc: str = "123",
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        body = {
            "amount": amount,
            "currency": "usd",
            "capture": capture,
            "payment_method": {
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": cvc},
            },
        }
        return self.call(
            "ingress",
            "POST",
            "/v1/charges",
            key,
            body,
            idempotency_key or "e2e-" + random_token(16),
        )

    def psp_token(self, number: str, cvc: str = "123") -> str:
        """A `pm_…` token made the way the PSP's browser SDK makes it (publishable key)."""
        credentials = json.loads((self.sandbox_state / "credentials.json").read_text())
        answer = httpx.post(
            self.plan.url("psp-sandbox") + "/v1/payment_methods",
            auth=(credentials["publishable_key"], ""),
            data={
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": cvc,
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    def wait(
        self, what: str, read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        seen = read()
        while not done(seen):
            assert time.monotonic() < deadline, f"{what}: still {seen.get('status')}"
            time.sleep(0.1)
            seen = read()
        return seen

    def charge(self, key: str, charge_id: str, statuses: frozenset[str] = TERMINAL) -> Any:
        return self.wait(
            charge_id,
            lambda: self.api("GET", f"/v1/charges/{charge_id}", key).json(),
            lambda c: c.get("status") in statuses,
        )

    def refund(self, key: str, refund_id: str) -> Any:
        return self.wait(
            refund_id,
            lambda: self.api("GET", f"/v1/refunds/{refund_id}", key).json(),
            lambda r: r.get("status") in {"succeeded", "failed"},
        )

    def lag(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(self.plan.url(name) + "/lag").json()
        return answer

    def event_head(self) -> int:
        """The event store's last position, as the projectionist reports it."""
        return int(self.lag("projectionist")["head"])

    # ---------------------------------------------------------------- the PSP's view

    @property
    def sandbox_state(self) -> Path:
        return self.plan.var_dir / "psp-sandbox"

    def psp_intents(self, query: str) -> list[dict[str, Any]]:
        """The sandbox's PaymentIntents matching a Stripe search query (secret key)."""
        secret = (self.plan.var_dir / "psp-dev" / "secret_key").read_text().strip()
        answer = httpx.get(
            self.plan.url("psp-sandbox") + "/v1/payment_intents/search",
            params={"query": query, "limit": "100"},
            auth=(secret, ""),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["data"]
        return found

    def intents_of(self, charge_id: str) -> list[dict[str, Any]]:
        return self.psp_intents(f"metadata['reference']:'{charge_id}'")

    def psp_refunds(self, payment_intent: str) -> list[dict[str, Any]]:
        secret = (self.plan.var_dir / "psp-dev" / "secret_key").read_text().strip()
        answer = httpx.get(
            self.plan.url("psp-sandbox") + "/v1/refunds",
            params={"payment_intent": payment_intent, "limit": "100"},
            auth=(secret, ""),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["data"]
        return found

    # ---------------------------------------------------------------- operators

    def cli(self, component: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli_command(component, args),
            env=cli_env(self.plan, component, actor="e2e"),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def vault_records(self) -> int:
        status = self.cli("vault", "admin", "--json", "status")
        assert status.returncode == 0, status.stderr[-500:]
        return int(json.loads(status.stdout)["records"])

    def sweep_targets(self) -> list[str]:
        """Every non-CDE store and log, the CDE's logs and audit log, the gateway's store."""
        var = self.plan.var_dir
        targets = [
            var / "noncde",
            var / "audit",
            var / "reconciliation",
            var / "cde" / "gateway.db",
        ]
        targets += [p for p in (var / "log").glob("*.log") if p.name != "psp-sandbox.log"]
        return [str(p) for p in targets if p.exists()]

    def sweep(self, canaries: list[str]) -> list[dict[str, Any]]:
        return [f.as_dict() for f in sweep(self.sweep_targets(), canaries)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every component started once for the module (about ten seconds), stopped after it."""
    folder = tmp_path_factory.mktemp("e2e")
    plan = Plan(var_dir=folder / "var", ports=free_ports())
    seed = ensure_seed(plan)
    log = folder / "processes.log"
    with (
        log.open("w", encoding="utf-8") as out,
        running(plan, available(), out=out) as runner,
        httpx.Client(
            verify=ssl.create_default_context(cafile=str(plan.ca_file)), timeout=30
        ) as client,
    ):
        yield Stack(plan, seed, runner, client, log)


def no_orphans_of(pid: int) -> list[int]:
    """Processes that a runner with `pid` started and that are still alive."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if f"FINCORE_PARENT_PID={pid}".encode() in environ.split(b"\0") and state != "Z":
            alive.append(int(entry.name))
    return alive


def port_env(ports: dict[str, int], var_dir: Path) -> dict[str, str]:
    env = dict(os.environ, FINCORE_VAR_DIR=str(var_dir))
    for name, port in ports.items():
        env[f"FINCORE_PORT_{name.upper().replace('-', '_')}"] = str(port)
    return env
