"""Shared by both zones: cryptographic service identity on every cross-zone call.

Design (see README "Service identity"): every internal call runs over TLS (server certificate
from the development CA) and carries a short-lived **service token** in the
`X-FinCore-Service-Token` header. The token is signed (ECDSA P-256, SHA-256) with the calling
service's private key and embeds the caller's certificate; the callee checks the certificate
chains to the CA it trusts, reads the caller's identity from the certificate's SPIFFE URI (not
from anything the caller asserts), checks the signature, the audience (the callee's own name) and
the expiry, and then checks that identity against a per-endpoint allow-list.

Why tokens rather than mutual TLS: uvicorn does not hand the peer certificate to the ASGI app,
so an allow-list per endpoint could not see it; a token also survives TLS termination at a load
balancer (the AWS deployment terminates TLS at an internal ALB), and it is bound to one audience
and a few minutes of life. PCI DSS 8.6 (system accounts), 4.2.1 (TLS), 7.2.5 (least privilege).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fincore.ids import random_token
from fincore.pki import TRUST_DOMAIN

TOKEN_HEADER = "X-FinCore-Service-Token"  # noqa: S105 - a header name, not a secret
_TOKEN_TYPE = "fincore-svc-v1"  # noqa: S105 - a type tag, not a secret
DEFAULT_LIFETIME_S = 300
_LEEWAY_S = 30
_CACHE_SIZE = 4096


class ServiceIdentityError(Exception):
    """A service token is missing, malformed, forged, expired or for another audience."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """Who is calling, as certified by the CA: service name and zone."""

    name: str
    zone: str

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/{self.zone}/{self.name}"


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    padding = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + padding)


def identity_from_certificate(cert: x509.Certificate) -> ServiceIdentity:
    """The SPIFFE identity certified in `cert` (URI SAN `spiffe://fincore.local/<zone>/<name>`)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise ServiceIdentityError("certificate has no subject alternative name") from exc
    prefix = f"spiffe://{TRUST_DOMAIN}/"
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(prefix):
            zone, _, name = uri[len(prefix) :].partition("/")
            if zone and name and "/" not in name:
                return ServiceIdentity(name=name, zone=zone)
    raise ServiceIdentityError("certificate carries no FinCore service identity")


