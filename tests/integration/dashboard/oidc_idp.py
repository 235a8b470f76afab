"""A tiny OpenID Connect provider for the dashboard's SSO tests (a stand-in for Cognito).

It serves, over TLS with a development-CA certificate on a free loopback port: the discovery
document, a JWKS with one RSA key, `/authorize` (which signs in `next_user` at once and
redirects back with a code bound to the client, redirect URI, nonce and PKCE challenge) and
`/token` (client_secret_basic; verifies the PKCE verifier and returns an RS256 ID token). Knobs
let a test break one thing at a time: the signing key, the audience, the nonce.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from fincore.pki import issue_service_credentials


@dataclass
class StandInIdp:
    pki_dir: Path
    client_id: str = "dashboard-client"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redirect_uris: set[str] = field(default_factory=set)
    next_user: str = "alice@example.com"
    amr: list[str] = field(default_factory=lambda: ["pwd", "mfa"])
    sign_with_other_key: bool = False
    audience: str | None = None
    nonce_override: str | None = None
    token_requests: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "idp-key-1"})

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    def start(self) -> StandInIdp:
        files = issue_service_credentials(self.pki_dir, "oidc-idp", "external")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(files.cert, files.key)
        idp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    self._json(
                        200,
                        {
                            "issuer": idp.url,
                            "authorization_endpoint": idp.url + "/authorize",
                            "token_endpoint": idp.url + "/token",
                            "jwks_uri": idp.url + "/jwks",
                            "response_types_supported": ["code"],
                            "id_token_signing_alg_values_supported": ["RS256"],
                            "code_challenge_methods_supported": ["S256"],
                        },
                    )
                elif parts.path == "/jwks":
                    self._json(200, {"keys": [idp.key.as_dict(private=False)]})
                elif parts.path == "/authorize":
                    self._authorize(parse_qs(parts.query))
                else:
                    self._json(404, {"error": "not_found"})

            def _authorize(self, query: dict[str, list[str]]) -> None:
                one = {k: v[0] for k, v in query.items()}
                if (
                    one.get("client_id") != idp.client_id
                    or one.get("redirect_uri") not in idp.redirect_uris
                    or one.get("response_type") != "code"
                    or one.get("code_challenge_method") != "S256"
                    or "openid" not in one.get("scope", "").split()
                ):
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(24)
                idp._codes[code] = {
                    "redirect_uri": one["redirect_uri"],
                    "nonce": one.get("nonce"),
                    "challenge": one["code_challenge"],
                    "user": idp.next_user,
                }
                target = (
                    one["redirect_uri"] + "?" + urlencode({"code": code, "state": one["state"]})
                )
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                idp.token_requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                expected = (
                    "Basic "
                    + base64.b64encode(f"{idp.client_id}:{idp.client_secret}".encode()).decode()
                )
                if self.headers.get("Authorization") != expected:
                    self._json(401, {"error": "invalid_client"})
                    return
                grant = idp._codes.pop(form.get("code", ""), None)
                if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
                    self._json(400, {"error": "invalid_grant"})
                    return
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if challenge != grant["challenge"]:
                    self._json(400, {"error": "invalid_grant", "error_description": "pkce"})
                    return
                now = int(time.time())
                claims = {
                    "iss": idp.url,
                    "sub": "sub-" + grant["user"],
                    "aud": idp.audience or idp.client_id,
                    "iat": now,
                    "exp": now + 300,
                    "nonce": idp.nonce_override or grant["nonce"],
                    "email": grant["user"],
                    "amr": idp.amr,
                }
                key = idp.other_key if idp.sign_with_other_key else idp.key
                token = jwt.encode({"alg": "RS256", "kid": "idp-key-1"}, claims, key)
                self._json(
                    200,
                    {
                        "access_token": secrets.token_urlsafe(16),
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": token,
                    },
                )

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
