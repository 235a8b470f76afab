"""A small stand-in for HashiCorp Vault's Transit secrets engine, for the vault's tests only.

No Vault server can be installed on this machine, so the tests run `hvac` against this HTTP
server on a loopback port. It implements the Transit paths the vault's key provider uses,
with Vault's request and response shapes: `keys/<name>` (create, read, delete),
`keys/<name>/config` (deletion_allowed), `encrypt/<name>`, `decrypt/<name>` and
`datakey/plaintext/<name>`; derived keys (HKDF over the request `context`, which Vault
requires for derived keys); AES-256-GCM ciphertexts as `vault:v1:<base64(nonce||ct)>`; the
`X-Vault-Token` header checked on every call. It is a test peer, not a KMS.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fincore.netutil import free_port


@dataclass
class _Key:
    material: bytes
    derived: bool
    deletion_allowed: bool = False


@dataclass
class TransitState:
    """What the stand-in holds; tests may look at the calls it served."""

    token: str
    keys: dict[str, _Key] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _TransitError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _key_for(key: _Key, context: str | None) -> bytes:
    if not key.derived:
        return key.material
    if not context:
        raise _TransitError(
            400, "missing 'context' for key derivation; the key was created using a derived key"
        )
    info = base64.b64decode(context)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key.material)


def _encrypt(key: bytes, plaintext: bytes) -> str:
    nonce = os.urandom(12)
    return (
        "vault:v1:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext, None)).decode()
    )


def _decrypt(key: bytes, ciphertext: str) -> bytes:
    if not ciphertext.startswith("vault:v1:"):
        raise _TransitError(400, "invalid ciphertext: no prefix")
    raw = base64.b64decode(ciphertext[len("vault:v1:") :])
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], None)
    except InvalidTag as exc:
        raise _TransitError(400, "cipher: message authentication failed") from exc


def _handler(state: TransitState, mount: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # keep test output quiet
            return None

        def _reply(self, status: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            parsed = json.loads(raw or b"{}")
            return parsed if isinstance(parsed, dict) else {}

        def _route(self, method: str) -> None:
            try:
                if self.headers.get("X-Vault-Token") != state.token:
                    raise _TransitError(403, "permission denied")
                prefix = f"/v1/{mount}/"
                if not self.path.startswith(prefix):
                    raise _TransitError(404, "no handler for route")
                parts = self.path[len(prefix) :].split("/")
                with state.lock:
                    state.calls.append((method, "/".join(parts)))
                    status, body = self._dispatch(
                        method, parts, self._body() if method in {"POST", "PUT"} else {}
                    )
                self._reply(status, body)
            except _TransitError as exc:
                self._reply(exc.status, {"errors": [exc.message]})

        def _dispatch(
            self, method: str, parts: list[str], body: dict[str, Any]
        ) -> tuple[int, dict[str, Any] | None]:
            kind = parts[0]
            if kind == "keys" and len(parts) == 2:
                name = parts[1]
                if method in {"POST", "PUT"}:
                    state.keys.setdefault(
                        name, _Key(os.urandom(32), bool(body.get("derived", False)))
                    )
                    return 204, None
                key = state.keys.get(name)
                if key is None:
                    raise _TransitError(404, f"no key named {name}")
                if method == "GET":
                    return 200, {
                        "data": {
                            "name": name,
                            "type": "aes256-gcm96",
                            "derived": key.derived,
                            "deletion_allowed": key.deletion_allowed,
                            "latest_version": 1,
                        }
                    }
                if method == "DELETE":
                    if not key.deletion_allowed:
                        raise _TransitError(400, "deletion is not allowed for this key")
                    del state.keys[name]
                    return 204, None
            if kind == "keys" and len(parts) == 3 and parts[2] == "config":
                key = state.keys.get(parts[1])
                if key is None:
                    raise _TransitError(404, "no such key")
                key.deletion_allowed = bool(body.get("deletion_allowed", key.deletion_allowed))
                return 204, None
            if kind in {"encrypt", "decrypt"} and len(parts) == 2 and method in {"POST", "PUT"}:
                key = state.keys.get(parts[1])
                if key is None:
                    raise _TransitError(400, "encryption key not found")
                derived = _key_for(key, body.get("context"))
                if kind == "encrypt":
                    plaintext = base64.b64decode(body.get("plaintext", ""))
                    return 200, {
                        "data": {"ciphertext": _encrypt(derived, plaintext), "key_version": 1}
                    }
                plaintext = _decrypt(derived, str(body.get("ciphertext", "")))
                return 200, {"data": {"plaintext": base64.b64encode(plaintext).decode()}}
            if kind == "datakey" and len(parts) == 3 and parts[1] == "plaintext":
                key = state.keys.get(parts[2])
                if key is None:
                    raise _TransitError(400, "encryption key not found")
                derived = _key_for(key, body.get("context"))
                data_key = os.urandom(int(body.get("bits", 256)) // 8)
                return 200, {
                    "data": {
                        "plaintext": base64.b64encode(data_key).decode(),
                        "ciphertext": _encrypt(derived, data_key),
                        "key_version": 1,
                    }
                }
            raise _TransitError(405, "unsupported operation")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


@dataclass
class TransitStandIn:
    address: str
    token: str
    mount: str
    state: TransitState


@contextmanager
def transit_standin(mount: str = "transit") -> Iterator[TransitStandIn]:
    """Serve the stand-in on a free loopback port for the duration of the block."""
    state = TransitState(token="hvs." + os.urandom(12).hex())
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(state, mount))
    thread = threading.Thread(target=server.serve_forever, name="transit-standin", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield TransitStandIn(f"http://{host}:{port}", state.token, mount, state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