class ServiceCredentials:
    """A service's own key and certificate; mints tokens for the services it calls."""

    def __init__(self, key_pem: bytes, cert_pem: bytes, *, lifetime_s: int = DEFAULT_LIFETIME_S):
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ServiceIdentityError("service key must be an EC private key")
        self._key = key
        self._cert = x509.load_pem_x509_certificate(cert_pem)
        self.identity = identity_from_certificate(self._cert)
        self._cert_b64 = _b64e(self._cert.public_bytes(serialization.Encoding.DER))
        self._lifetime = lifetime_s
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}

    @classmethod
    def from_files(cls, key_file: Path, cert_file: Path) -> ServiceCredentials:
        return cls(key_file.read_bytes(), cert_file.read_bytes())

    def token_for(self, audience: str, *, now: float | None = None) -> str:
        """A token for calls to `audience`, reused until 80% of its life has passed."""
        current = time.time() if now is None else now
        with self._lock:
            cached = self._cache.get(audience)
            if cached is not None and current < cached[1]:
                return cached[0]
            token = self._mint(audience, current)
            self._cache[audience] = (token, current + self._lifetime * 0.8)
            return token

    def _mint(self, audience: str, now: float) -> str:
        header = {"typ": _TOKEN_TYPE, "alg": "ES256", "x5c": [self._cert_b64]}
        claims = {
            "iss": self.identity.spiffe_id,
            "aud": audience,
            "iat": int(now),
            "exp": int(now) + self._lifetime,
            "jti": random_token(12),
        }
        signing_input = (
            _b64e(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64e(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        return signing_input + "." + _b64e(signature)


class ServiceTokenVerifier:
    """Checks service tokens for one audience against one trusted CA (results cached)."""

    def __init__(self, ca_cert_pem: bytes, audience: str) -> None:
        self._ca = x509.load_pem_x509_certificate(ca_cert_pem)
        self.audience = audience
        self._lock = threading.Lock()
        self._certs: dict[bytes, ServiceIdentity] = {}
        self._tokens: OrderedDict[str, tuple[ServiceIdentity, int]] = OrderedDict()

    @classmethod
    def from_file(cls, ca_file: Path, audience: str) -> ServiceTokenVerifier:
        return cls(ca_file.read_bytes(), audience)

    def verify(self, token: str | None, *, now: float | None = None) -> ServiceIdentity:
        """The caller's identity, or `ServiceIdentityError` naming what was wrong."""
        if not token:
            raise ServiceIdentityError("missing service token")
        current = int(time.time() if now is None else now)
        # Keyed by the token itself: a service token carries its certificate (1-2 KB), and
        # hashing it with SHA-256 on every request cost more than the dict lookup it keyed.
        with self._lock:
            hit = self._tokens.get(token)
        if hit is not None:
            identity, expires = hit
            if current > expires + _LEEWAY_S:
                raise ServiceIdentityError("service token expired")
            return identity
        identity, expires = self._verify_uncached(token, current)
        with self._lock:
            self._tokens[token] = (identity, expires)
            while len(self._tokens) > _CACHE_SIZE:
                self._tokens.popitem(last=False)
        return identity

    def _certificate_identity(
        self, der: bytes, current: int
    ) -> tuple[ServiceIdentity, x509.Certificate]:
        cert = x509.load_der_x509_certificate(der)
        fingerprint = hashlib.sha256(der).digest()
        with self._lock:
            known = self._certs.get(fingerprint)
        if known is None:
            try:
                cert.verify_directly_issued_by(self._ca)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise ServiceIdentityError("certificate is not issued by the trusted CA") from exc
            known = identity_from_certificate(cert)
            with self._lock:
                self._certs[fingerprint] = known
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
        if not not_before <= current <= not_after:
            raise ServiceIdentityError("certificate is outside its validity period")
        return known, cert

    def _verify_uncached(self, token: str, current: int) -> tuple[ServiceIdentity, int]:
        parts = token.split(".")
        if len(parts) != 3:
            raise ServiceIdentityError("malformed service token")
        try:
            header = json.loads(_b64d(parts[0]))
            claims = json.loads(_b64d(parts[1]))
            signature = _b64d(parts[2])
            der = _b64d(header["x5c"][0])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ServiceIdentityError("malformed service token") from exc
        if not isinstance(header, dict) or header.get("typ") != _TOKEN_TYPE:
            raise ServiceIdentityError("unsupported service token type")
        if header.get("alg") != "ES256":
            raise ServiceIdentityError("unsupported service token algorithm")
        try:
            identity, cert = self._certificate_identity(der, current)
        except ValueError as exc:
            raise ServiceIdentityError("malformed certificate") from exc
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ServiceIdentityError("certificate key is not an EC key")
        try:
            public_key.verify(
                signature, (parts[0] + "." + parts[1]).encode("ascii"), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature as exc:
            raise ServiceIdentityError("bad service token signature") from exc
        if not isinstance(claims, dict):
            raise ServiceIdentityError("malformed service token")
        if claims.get("iss") != identity.spiffe_id:
            raise ServiceIdentityError("token issuer does not match its certificate")
        if claims.get("aud") != self.audience:
            raise ServiceIdentityError("service token is for another audience")
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, int) or not isinstance(issued, int):
            raise ServiceIdentityError("malformed service token")
        if expires - issued > 3600:
            raise ServiceIdentityError("service token lifetime too long")
        if current > expires + _LEEWAY_S:
            raise ServiceIdentityError("service token expired")
        if issued > current + _LEEWAY_S:
            raise ServiceIdentityError("service token issued in the future")
        return identity, expires
