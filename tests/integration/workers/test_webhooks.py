"""Merchant webhooks over real HTTP: signed deliveries that verify with the merchant's secret
(ours and Stripe's verifier), retries with growing delays until the window closes, a slow
endpoint that holds up nobody, redelivery by hand (audited), the delivery log, the API
directory adapter over TLS, and the SSRF guard."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe
import uvicorn
from fastapi import Depends

from fincore.cards import find_card_numbers
from fincore.identity import ServiceCredentials, ServiceIdentity, ServiceTokenVerifier
from fincore.netutil import free_port, wait_for_port
from fincore.sensitive import SecretKey
from fincore.web import create_service_app, require_service
from noncde.api.domain import charge_stream
from noncde.platform.adapters.sql.schema import SqlDatabase
from noncde.platform.ports import Platform
from noncde.workers.adapters.http import HttpEndpointDirectory, HttpxWebhookSender
from noncde.workers.adapters.memory import MemoryEndpointDirectory
from noncde.workers.adapters.sql import SqlDeliveryStore
from noncde.workers.domain.webhooks import (
    SIGNATURE_HEADER,
    DeliveryStatus,
    Endpoint,
    RetrySchedule,
    verify_signature,
)
from noncde.workers.service.webhooks import WebhookDispatcher, WebhookSettings
from tests.integration.workers import harness
from tests.integration.workers.harness import MERCHANTS

SECRET_A = "whsec_AlphaSecretAlphaSecretAlphaSecret"
SECRET_B = "whsec_BravoSecretBravoSecretBravoSecret"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A merchant's web server: `/ok` answers 200, `/fail` 500, `/slow` after `slow_s`,
    `/flaky` 503 for the first `flaky` calls, then 200."""

    slow_s: float = 3.0
    flaky: int = 2
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def of(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers), body, time.time()))
                seen = sum(1 for r in state.received if r.path == self.path)
            if self.path == "/slow":
                time.sleep(state.slow_s)
            status = {"/ok": 200, "/ok-b": 200, "/fail": 500, "/slow": 200}.get(self.path, 404)
            if self.path == "/flaky":
                status = 503 if seen <= state.flaky else 200
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender gave up waiting

        def log_message(self, *_: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    built = harness.open_platform(f"sqlite:///{tmp_path / 'platform.db'}")
    yield built
    built.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlDeliveryStore]:
    built = SqlDeliveryStore(SqlDatabase(f"sqlite:///{tmp_path / 'webhooks.db'}"))
    yield built
    built.close()


def _endpoint(
    id_: str, merchant: str, url: str, secret: str, events: tuple[str, ...] = ("*",)
) -> Endpoint:
    return Endpoint(id_, merchant, url, events, SecretKey(secret))


def _dispatcher(
    platform: Platform,
    store: SqlDeliveryStore,
    directory: MemoryEndpointDirectory,
    *,
    schedule: RetrySchedule | None = None,
    timeout_s: float = 2.0,
    per_endpoint: int = 4,
    allow_private: bool = True,
    audit: Any = None,
) -> WebhookDispatcher:
    return WebhookDispatcher(
        platform.events,
        directory,
        store,
        HttpxWebhookSender(allow_private=allow_private),
        schedule=schedule or RetrySchedule(base_s=0.2, cap_s=10, give_up_after_s=60),
        settings=WebhookSettings(timeout_s=timeout_s, per_endpoint=per_endpoint, poll_s=0.05),
        audit=audit,
    )


def _run_until(dispatcher: WebhookDispatcher, done: Callable[[], bool], timeout_s: float) -> None:
    stop = threading.Event()

    async def main() -> None:
        task = asyncio.create_task(dispatcher.run(stop))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not done():
            await asyncio.sleep(0.05)
        stop.set()
        await task
        await dispatcher.sender.aclose()

    asyncio.run(main())
    assert done(), "the deliveries did not reach the expected state in time"


