"""Real processes for the gateway's integration tests: the vault and the gateway on free
loopback ports with a test PKI, and a recording TLS server standing in for the non-CDE API's
`POST /internal/v1/psp-events` (it checks the gateway's service token)."""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fincore.identity import (
    TOKEN_HEADER,
    ServiceCredentials,
    ServiceIdentityError,
    ServiceTokenVerifier,
)
from fincore.netutil import free_port
from fincore.pki import ensure_ca, issue_service_credentials
from fincore.runner import COMPONENTS, Plan, component_env, default_ports
from fincore.web import client_ssl_context, service_client
from tests.harness.procs import ServerProcess

ROOT = Path(__file__).resolve().parents[3]
MERCHANT = "mer_gwtest"
OTHER_MERCHANT = "mer_gwother"


def make_plan(var: Path) -> Plan:
    """A plan whose every port is a free one (nothing collides with a running platform)."""
    ports = {name: free_port() for name in default_ports()}
    plan = Plan(var_dir=var, ports=ports, environment="test")
    var.mkdir(parents=True, exist_ok=True)
    ensure_ca(plan.pki_dir)
    return plan


def credentials(plan: Plan, name: str, zone: str) -> ServiceCredentials:
    files = issue_service_credentials(plan.pki_dir, name, zone)
    return ServiceCredentials.from_files(files.key, files.cert)


def wait_https(url: str, ca: Path, process: ServerProcess, timeout_s: float = 60.0) -> None:
    context = client_ssl_context(ca)
    process.wait_until(
        lambda: httpx.get(url + "/healthz", verify=context, timeout=1).status_code == 200,
        timeout_s=timeout_s,
    )


# ---------------------------------------------------------------- the vault


@dataclass
class VaultServer:
    url: str
    process: ServerProcess
    env: dict[str, str]
    ingress: ServiceCredentials
    ca: Path

    def tokenize(
        self, number: str, *, merchant: str = MERCHANT, cvc: str | None = "123", **card: Any
    ) -> dict[str, Any]:
        """Tokenize a card through the vault API as the `ingress` test identity."""
        body: dict[str, Any] = {
            "number": number,
            "exp_month": card.get("exp_month", 12),
            "exp_year": card.get("exp_year", 2034),
        }
        if cvc is not None:
            body["cvc"] = cvc
        with self.client() as client:
            response = client.post("/v1/tokens", json={"merchant_id": merchant, "card": body})
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def client(self) -> httpx.Client:
        client = service_client(
            self.url, credentials=self.ingress, audience="vault", ca_file=self.ca, timeout=10
        )
        assert isinstance(client, httpx.Client)
        return client


def attest(env: dict[str, str], *merchants: str) -> None:
    """Record the merchants' PCI attestations in the vault's CDE register (what
    `python -m cde.vault.app admin attest` does, in this process to save the start-up)."""
    import asyncio
    from datetime import date

    from audit.bootstrap import open_audit_log
    from audit.domain import Actor, ActorType
    from cde.vault.bootstrap import build_vault
    from cde.vault.config import VaultSettings

    log = open_audit_log("cde", "vault-cli", env=env)
    runtime = build_vault(VaultSettings.from_env(env), component="vault-cli", audit=log)

    async def run() -> None:
        admin = runtime.admin(Actor("gateway-tests", ActorType.USER))
        await admin.ensure_primary_kek()
        for merchant in merchants:
            await admin.attest(merchant, date(2099, 1, 1), note="gateway tests")
        await runtime.close()

    try:
        asyncio.run(run())
    finally:
        log.close()


