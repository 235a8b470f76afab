"""The PSP sandbox as a real process for tests, and a recording webhook receiver.

Shared by the sandbox integration tests, the PSP contract tests and the browser tests.
"""

from __future__ import annotations

import http.server
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fincore.netutil import free_port
from tests.harness.procs import ServerProcess

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class SandboxServer:
    """A running `python -m psp_sandbox.app` on a free loopback port."""

    url: str
    port: int
    secret_key: str
    publishable_key: str
    admin_token: str
    webhook_secret: str
    state_dir: Path
    process: ServerProcess
    env: dict[str, str]

    def admin(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(
            method,
            self.url + path,
            json=json,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A raw API call with the secret key (form-encoded like the SDK)."""
        kwargs.setdefault("timeout", 10)
        return httpx.request(method, self.url + path, auth=(self.secret_key, ""), **kwargs)

    def set_endpoints(self, *urls: str, secret: str | None = None) -> None:
        self.admin(
            "PUT",
            "/_sandbox/webhook_endpoints",
            {"endpoints": [{"url": url, **({"secret": secret} if secret else {})} for url in urls]},
        )

    def fault(self, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("POST", "/_sandbox/faults", spec)
        return result

    def clear_faults(self) -> None:
        self.admin("DELETE", "/_sandbox/faults")

    def deliveries(self, event_id: str | None = None) -> list[dict[str, Any]]:
        path = "/_sandbox/webhooks" + (f"?event={event_id}" if event_id else "")
        result: list[dict[str, Any]] = self.admin("GET", path)["deliveries"]
        return result

    def stripe_client(self, **kwargs: Any) -> Any:
        import stripe

        return stripe.StripeClient(
            self.secret_key,
            base_addresses={"api": self.url},
            max_network_retries=0,
            **kwargs,
        )


def start_sandbox(
    workdir: Path,
    keys: SandboxServer | None = None,
    *,
    ca_file: Path | None = None,
    **settings: str,
) -> Generator[SandboxServer, None, None]:
    """Start a sandbox with throw-away keys (or those of `keys`, to restart on the same state)
    and `settings` (FINCORE_SANDBOX_* without the prefix, e.g. WEBHOOK_RETRY_BASE_S="0.1");
    stop it afterwards. `ca_file` is the CA its HTTPS webhook deliveries trust."""
    port = free_port()
    secret_key = keys.secret_key if keys else "sk_test_" + secrets.token_hex(16)
    publishable_key = keys.publishable_key if keys else "pk_test_" + secrets.token_hex(16)
    admin_token = keys.admin_token if keys else "sbxadm_" + secrets.token_hex(16)
    webhook_secret = keys.webhook_secret if keys else "whsec_" + secrets.token_hex(16)
    state = workdir / "psp-sandbox"
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
    }
    env.update(
        PYTHONUNBUFFERED="1",
        TZ="UTC",
        FINCORE_ENV="test",
        FINCORE_VAR_DIR=str(workdir),
        FINCORE_PORT=str(port),
        FINCORE_TLS="0",
        FINCORE_LOG_LEVEL="INFO",
        FINCORE_SANDBOX_STATE_DIR=str(state),
        FINCORE_SANDBOX_SECRET_KEY=secret_key,
        FINCORE_SANDBOX_PUBLISHABLE_KEY=publishable_key,
        FINCORE_SANDBOX_ADMIN_TOKEN=admin_token,
        FINCORE_SANDBOX_WEBHOOK_SECRET=webhook_secret,
        FINCORE_SANDBOX_WEBHOOK_RETRY_BASE_S="0.2",
        FINCORE_SANDBOX_WEBHOOK_RETRY_MAX_S="2",
        FINCORE_SANDBOX_WEBHOOK_GIVE_UP_AFTER_S="60",
        FINCORE_SANDBOX_WEBHOOK_TIMEOUT_S="5",
    )
    for key, value in settings.items():
        env[f"FINCORE_SANDBOX_{key}"] = value
    if ca_file is not None:
        env["FINCORE_CA_FILE"] = str(ca_file)
    url = f"http://127.0.0.1:{port}"
    process = ServerProcess(
        [sys.executable, "-m", "psp_sandbox.app"],
        name="psp-sandbox",
        log_path=workdir / f"psp-sandbox-{port}.log",
        env=env,
        cwd=ROOT,
    )
    try:
        process.wait_until(lambda: httpx.get(url + "/healthz", timeout=1).status_code == 200)
        yield SandboxServer(
            url=url,
            port=port,
            secret_key=secret_key,
            publishable_key=publishable_key,
            admin_token=admin_token,
            webhook_secret=webhook_secret,
            state_dir=state,
            process=process,
            env=env,
        )
    finally:
        process.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class RecordingServer:
    """An HTTP server on loopback that records every POST and answers with `statuses` in turn
    (then 200 forever), or, with `fail_each`, answers those statuses to the first attempts of
    every event (by event id) before 200."""

    statuses: list[int] = field(default_factory=list)
    fail_each: list[int] = field(default_factory=list)
    always: int | None = None
    _seen: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> RecordingServer:
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with recorder._lock:
                    status = recorder._status_for(body)
                    recorder.received.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                    recorder.answered.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _status_for(self, body: bytes) -> int:
        import json

        if self.always is not None:
            return self.always
        if self.statuses:
            return self.statuses.pop(0)
        if self.fail_each:
            try:
                event_id = str(json.loads(body).get("id"))
            except ValueError:
                event_id = ""
            count = self._seen.get(event_id, 0)
            self._seen[event_id] = count + 1
            if count < len(self.fail_each):
                return self.fail_each[count]
        return 200

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def events(self) -> list[dict[str, Any]]:
        import json

        with self._lock:
            return [json.loads(item.body) for item in self.received]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 15.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"webhooks not received in time; got {len(self.events())}")

    def for_object(self, object_id: str) -> list[Received]:
        import json

        with self._lock:
            items = list(self.received)
        return [r for r in items if json.loads(r.body)["data"]["object"].get("id") == object_id]


def wait_until(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