def test_deliveries_are_signed_with_the_merchants_secret(
    platform: Platform, store: SqlDeliveryStore, receiver: Receiver
) -> None:
    """Each merchant's endpoint gets its own events (only the types it wants), signed with its
    secret so that both our verifier and Stripe's accept them, and a wrong secret does not."""
    directory = MemoryEndpointDirectory(
        [
            _endpoint("we_AlphaAlphaAlpha1", MERCHANTS[0], receiver.url("/ok"), SECRET_A),
            _endpoint(
                "we_BravoBravoBravo1",
                MERCHANTS[1],
                receiver.url("/ok-b"),
                SECRET_B,
                ("charge.captured",),
            ),
        ]
    )
    a = harness.request_charge(platform, MERCHANTS[0], 1000)
    b = harness.request_charge(platform, MERCHANTS[1], 2000)
    _capture(platform, b, MERCHANTS[1])
    dispatcher = _dispatcher(platform, store, directory)
    _run_until(dispatcher, lambda: len(receiver.received) == 3, 20)

    alpha = receiver.of("/ok")
    bravo = receiver.of("/ok-b")
    assert len(alpha) == 2 and len(bravo) == 1
    for item, secret, merchant_charge in [
        (alpha[0], SECRET_A, a),
        (alpha[1], SECRET_A, a),
        (bravo[0], SECRET_B, b),
    ]:
        header = item.headers[SIGNATURE_HEADER]
        assert verify_signature(item.body, header, secret, now=time.time()) > 0
        stripe.WebhookSignature.verify_header(item.body.decode(), header, secret, tolerance=300)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(
                item.body.decode(), header, SECRET_B if secret == SECRET_A else SECRET_A
            )
        event = json.loads(item.body)
        assert event["object"] == "event"
        assert event["data"]["object"]["charge_id"] == merchant_charge
        assert item.headers["FinCore-Event-Id"] == event["id"]
    assert json.loads(bravo[0].body)["type"] == "charge.captured"
    assert {json.loads(r.body)["type"] for r in alpha} == {
        "charge.requested",
        "charge.risk_assessed",
    }
    assert store.counts() == {"pending": 0, "delivered": 3, "failed": 0}
    assert not any(find_card_numbers(r.body.decode()) for r in receiver.received)


def test_failing_endpoint_is_retried_with_growing_delays_until_the_window_closes(
    platform: Platform, store: SqlDeliveryStore, receiver: Receiver
) -> None:
    """An endpoint answering 500 is tried again after ever longer waits, each attempt in the
    log, until the retry window ends: then the delivery is failed."""
    directory = MemoryEndpointDirectory(
        [
            _endpoint(
                "we_FailFailFail01",
                MERCHANTS[0],
                receiver.url("/fail"),
                SECRET_A,
                ("charge.requested",),
            ),
        ]
    )
    harness.request_charge(platform, MERCHANTS[0], 1000)
    schedule = RetrySchedule(base_s=0.15, cap_s=30, give_up_after_s=4.0)
    dispatcher = _dispatcher(platform, store, directory, schedule=schedule)
    _run_until(dispatcher, lambda: store.counts()["failed"] == 1, 30)

    (delivery,) = store.deliveries()
    attempts = store.attempts(delivery.id)
    assert len(attempts) >= 4
    assert [a.status_code for a in attempts] == [500] * len(attempts)
    assert [a.number for a in attempts] == list(range(1, len(attempts) + 1))
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps)), gaps
    assert attempts[-1].next_attempt_at is None
    assert delivery.status is DeliveryStatus.FAILED
    # Every retry was scheduled inside the window (an attempt itself may start a little after
    # its due time on a busy machine; the window governs the schedule, not the clock).
    scheduled = [a.next_attempt_at for a in attempts[:-1]]
    assert all(due is not None and due - attempts[0].at <= 4.0 for due in scheduled), scheduled
    assert len(receiver.of("/fail")) == len(attempts)