def start_vault(plan: Plan) -> Iterator[VaultServer]:
    env = component_env(COMPONENTS["vault"], plan, os.environ)
    env.update(
        FINCORE_VAULT_RATE_PER_S="100000",
        FINCORE_VAULT_RATE_BURST="100000",
        FINCORE_LOG_LEVEL="INFO",
    )
    env.pop("FINCORE_PARENT_PID", None)
    attest(env, MERCHANT, OTHER_MERCHANT)
    process = ServerProcess(
        [sys.executable, "-m", "cde.vault.app", "vault"],
        name="vault",
        log_path=plan.var_dir / "vault.out",
        env=env,
        cwd=ROOT,
    )
    url = plan.url("vault")
    try:
        wait_https(url, plan.ca_file, process)
        yield VaultServer(url, process, env, credentials(plan, "ingress", "cde"), plan.ca_file)
    finally:
        process.stop()


# ---------------------------------------------------------------- the gateway


@dataclass
class GatewayServer:
    url: str
    process: ServerProcess
    env: dict[str, str]
    plan: Plan
    log_path: Path
    identities: dict[str, ServiceCredentials] = field(default_factory=dict)
    log_paths: list[Path] = field(default_factory=list)
    starts: int = 0

    def client(self, identity: str | None = "worker") -> httpx.Client:
        creds = None
        if identity is not None:
            if identity not in self.identities:
                zone = "cde" if identity in ("ingress", "vault", "gateway") else "noncde"
                self.identities[identity] = credentials(self.plan, identity, zone)
            creds = self.identities[identity]
        client = service_client(
            self.url, credentials=creds, audience="gateway", ca_file=self.plan.ca_file, timeout=30
        )
        assert isinstance(client, httpx.Client)
        return client

    def post(self, path: str, body: dict[str, Any], identity: str = "worker") -> httpx.Response:
        with self.client(identity) as client:
            return client.post(path, json=body)

    def get(self, path: str, identity: str = "worker") -> httpx.Response:
        with self.client(identity) as client:
            return client.get(path)

    @property
    def db_path(self) -> Path:
        return self.plan.var_dir / "cde" / "gateway.db"

    def cli(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "cde.gateway.app", *args],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        """Start again (after `stop`) on the same port, state and settings."""
        self.process.stop()
        self.starts += 1
        self.log_paths.append(self.log_path.with_suffix(f".{self.starts}.out"))
        self.process = ServerProcess(
            [sys.executable, "-m", "cde.gateway.app"],
            name="gateway",
            log_path=self.log_paths[-1],
            env=self.env,
            cwd=ROOT,
        )
        wait_https(self.url, self.plan.ca_file, self.process)


def gateway_env(
    plan: Plan, psp_url: str, secret_key: str, webhook_secret: str, api_url: str, **settings: str
) -> dict[str, str]:
    """The runner's environment for the gateway, pointed at these peers (settings: the
    FINCORE_GATEWAY_* names without the prefix)."""
    env = component_env(COMPONENTS["gateway"], plan, os.environ)
    env.pop("FINCORE_PARENT_PID", None)
    env.update(
        FINCORE_GATEWAY_PSP_URL=psp_url,
        FINCORE_GATEWAY_PSP_SECRET_KEY=secret_key,
        FINCORE_GATEWAY_PSP_WEBHOOK_SECRET=webhook_secret,
        FINCORE_GATEWAY_API_URL=api_url,
        FINCORE_GATEWAY_PSP_READ_TIMEOUT_S="2",
        FINCORE_GATEWAY_RELAY_RETRY_BASE_S="0.2",
        FINCORE_GATEWAY_RELAY_RETRY_MAX_S="1",
        FINCORE_GATEWAY_RELAY_POLL_S="0.2",
        FINCORE_LOG_LEVEL="INFO",
    )
    for key, value in settings.items():
        env[f"FINCORE_GATEWAY_{key}"] = value
    return env


def start_gateway(
    plan: Plan, env: dict[str, str], name: str = "gateway"
) -> Iterator[GatewayServer]:
    log_path = plan.var_dir / f"{name}.out"
    process = ServerProcess(
        [sys.executable, "-m", "cde.gateway.app"],
        name=name,
        log_path=log_path,
        env=env,
        cwd=ROOT,
    )
    url = f"https://127.0.0.1:{env['FINCORE_PORT']}"
    server = GatewayServer(url, process, env, plan, log_path, log_paths=[log_path])
    try:
        wait_https(url, plan.ca_file, process)
        yield server
    finally:
        server.process.stop()


