"""noncde.dashboard adapters, OIDC: single sign-on through an OpenID Connect provider (Amazon
Cognito in production) with authlib's OAuth 2.0 client and joserfc for the ID token.

Authorization code flow with PKCE (S256), a `state` and a `nonce` per login. The ID token is
accepted only if its signature verifies against the provider's published keys (JWKS, RS256 or
ES256), and its issuer, audience, expiry and nonce match. The provider's metadata comes from
its discovery document over TLS. Whether the provider used a second factor is read from the
`amr` claim; without it the dashboard asks for its own TOTP code (PCI DSS 8.4.2).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from noncde.dashboard.domain import AuthenticationFailed
from noncde.dashboard.ports import OidcIdentity, OidcStart

_ALGORITHMS = ["RS256", "ES256"]
_METADATA_TTL_S = 3600.0
MFA_AMR = frozenset({"mfa", "otp", "hwk", "swk", "sms", "fido"})


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str = "openid email"
    username_claim: str = "email"
    ca_file: Path | None = None
    timeout_s: float = 10.0


class AuthlibOidcProvider:
    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    def _verify(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self.settings.ca_file) if self.settings.ca_file else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _discover(self, *, refresh: bool = False) -> tuple[dict[str, Any], KeySet]:
        with self._lock:
            stale = time.monotonic() - self._fetched_at > _METADATA_TTL_S
            if self._metadata is None or self._keys is None or stale or refresh:
                url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
                with httpx.Client(verify=self._verify(), timeout=self.settings.timeout_s) as http:
                    metadata = http.get(url).raise_for_status().json()
                    if metadata.get("issuer") != self.settings.issuer:
                        raise AuthenticationFailed("oidc_issuer_mismatch")
                    jwks = http.get(metadata["jwks_uri"]).raise_for_status().json()
                self._metadata = metadata
                self._keys = KeySet.import_key_set(jwks)
                self._fetched_at = time.monotonic()
            return self._metadata, self._keys

    def _client(self, redirect_uri: str) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            scope=self.settings.scopes,
            redirect_uri=redirect_uri,
            verify=self._verify(),
            timeout=self.settings.timeout_s,
        )

    def begin(self, redirect_uri: str) -> OidcStart:
        metadata, _ = self._discover()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(48)
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_challenge=create_s256_code_challenge(verifier),
                code_challenge_method="S256",
            )
        return OidcStart(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def finish(
        self, code: str, *, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity:
        metadata, keys = self._discover()
        try:
            with self._client(redirect_uri) as client:
                token = client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except Exception as exc:  # noqa: BLE001 - any token-endpoint failure refuses the login
            raise AuthenticationFailed(f"oidc_token_exchange_failed:{type(exc).__name__}") from None
        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise AuthenticationFailed("oidc_no_id_token")
        claims = self._claims(raw, keys, nonce)
        username = claims.get(self.settings.username_claim)
        subject = claims.get("sub")
        if not isinstance(username, str) or not isinstance(subject, str):
            raise AuthenticationFailed("oidc_claims_missing")
        amr = claims.get("amr") or []
        methods: Sequence[str] = amr if isinstance(amr, list) else [str(amr)]
        return OidcIdentity(
            subject=subject,
            username=username,
            mfa=bool(MFA_AMR.intersection(str(m) for m in methods)),
        )

    def _claims(self, raw: str, keys: KeySet, nonce: str) -> dict[str, Any]:
        try:
            token = jwt.decode(raw, keys, algorithms=_ALGORITHMS)
        except JoseError:
            # The provider may have rotated its keys since the last fetch: try once more.
            _, keys = self._discover(refresh=True)
            try:
                token = jwt.decode(raw, keys, algorithms=_ALGORITHMS)
            except (JoseError, ValueError):
                raise AuthenticationFailed("oidc_id_token_signature") from None
        except ValueError:
            raise AuthenticationFailed("oidc_id_token_malformed") from None
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()),
            leeway=60,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
            sub={"essential": True},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise AuthenticationFailed(f"oidc_id_token_claims:{exc.error}") from None
        return dict(token.claims)