def test_flaky_endpoint_is_delivered_after_retries_and_redelivered_by_hand(
    platform: Platform, store: SqlDeliveryStore, receiver: Receiver, tmp_path: Path
) -> None:
    """503, 503, then 200: delivered on the third attempt; a manual redelivery (audited)
    sends the same event again as a new attempt series."""
    from audit.bootstrap import open_audit_log

    directory = MemoryEndpointDirectory(
        [
            _endpoint(
                "we_FlakyFlakyFla1",
                MERCHANTS[0],
                receiver.url("/flaky"),
                SECRET_A,
                ("charge.requested",),
            ),
        ]
    )
    charge_id = harness.request_charge(platform, MERCHANTS[0], 1000)
    env = {"FINCORE_VAR_DIR": str(tmp_path / "var"), "FINCORE_ENV": "test"}
    audit = open_audit_log("noncde", "workers", env=env, lifecycle=False)
    try:
        dispatcher = _dispatcher(platform, store, directory, audit=audit)
        _run_until(dispatcher, lambda: store.counts()["delivered"] == 1, 20)
        (delivery,) = store.deliveries()
        assert [a.status_code for a in store.attempts(delivery.id)] == [503, 503, 200]
        event_id = json.loads(receiver.of("/flaky")[-1].body)["id"]
        assert dispatcher.redeliver(event_id, None, actor="ops-alice") == 1
        dispatcher = _dispatcher(platform, store, directory)
        _run_until(
            dispatcher,
            lambda: store.counts()["delivered"] == 1 and len(receiver.of("/flaky")) == 4,
            20,
        )
    finally:
        audit.close()
    (delivery,) = store.deliveries()
    assert delivery.series == 2 and delivery.attempts == 1
    log = store.attempts(delivery.id)
    assert [(a.series, a.number, a.status_code) for a in log] == [
        (1, 1, 503),
        (1, 2, 503),
        (1, 3, 200),
        (2, 1, 200),
    ]
    again = receiver.of("/flaky")[-1]
    assert json.loads(again.body)["id"] == event_id
    assert json.loads(again.body)["data"]["object"]["charge_id"] == charge_id
    verify_signature(again.body, again.headers[SIGNATURE_HEADER], SECRET_A, now=time.time())
    audited = [
        line
        for path in (tmp_path / "var" / "audit").rglob("*")
        if path.is_file()
        for line in path.read_text(errors="replace").splitlines()
        if '"redeliver"' in line
    ]
    assert len(audited) == 1 and "ops-alice" in audited[0] and event_id in audited[0]


def test_a_slow_endpoint_does_not_hold_up_the_others(
    platform: Platform, store: SqlDeliveryStore, receiver: Receiver
) -> None:
    """While one merchant's endpoint hangs past the timeout, every delivery to a healthy
    endpoint completes before the first hung attempt even ends."""
    receiver.slow_s = 3.0
    directory = MemoryEndpointDirectory(
        [
            _endpoint("we_SlowSlowSlow01", MERCHANTS[0], receiver.url("/slow"), SECRET_A),
            _endpoint("we_FastFastFast01", MERCHANTS[1], receiver.url("/ok"), SECRET_B),
        ]
    )
    for n in range(10):
        harness.request_charge(platform, MERCHANTS[n % 2], 1000 + n)
    dispatcher = _dispatcher(platform, store, directory, timeout_s=1.0, per_endpoint=2)
    _run_until(
        dispatcher,
        lambda: (
            len(receiver.of("/ok")) == 10
            and any(store.attempts(d.id) for d in store.deliveries(endpoint_id="we_SlowSlowSlow01"))
        ),
        30,
    )
    slow_attempts = [
        a for d in store.deliveries(endpoint_id="we_SlowSlowSlow01") for a in store.attempts(d.id)
    ]
    first_slow_end = min(a.at for a in slow_attempts)
    assert all(a.error and a.error.startswith("timeout") for a in slow_attempts)
    assert max(r.at for r in receiver.of("/ok")) < first_slow_end
    assert store.counts()["delivered"] == 10
    # At most `per_endpoint` (2) attempts to the slow endpoint were ever in flight at once.
    spans = [(a.at - a.duration_ms / 1000, a.at) for a in slow_attempts]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert 1 <= overlap <= 2