# ---------------------------------------------------------------- the API stand-in


@dataclass
class Delivery:
    identity: str | None
    status: int
    body: bytes
    at: float


class RecordingApi:
    """A TLS server (dev-CA certificate for `api`) that plays the API's PSP-event endpoint:
    it checks the service token (audience `api`, caller `gateway`), answers `statuses` in turn
    (then 200), and records every request. `stop()`/`start()` simulate an outage on the same
    port."""

    def __init__(self, plan: Plan) -> None:
        files = issue_service_credentials(plan.pki_dir, "api", "noncde")
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._context.load_cert_chain(str(files.cert), str(files.key))
        self._verifier = ServiceTokenVerifier.from_file(plan.ca_file, "api")
        self.port = free_port()
        self.statuses: list[int] = []
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> RecordingApi:
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    identity: str | None = recorder._verifier.verify(
                        self.headers.get(TOKEN_HEADER)
                    ).name
                except ServiceIdentityError:
                    identity = None
                with recorder._lock:
                    if identity is None:
                        status = 401
                    elif identity != "gateway" or self.path != "/internal/v1/psp-events":
                        status = 403
                    else:
                        status = recorder.statuses.pop(0) if recorder.statuses else 200
                    recorder.deliveries.append(Delivery(identity, status, body, time.time()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        # The handshake runs in each request's thread (on first read), never in the accept
        # loop, so one slow or broken client cannot stall the server.
        server.socket = self._context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def stored(self) -> list[dict[str, Any]]:
        """The events the API would have stored (2xx answers), in arrival order."""
        with self._lock:
            return [json.loads(d.body) for d in self.deliveries if 200 <= d.status < 300]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = self.stored()
            if predicate(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"relayed events not stored in time; got {len(self.stored())}")

    def of(self, **match: str) -> list[dict[str, Any]]:
        return [e for e in self.stored() if all(e.get(k) == v for k, v in match.items())]


# ---------------------------------------------------------------- helpers for the tests


def new_id(prefix: str) -> str:
    """A fresh reference of ours (`ch_`, `re_`, `ps_`)."""
    import secrets

    return f"{prefix}_{secrets.token_hex(10)}"


def psp_token(sandbox: Any, number: str = "4242424242424242", cvc: str | None = None) -> str:
    """A PSP payment-method token made at the sandbox (what the SDK flow hands the API)."""
    if cvc is None:
        cvc = "7391" if number.startswith(("34", "37")) else "123"
    response = sandbox.api(
        "POST",
        "/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": cvc,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["id"]
    return token


def authorize_body(
    token: str,
    *,
    charge_id: str | None = None,
    method: str = "vault_token",
    amount: int = 2500,
    capture: bool = True,
    merchant: str = MERCHANT,
    currency: str = "usd",
) -> dict[str, Any]:
    return {
        "charge_id": charge_id or new_id("ch"),
        "merchant_id": merchant,
        "amount": amount,
        "currency": currency,
        "capture": capture,
        "payment_method": {"type": method, "token": token},
    }


def intents_for(sandbox: Any, reference: str) -> list[dict[str, Any]]:
    """Every PaymentIntent the sandbox holds for one of our references."""
    response = sandbox.api(
        "GET",
        "/v1/payment_intents/search",
        params={"query": f"metadata['reference']:'{reference}'"},
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def payment_method_of(sandbox: Any, pi: str) -> dict[str, Any]:
    intent = sandbox.api("GET", f"/v1/payment_intents/{pi}").json()
    pm = sandbox.api("GET", f"/v1/payment_methods/{intent['payment_method']}").json()
    assert isinstance(pm, dict)
    return pm
