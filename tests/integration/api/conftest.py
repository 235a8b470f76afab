"""The merchant API in-process (ASGI) on real platform adapters (SQLite files, or PostgreSQL and
Redis), service identities from a throw-away PKI, a real file audit log and log file, and a
gateway stand-in over TLS that speaks the gateway's checkout-session contract (interfaces.md)
until the real gateway (#5) lands."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from fincore.identity import TOKEN_HEADER, ServiceCredentials, ServiceTokenVerifier
from fincore.logs import configure_logging
from fincore.netutil import free_port
from fincore.pki import ensure_ca, issue_service_credentials
from noncde.api.bootstrap import ApiRuntime, build_runtime, seed_rules
from noncde.api.config import ApiConfig
from noncde.api.web.routes import create_app
from noncde.platform.bootstrap import build_platform
from noncde.platform.config import PlatformConfig

ZONES = {"ingress": "cde", "vault": "cde", "gateway": "cde"}
CHARGE = {
    "amount": 2000,
    "currency": "usd",
    "payment_method": {"type": "psp_token", "token": "pm_card_visa"},
}


# ---------------------------------------------------------------- PKI


@dataclass
class Pki:
    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.crt"

    def credentials(self, name: str) -> ServiceCredentials:
        files = issue_service_credentials(self.root, name, ZONES.get(name, "noncde"))
        return ServiceCredentials.from_files(files.key, files.cert)

    def token(self, name: str, audience: str = "api") -> str:
        return self.credentials(name).token_for(audience)

    def headers(self, name: str, audience: str = "api") -> dict[str, str]:
        return {TOKEN_HEADER: self.token(name, audience)}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A development CA and per-service credentials, like the runner's `var/pki`."""
    root = tmp_path_factory.mktemp("pki")
    ensure_ca(root)
    return Pki(root)


# ---------------------------------------------------------------- the gateway stand-in


@dataclass
class GatewayDouble:
    """Plays the gateway's checkout-session endpoints over TLS (allowed caller: `api`)."""

    url: str
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_with: int | None = None

    def reset(self) -> None:
        self.calls.clear()
        self.sessions.clear()
        self.fail_with = None