def test_private_addresses_are_refused_outside_development(
    platform: Platform, store: SqlDeliveryStore, receiver: Receiver
) -> None:
    """With the SSRF guard on, an endpoint on a loopback address is never contacted."""
    directory = MemoryEndpointDirectory(
        [
            _endpoint(
                "we_LoopLoopLoop01",
                MERCHANTS[0],
                receiver.url("/ok"),
                SECRET_A,
                ("charge.requested",),
            ),
        ]
    )
    harness.request_charge(platform, MERCHANTS[0], 1000)
    dispatcher = _dispatcher(platform, store, directory, allow_private=False)
    _run_until(dispatcher, lambda: any(store.attempts(d.id) for d in store.deliveries()), 10)
    (delivery,) = store.deliveries()
    assert store.attempts(delivery.id)[0].error == "refused: private or loopback address"
    assert receiver.received == []


def test_directory_adapter_reads_the_apis_internal_endpoint_with_the_webhooks_identity(
    tmp_path: Path,
) -> None:
    """The HTTP directory calls the API over TLS with the `webhooks` identity, masks the
    secrets it receives, and caches them; another identity is refused by the API."""
    pki = harness.make_pki(tmp_path / "pki")
    api_key, api_cert = pki.files("api", "noncde")
    verifier = ServiceTokenVerifier.from_file(pki.ca, "api")
    calls: list[str] = []
    app = create_service_app("api")
    guard = require_service(verifier, {"webhooks"})

    @app.get("/internal/v1/webhook_endpoints")
    async def endpoints(identity: ServiceIdentity = Depends(guard)) -> dict[str, Any]:  # noqa: B008 - FastAPI idiom
        calls.append(identity.name)
        return {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "id": "we_AlphaAlphaAlpha1",
                    "merchant_id": MERCHANTS[0],
                    "url": "https://a.example/h",
                    "enabled_events": ["charge.*"],
                    "created": "2026-11-27T00:00:00Z",
                    "disabled_at": None,
                    "secret": SECRET_A,
                },
                {
                    "id": "we_BravoBravoBravo1",
                    "merchant_id": MERCHANTS[1],
                    "url": "https://b.example/h",
                    "enabled_events": ["*"],
                    "created": "2026-11-27T00:00:00Z",
                    "disabled_at": "2026-11-27T01:00:00Z",
                    "secret": SECRET_B,
                },
            ],
        }

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            ssl_certfile=str(api_cert),
            ssl_keyfile=str(api_key),
            ssl_version=ssl.PROTOCOL_TLS_SERVER,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        key, cert = pki.files("webhooks", "noncde")
        directory = HttpEndpointDirectory(
            f"https://127.0.0.1:{port}",
            credentials=ServiceCredentials.from_files(key, cert),
            ca_file=pki.ca,
            ttl_s=60,
        )
        (alpha,) = directory.endpoints(MERCHANTS[0])
        assert alpha.wants("charge.captured") and not alpha.wants("refund.succeeded")
        assert alpha.secret.reveal() == SECRET_A and SECRET_A not in repr(alpha)
        bravo = directory.endpoint("we_BravoBravoBravo1")
        assert bravo is not None and bravo.disabled and not bravo.wants("charge.captured")
        assert calls == ["webhooks"]  # cached
        directory.close()
        wrong_key, wrong_cert = pki.files("worker", "noncde")
        other = HttpEndpointDirectory(
            f"https://127.0.0.1:{port}",
            credentials=ServiceCredentials.from_files(wrong_key, wrong_cert),
            ca_file=pki.ca,
        )
        from noncde.workers.domain.webhooks import DirectoryUnavailable

        with pytest.raises(DirectoryUnavailable, match="403"):
            other.endpoints(MERCHANTS[0])
        other.close()
    finally:
        server.should_exit = True
        thread.join(10)


