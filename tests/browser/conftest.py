"""Fixtures for the browser tests: the PSP sandbox and a small merchant site on another origin."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.psp_sandbox.peer import SandboxServer, start_sandbox


@pytest.fixture(scope="session")
def psp_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """The PSP sandbox as a real process on a free loopback port."""
    yield from start_sandbox(tmp_path_factory.mktemp("browser-sandbox"))


_SHOP = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Merchant shop</title>
<script src="{sandbox}/v1/js/sandbox.js" integrity="{integrity}" crossorigin="anonymous"></script>
<script src="/shop.js" defer></script></head>
<body data-key="{key}"><h1>Checkout</h1><div id="card"></div>
<button id="pay" type="button">Pay</button><p id="result"></p></body></html>
"""

_SHOP_JS = """
const sandbox = Sandbox(document.body.dataset.key);
sandbox.mountCard('#card');
document.getElementById('pay').addEventListener('click', async () => {
  const result = await sandbox.createPaymentMethod();
  const out = document.getElementById('result');
  if (result.paymentMethod) {
    out.textContent = result.paymentMethod.id + ' ' + result.paymentMethod.card.brand + ' '
      + result.paymentMethod.card.last4;
    await fetch('/charge', {method: 'POST', headers: {'Content-Type': 'application/json'},
                            body: JSON.stringify({payment_method: result.paymentMethod.id})});
  } else {
    out.textContent = 'error ' + result.error.code + ': ' + result.error.message;
  }
});
"""


@dataclass
class MerchantSite:
    """A merchant's website on its own loopback origin; records every request it gets."""

    sandbox: SandboxServer
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> MerchantSite:
        site = self
        inventory = httpx.get(self.sandbox.url + "/v1/js-inventory.json").json()
        integrity = next(
            s["integrity"] for s in inventory["scripts"] if s["path"] == "/v1/js/sandbox.js"
        )
        shop = _SHOP.format(
            sandbox=self.sandbox.url, integrity=integrity, key=self.sandbox.publishable_key
        )

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self, body: bytes) -> None:
                site.requests.append(
                    {"method": self.command, "path": self.path, "body": body.decode("latin-1")}
                )

            def _send(self, status: int, kind: str, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._record(b"")
                path = urlsplit(self.path).path
                if path == "/shop":
                    self._send(200, "text/html; charset=utf-8", shop)
                elif path == "/shop.js":
                    self._send(200, "text/javascript", _SHOP_JS)
                elif path in ("/ok", "/cancel"):
                    title = "Thank you" if path == "/ok" else "Cancelled"
                    self._send(
                        200,
                        "text/html",
                        f"<!doctype html><title>{title}</title><h1 id='done'>{title}</h1>",
                    )
                else:
                    self._send(404, "text/plain", "not found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                self._record(body)
                self._send(200, "application/json", json.dumps({"received": True}))

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def merchant(psp_sandbox: SandboxServer) -> Iterator[MerchantSite]:
    """A merchant site that embeds the sandbox's card element (a different origin)."""
    site = MerchantSite(psp_sandbox).start()
    yield site
    site.stop()