@contextmanager
def gateway_server(pki: Pki) -> Iterator[GatewayDouble]:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    files = issue_service_credentials(pki.root, "gateway", "cde")
    verifier = ServiceTokenVerifier.from_file(pki.ca, "gateway")
    port = free_port()
    double = GatewayDouble(url=f"https://127.0.0.1:{port}")

    def caller(request: Request) -> str | None:
        try:
            return verifier.verify(request.headers.get(TOKEN_HEADER)).name
        except Exception:  # noqa: BLE001 - "no valid identity"
            return None

    async def create(request: Request) -> Response:
        body = json.loads(await request.body())
        who = caller(request)
        double.calls.append(("create", who or "", body))
        if who != "api":
            return JSONResponse({"error": {"type": "permission_error"}}, status_code=403)
        if double.fail_with:
            return JSONResponse({"error": {"type": "api_error"}}, status_code=double.fail_with)
        known = double.sessions.get(body["session_id"])
        if known is None:
            psp = "cs_test_" + uuid.uuid4().hex[:20]
            known = {
                "psp_session_id": psp,
                "url": f"{double.url}/pay/{psp}",
                # Unix seconds, as cde.gateway answers (docs/gateway.md).
                "expires_at": int(
                    datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()
                ),
                "status": "open",
            }
            double.sessions[body["session_id"]] = known
        return JSONResponse({k: known[k] for k in ("psp_session_id", "url", "expires_at")})

    async def expire(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        who = caller(request)
        double.calls.append(("expire", who or "", {"session_id": session_id}))
        if who != "api":
            return JSONResponse({"error": {"type": "permission_error"}}, status_code=403)
        known = double.sessions.get(session_id)
        if known is None:
            return JSONResponse({"error": {"type": "invalid_request_error"}}, status_code=404)
        if known["status"] == "complete":
            return JSONResponse(
                {"error": {"type": "invalid_request_error", "code": "session_complete"}},
                status_code=409,
            )
        known["status"] = "expired"
        return JSONResponse({"status": "expired"})

    app = Starlette(
        routes=[
            Route("/v1/checkout_sessions", create, methods=["POST"]),
            Route("/v1/checkout_sessions/{session_id}/expire", expire, methods=["POST"]),
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
    thread = threading.Thread(target=server.run, name="gateway-double", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the gateway stand-in did not start"
    try:
        yield double
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def gateway_session(pki: Pki) -> Iterator[GatewayDouble]:
    with gateway_server(pki) as double:
        yield double


@pytest.fixture
def gateway(gateway_session: GatewayDouble) -> GatewayDouble:
    """The gateway stand-in, with no recorded calls."""
    gateway_session.reset()
    return gateway_session


# ---------------------------------------------------------------- the API


@dataclass
class Api:
    """One API instance: its runtime, an HTTP client on the ASGI app, and helpers."""

    runtime: ApiRuntime
    client: TestClient
    pki: Pki
    var: Path
    platform_url: str
    api_url: str
    payments_url: str = ""

    def merchant(self, name: str = "Test shop", raw_card_until: str | None = None) -> str:
        """A new merchant's secret key (optionally with the raw-card capability)."""
        created = self.runtime.directory.create_merchant(name, actor="test-operator")
        if raw_card_until:
            self.runtime.directory.grant_raw_card(
                created.merchant.id,
                attestation_expires_on=datetime.fromisoformat(raw_card_until).date(),
                actor="test-operator",
                reason="attested",
            )
        return created.secret_key.value

    def merchant_id(self, key: str) -> str:
        found = self.runtime.directory.authenticate(key)
        assert found is not None
        return found.merchant_id

    def request(
        self,
        method: str,
        path: str,
        key: str | None,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        return self.client.request(method, path, json=json_body, headers=sent, **kwargs)

    def post(self, path: str, key: str | None, body: Any = None, **headers: str) -> Any:
        return self.request("POST", path, key, json_body=body, headers=headers)

    def get(self, path: str, key: str | None, **params: Any) -> Any:
        return self.request("GET", path, key, params=params)

    def psp_event(self, **event: Any) -> Any:
        """Relay a PSP event as the gateway would."""
        event.setdefault("id", "pspevt_" + uuid.uuid4().hex)
        return self.client.post(
            "/internal/v1/psp-events", json=event, headers=self.pki.headers("gateway")
        )

    def authorize(self, charge_id: str, amount: int | None = None) -> None:
        """The PSP's authorization outcome, relayed by the gateway (what the worker would do)."""
        body: dict[str, Any] = {"type": "payment.authorized", "charge_id": charge_id}
        body["psp_reference"] = "pi_" + uuid.uuid4().hex[:16]
        if amount is not None:
            body["amount"] = amount
        assert self.psp_event(**body).status_code == 200

    def succeed(self, charge_id: str, amount: int | None = None) -> None:
        body: dict[str, Any] = {"type": "payment.succeeded", "charge_id": charge_id}
        body["psp_reference"] = "pi_" + uuid.uuid4().hex[:16]
        if amount is not None:
            body["amount"] = amount
        assert self.psp_event(**body).status_code == 200

    def jobs(self, job_type: str | None = None) -> list[dict[str, Any]]:
        """Every job in the platform's queue table (read directly; nothing is leased)."""
        engine = create_engine(self.platform_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT id, type, payload FROM jobs ORDER BY seq")).all()
        finally:
            engine.dispose()
        found = [{"id": r.id, "type": r.type, "payload": json.loads(r.payload)} for r in rows]
        return [j for j in found if job_type is None or j["type"] == job_type]

    def stream(self, charge_id: str) -> list[Any]:
        return self.runtime.platform.events.read_stream(f"charge-{charge_id}")

    def catch_up(self) -> None:
        self.runtime.projector.run_once()

    def publish_rules(self, rules: list[dict[str, Any]]) -> int:
        return self.runtime.directory.publish_rules(rules, actor="test-operator").version

    def audit_records(self) -> list[dict[str, Any]]:
        path = self.var / "audit" / "noncde" / "records.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


ApiFactory = Callable[..., Api]


@pytest.fixture
def make_api(
    tmp_path: Path,
    pki: Pki,
    gateway_session: GatewayDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ApiFactory]:
    """Build APIs on SQLite files (default) or given database/counter URLs."""
    made: list[tuple[ApiRuntime, TestClient, Any]] = []

    def make(
        platform_url: str | None = None,
        api_url: str | None = None,
        counters_url: str | None = None,
        rules: list[dict[str, Any]] | None = None,
        **settings: Any,
    ) -> Api:
        var = tmp_path / f"var{len(made)}"
        var.mkdir()
        log_dir = var / "log"
        monkeypatch.setenv("FINCORE_LOG_DIR", str(log_dir))
        release_log_file()
        configure_logging("api")
        # The test client's own request log carries the test's URLs (canaries included);
        # it is the client's log, not the API's, so keep it out of the API's log file.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        env = {
            "FINCORE_VAR_DIR": str(var),
            "FINCORE_LOG_DIR": str(log_dir),
            "FINCORE_ENV": "test",
            "FINCORE_NONCDE_AUDIT_URL": f"file://{var / 'audit'}",
        }
        platform_db = platform_url or f"sqlite:///{var / 'noncde' / 'platform.db'}"
        api_db = api_url or f"sqlite:///{var / 'noncde' / 'api.db'}"
        # PaymentDB (the lists' read model) beside the API's database: its own SQLite file,
        # or the same PostgreSQL database (its tables are pdb_*).
        payments_db = api_url or f"sqlite:///{var / 'noncde' / 'payments.db'}"
        env["FINCORE_READMODELS_PAYMENTDB_URL"] = payments_db
        platform = build_platform(PlatformConfig.for_database(platform_db), env=env)
        config = ApiConfig(
            db_url=api_db,
            counters_url=counters_url or api_db,
            secret_key_file=var / "noncde" / "api-secret.key",
            gateway_url=gateway_session.url,
            public_url="https://127.0.0.1:8200",
            ingress_url="https://127.0.0.1:8100",
            rules_check_interval_s=settings.pop("rules_check_interval_s", 0.0),
            projection_poll_s=settings.pop("projection_poll_s", 0.05),
            **settings,
        )
        runtime = build_runtime(
            config,
            env=env,
            platform=platform,
            verifier=ServiceTokenVerifier.from_file(pki.ca, "api"),
            credentials=pki.credentials("api"),
            ca_file=pki.ca,
        )
        runtime.closers.insert(0, platform.close)
        if rules is not None:
            runtime.directory.publish_rules(rules, actor="test-operator")
        else:
            seed_rules(runtime)
        client = TestClient(create_app(runtime), raise_server_exceptions=False)
        client.__enter__()
        made.append((runtime, client, platform))
        return Api(runtime, client, pki, var, platform_db, api_db, payments_db)

    yield make
    for _runtime, client, _platform in made:
        client.__exit__(None, None, None)
    release_log_file()


def release_log_file() -> None:
    """Close the log file `configure_logging` opened and go back to stdout only (the kit
    keeps no handle to close, and an unclosed file is a ResourceWarning, an error here)."""
    for handler in logging.getLogger().handlers:
        writer = getattr(handler, "_writer", None)
        handle = getattr(writer, "_file", None)
        if handle is not None:
            handle.close()
            writer._file = None  # type: ignore[union-attr]
    configure_logging("api", to_file=False)


@pytest.fixture
def api(make_api: ApiFactory, gateway: GatewayDouble) -> Api:
    """An API on SQLite files with permissive risk rules (tests publish their own)."""
    return make_api(rules=[])


def sweep_targets(api: Api) -> list[str]:
    """Every store and log of this API: both databases, the log folder, the audit log."""
    targets = [str(api.var / "log"), str(api.var / "audit")]
    for url in (api.platform_url, api.api_url, api.payments_url):
        targets.append(url)
    return list(dict.fromkeys(targets))


def now() -> datetime:
    return datetime.now(UTC)


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
