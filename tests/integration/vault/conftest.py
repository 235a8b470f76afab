"""Real processes for the vault's integration tests: the vault and the ingress started with the
runner's own per-process environment (TLS with the dev CA, service identities), the operator
CLI as a subprocess, and a recording HTTPS server that plays the non-CDE API's endpoints."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fincore.identity import TOKEN_HEADER, ServiceCredentials, ServiceTokenVerifier
from fincore.netutil import free_port
from fincore.pki import ensure_ca, issue_service_credentials
from fincore.runner import COMPONENTS, Plan, component_env, default_ports
from tests.harness.procs import ServerProcess

ROOT = Path(__file__).resolve().parents[3]
ZONES = {
    "ingress": "cde",
    "vault": "cde",
    "gateway": "cde",
    "api": "noncde",
    "worker": "noncde",
    "dashboard": "noncde",
    "webhooks": "noncde",
}


@dataclass
class Cde:
    """One local CDE: its folder, plan, environment and processes."""

    var: Path
    plan: Plan
    env: dict[str, str]
    processes: dict[str, ServerProcess] = field(default_factory=dict)
    credentials: dict[str, ServiceCredentials] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def ca(self) -> Path:
        return self.plan.ca_file

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.plan.ports[name]}"

    def token(self, caller: str, audience: str = "vault") -> str:
        """A service token of `caller` for `audience` (credentials issued once per caller)."""
        with self.lock:
            credentials = self.credentials.get(caller)
            if credentials is None:
                zone = ZONES.get(caller, "noncde")
                files = issue_service_credentials(self.plan.pki_dir, caller, zone)
                credentials = ServiceCredentials.from_files(files.key, files.cert)
                self.credentials[caller] = credentials
        return credentials.token_for(audience)

    def headers(self, caller: str, audience: str = "vault") -> dict[str, str]:
        return {TOKEN_HEADER: self.token(caller, audience)}

    def client(self) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca)), timeout=30)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `python -m cde.vault.app admin …` with the vault's environment."""
        result = subprocess.run(
            [sys.executable, "-m", "cde.vault.app", "admin", "--json", *args],
            env=self.env | {"FINCORE_VAULT_OPERATOR": "ops-test"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"admin {args} failed:\n{result.stderr[-3000:]}")
        return result

    def start(self, name: str, extra: dict[str, str] | None = None) -> ServerProcess:
        spec = COMPONENTS[name]
        env = component_env(spec, self.plan, os.environ)
        env.update(self.env)
        env.update(
            FINCORE_COMPONENT=name,
            FINCORE_PORT=str(self.plan.ports[name]),
            FINCORE_SERVICE_NAME=name,
        )
        files = issue_service_credentials(self.plan.pki_dir, name, spec.zone)
        env.update(
            FINCORE_SERVICE_KEY_FILE=str(files.key), FINCORE_SERVICE_CERT_FILE=str(files.cert)
        )
        env.pop("FINCORE_PARENT_PID", None)
        env.update(extra or {})
        process = ServerProcess(
            [sys.executable, "-m", spec.module, *spec.args],
            name=name,
            log_path=self.var / "out" / f"{name}.out",
            env=env,
            cwd=ROOT,
        )
        url = self.url(name)
        context = ssl.create_default_context(cafile=str(self.ca))
        process.wait_until(
            lambda: httpx.get(url + "/healthz", verify=context, timeout=2).status_code == 200,
            timeout_s=60,
        )
        self.processes[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            process.stop()

    def audit_records(self) -> list[dict[str, Any]]:
        path = self.var / "audit" / "cde" / "records.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def audit_events(self, event_type: str) -> list[dict[str, Any]]:
        return [r for r in self.audit_records() if r["event_type"] == event_type]

    def db_path(self) -> Path:
        return self.var / "cde" / "vault.db"


def make_cde(tmp_path: Path, **extra_env: str) -> Cde:
    var = tmp_path / "var"
    ports = default_ports()
    for name in ("vault", "ingress", "api"):
        ports[name] = free_port()
    plan = Plan(var_dir=var, ports=ports, environment="test")
    ensure_ca(plan.pki_dir)
    env = {
        "FINCORE_VAR_DIR": str(var),
        "FINCORE_LOG_DIR": str(var / "log"),
        "FINCORE_CA_FILE": str(plan.ca_file),
        "FINCORE_ENV": "test",
        "FINCORE_VAULT_RATE_PER_S": "1",
        "FINCORE_VAULT_RATE_BURST": "40",
        "PATH": os.environ.get("PATH", ""),
    }
    env.update(extra_env)
    return Cde(var=var, plan=plan, env=env)


MERCHANTS = ("mer_alpha", "mer_beta", "mer_rate")


@pytest.fixture(scope="module")
def cde(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cde]:
    """A vault process over TLS in a fresh folder (SQLite, key file, file audit sink), shared
    by one test module; tests tell their records apart by token or merchant."""
    made = make_cde(tmp_path_factory.mktemp("cde"))
    for merchant in MERCHANTS:
        made.cli("attest", merchant, "--expires", "2099-12-31")
    made.start("vault")
    try:
        yield made
    finally:
        for name in list(made.processes):
            made.stop(name)


def tokenize(cde: Cde, client: httpx.Client, merchant: str, card: dict[str, Any]) -> httpx.Response:
    return client.post(
        cde.url("vault") + "/v1/tokens",
        json={"merchant_id": merchant, "card": card},
        headers=cde.headers("ingress"),
    )


# ---------------------------------------------------------------- the recording API


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    caller: str | None


@dataclass
class RecordingApi:
    """Plays the API's internal endpoints over TLS and records what it was sent."""

    url: str
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    charge_status: int = 201
    charge_body: dict[str, Any] = field(
        default_factory=lambda: {"id": "ch_test", "object": "charge"}
    )
    charge_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def charges(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/v1/charges"]


@contextmanager
def recording_api_server(cde: Cde) -> Iterator[RecordingApi]:
    """An HTTPS server with the `api` identity playing merchant-auth and charges."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    files = issue_service_credentials(cde.plan.pki_dir, "api", "noncde")
    verifier = ServiceTokenVerifier.from_file(cde.ca, "api")
    port = cde.plan.ports["api"]
    api = RecordingApi(url=f"https://127.0.0.1:{port}")

    def caller(request: Request) -> str | None:
        try:
            return verifier.verify(request.headers.get(TOKEN_HEADER)).name
        except Exception:  # noqa: BLE001 - recorded as "no valid identity"
            return None

    async def merchant_auth(request: Request) -> Response:
        body = await request.body()
        who = caller(request)
        api.requests.append(
            Recorded("/internal/v1/merchant-auth", dict(request.headers), body, who)
        )
        if who != "ingress":
            return JSONResponse({"error": {"type": "permission_error"}}, status_code=403)
        key = json.loads(body).get("api_key")
        known = api.keys.get(key)
        if known is None:
            return JSONResponse({"error": {"type": "authentication_error"}}, status_code=401)
        return JSONResponse(known)

    async def charges(request: Request) -> Response:
        body = await request.body()
        api.requests.append(Recorded("/v1/charges", dict(request.headers), body, caller(request)))
        return JSONResponse(
            api.charge_body, status_code=api.charge_status, headers=api.charge_headers
        )

    app = Starlette(
        routes=[
            Route("/internal/v1/merchant-auth", merchant_auth, methods=["POST"]),
            Route("/v1/charges", charges, methods=["POST"]),
        ]
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(files.cert),
        ssl_keyfile=str(files.key),
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="recording-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the recording API did not start"
    try:
        yield api
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def recording_api(cde: Cde) -> Iterator[RecordingApi]:
    """The recording API for the module's CDE."""
    with recording_api_server(cde) as api:
        yield api


def merchant_answer(
    merchant_id: str, *, active: bool = True, expires: str | None = "2099-03-31"
) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "livemode": False,
        "capabilities": {"raw_card_data": {"active": active, "attestation_expires_at": expires}},
    }


def sweep_findings(targets: list[str], canaries: list[str]) -> list[str]:
    """Card numbers and canaries found in `targets` (files, folders, sqlite:///, redis://).

    Uses `fincore.pan_sweep` (every encoding it knows) when it is installed in this tree;
    otherwise it falls back to a direct search of the raw bytes for the canaries and for
    card-like numbers, and says so in the findings' label.
    """
    try:
        from fincore.pan_sweep import sweep
    except ImportError:
        return _direct_search(targets, canaries)
    return [f"{f.kind} {f.masked} {f.encoding} at {f.location}" for f in sweep(targets, canaries)]


def _direct_search(targets: list[str], canaries: list[str]) -> list[str]:
    import re

    import redis

    from fincore.cards import find_card_numbers

    found: list[str] = []
    blobs: list[tuple[str, bytes]] = []
    for target in targets:
        if target.startswith("redis://"):
            client = redis.Redis.from_url(target)
            for key in client.scan_iter():
                blobs.append((f"{target} {key!r}", key + b" " + (client.dump(key) or b"")))
        else:
            path = Path(target.removeprefix("sqlite:///"))
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            blobs.extend((str(p), p.read_bytes()) for p in files)
    for label, data in blobs:
        text = data.decode("latin-1")
        for canary in canaries:
            if re.search(r"(?<![A-Za-z0-9])" + re.escape(canary) + r"(?![A-Za-z0-9])", text):
                found.append(f"direct-search canary in {label}")
        found.extend(f"direct-search pan {m.masked} in {label}" for m in find_card_numbers(text))
    return found


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")