def test_cli_shows_the_log_and_redelivers(
    tmp_path: Path, platform: Platform, receiver: Receiver
) -> None:
    """`deliveries EVENT` prints the attempt log; `redeliver EVENT` starts a new series."""
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "id": "we_CliCliCliCli01",
                        "merchant_id": MERCHANTS[0],
                        "url": receiver.url("/ok"),
                        "enabled_events": ["charge.requested"],
                        "secret": SECRET_A,
                    }
                ]
            }
        )
    )
    os.chmod(endpoints, 0o600)
    db_url = f"sqlite:///{tmp_path / 'webhooks.db'}"
    store = SqlDeliveryStore(SqlDatabase(db_url))
    harness.request_charge(platform, MERCHANTS[0], 1000)
    dispatcher = WebhookDispatcher(
        platform.events,
        _file_directory(endpoints),
        store,
        HttpxWebhookSender(allow_private=True),
        settings=WebhookSettings(poll_s=0.05),
    )
    _run_until(dispatcher, lambda: store.counts()["delivered"] == 1, 20)
    event_id = json.loads(receiver.of("/ok")[0].body)["id"]
    pki = harness.make_pki(tmp_path / "pki")
    env = harness.process_env(
        pki,
        tmp_path,
        name="webhooks",
        platform_url=f"sqlite:///{tmp_path / 'platform.db'}",
        payments_url="sqlite:///unused-p",
        ledger_url="sqlite:///unused-l",
        extra={
            "FINCORE_WORKERS_WEBHOOKS_DB_URL": db_url,
            "FINCORE_WORKERS_WEBHOOK_ENDPOINTS": f"file://{endpoints}",
            "FINCORE_AUDIT_ACTOR": "ops-bob",
        },
    )
    shown = subprocess.run(
        [sys.executable, "-m", "noncde.workers.app", "deliveries", event_id],
        env=env,
        capture_output=True,
        text=True,
        cwd=harness.ROOT,
        check=True,
    )
    (row,) = json.loads(shown.stdout)
    assert row["status"] == "delivered" and row["log"][0]["status_code"] == 200
    redo = subprocess.run(
        [sys.executable, "-m", "noncde.workers.app", "redeliver", event_id],
        env=env,
        capture_output=True,
        text=True,
        cwd=harness.ROOT,
    )
    assert redo.returncode == 0, redo.stderr
    assert json.loads(redo.stdout)["redelivering"] == 1
    (delivery,) = store.deliveries()
    assert delivery.status is DeliveryStatus.PENDING and delivery.series == 2
    missing = subprocess.run(
        [sys.executable, "-m", "noncde.workers.app", "redeliver", "evt_NoSuchEventAtAll"],
        env=env,
        capture_output=True,
        text=True,
        cwd=harness.ROOT,
    )
    assert missing.returncode == 1
    store.close()


def _file_directory(path: Path) -> Any:
    from noncde.workers.adapters.files import FileEndpointDirectory

    return FileEndpointDirectory(path)


def _capture(platform: Platform, charge_id: str, merchant: str) -> None:
    from noncde.api.domain import ChargeCaptured
    from noncde.api.domain.ids import new_id
    from noncde.platform.domain import NewEvent

    stream = charge_stream(charge_id)
    platform.events.append(
        stream,
        [
            NewEvent(
                "charge.captured",
                ChargeCaptured(charge_id, 2000, 2000, "pi_x").to_data(),
                merchant_id=merchant,
                id=new_id("evt"),
            )
        ],
        expected_version=platform.events.stream_version(stream),
    )
