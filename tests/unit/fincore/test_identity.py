"""Service tokens: certified identity, signature, audience, expiry and forgery detection."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fincore.identity import (
    ServiceCredentials,
    ServiceIdentityError,
    ServiceTokenVerifier,
)
from fincore.pki import ensure_ca, issue_service_credentials


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return tmp_path / "pki"


def _creds(pki: Path, name: str, zone: str) -> ServiceCredentials:
    files = issue_service_credentials(pki, name, zone)
    return ServiceCredentials.from_files(files.key, files.cert)


def _verifier(pki: Path, audience: str) -> ServiceTokenVerifier:
    _, ca = ensure_ca(pki)
    return ServiceTokenVerifier.from_file(ca, audience)


def test_keys_are_private_files(pki: Path) -> None:
    """The CA key and service keys are written 0600."""
    files = issue_service_credentials(pki, "gateway", "cde")
    for path in (pki / "ca.key", files.key):
        assert path.stat().st_mode & 0o777 == 0o600


def test_valid_token_yields_the_certified_identity(pki: Path) -> None:
    """The callee learns the caller's name and zone from its certificate."""
    token = _creds(pki, "gateway", "cde").token_for("vault")
    identity = _verifier(pki, "vault").verify(token)
    assert (identity.name, identity.zone) == ("gateway", "cde")


def test_token_for_another_audience_is_refused(pki: Path) -> None:
    """A token minted for the API cannot be replayed to the vault."""
    token = _creds(pki, "gateway", "cde").token_for("api")
    with pytest.raises(ServiceIdentityError, match="audience"):
        _verifier(pki, "vault").verify(token)


def test_expired_token_is_refused(pki: Path) -> None:
    """A token past its expiry (plus leeway) is refused."""
    creds = _creds(pki, "gateway", "cde")
    token = creds.token_for("vault", now=1_000_000.0)
    with pytest.raises(ServiceIdentityError, match=r"expired|validity"):
        _verifier(pki, "vault").verify(token)


def test_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    """A service certified by a different CA is not trusted."""
    rogue = _creds(tmp_path / "rogue", "gateway", "cde")
    with pytest.raises(ServiceIdentityError, match="trusted CA"):
        _verifier(tmp_path / "real", "vault").verify(rogue.token_for("vault"))


def test_claimed_identity_must_match_the_certificate(pki: Path) -> None:
    """A token whose payload claims another service (re-signed by its own key) is refused."""
    creds = _creds(pki, "api", "noncde")
    token = creds.token_for("vault")
    header, payload, _sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["iss"] = "spiffe://fincore.local/cde/gateway"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    # Sign the forged payload with the api's own key: the signature is valid, the claim is not.
    # The test plays an attacker who holds the api's key.
    key = serialization.load_pem_private_key((pki / "api.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(f"{header}.{forged_payload}".encode(), ec.ECDSA(hashes.SHA256()))
    forged = (
        f"{header}.{forged_payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    )
    with pytest.raises(ServiceIdentityError, match="issuer"):
        _verifier(pki, "vault").verify(forged)


def test_tampered_signature_is_refused(pki: Path) -> None:
    """Changing the payload without re-signing breaks the signature."""
    token = _creds(pki, "gateway", "cde").token_for("vault")
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["exp"] += 3000
    bad = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(ServiceIdentityError, match="signature"):
        _verifier(pki, "vault").verify(f"{header}.{bad}.{sig}")


@pytest.mark.parametrize("token", [None, "", "abc", "a.b.c", "x" * 5000])
def test_garbage_is_refused(pki: Path, token: str | None) -> None:
    """Missing or malformed tokens are refused with a reason, never an unexpected error."""
    with pytest.raises(ServiceIdentityError):
        _verifier(pki, "vault").verify(token)


def test_tokens_are_cached_until_most_of_their_life_is_spent(pki: Path) -> None:
    """The caller reuses a token for its audience, and mints a new one near expiry."""
    creds = _creds(pki, "gateway", "cde")
    first = creds.token_for("vault", now=2_000_000_000.0)
    assert creds.token_for("vault", now=2_000_000_100.0) == first
    assert creds.token_for("vault", now=2_000_000_290.0) != first
