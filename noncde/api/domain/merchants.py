"""noncde.api (non-CDE): the merchant directory's values: merchants, API keys, the raw-card
capability and webhook endpoints; pure, no I/O.

Secret keys (`sk_test_…`) are shown once and stored only as a keyed hash (HMAC-SHA-256 under a
server-side pepper), so a copy of the directory database yields no usable key (PCI DSS 8.3.2:
authentication factors unreadable in storage). Publishable keys (`pk_test_…`) are not secret.
Webhook signing secrets (`whsec_…`) must be usable to sign, so they are stored encrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from fincore.ids import digest_text
from noncde.api.domain.ids import random_body
from noncde.api.domain.time import rfc3339

_SECRET_KEY = re.compile(r"^sk_(test|live)_[A-Za-z0-9]{24,128}$")
_PUBLISHABLE_KEY = re.compile(r"^pk_(test|live)_[A-Za-z0-9]{24,128}$")
KEY_BODY_LENGTH = 32
WEBHOOK_SECRET_BODY_LENGTH = 32


class KeyKind(StrEnum):
    SECRET = "secret"  # noqa: S105 - a key kind, not a secret
    PUBLISHABLE = "publishable"


class MerchantStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def new_secret_key(livemode: bool) -> str:
    return f"sk_{'live' if livemode else 'test'}_{random_body(KEY_BODY_LENGTH)}"


def new_publishable_key(livemode: bool) -> str:
    return f"pk_{'live' if livemode else 'test'}_{random_body(KEY_BODY_LENGTH)}"


def new_webhook_secret() -> str:
    return f"whsec_{random_body(WEBHOOK_SECRET_BODY_LENGTH)}"


def is_secret_key(value: str) -> bool:
    return bool(_SECRET_KEY.match(value))


def is_publishable_key(value: str) -> bool:
    return bool(_PUBLISHABLE_KEY.match(value))


def key_digest(pepper: bytes, key: str) -> str:
    """The stored form of an API key: HMAC-SHA-256 under the server's pepper, base64url.

    Keyed, so the digests in a stolen database cannot be tested offline without the pepper.
    """
    if len(pepper) < 32:
        raise ValueError("the API key pepper must be at least 256 bits")
    return digest_text(hmac.new(pepper, key.encode("ascii"), hashlib.sha256).digest())


def key_hint(key: str) -> str:
    """What may be shown of a key later: its prefix and last four characters."""
    prefix = key[: key.index("_", 3) + 1] if key.count("_") >= 2 else ""
    return f"{prefix}…{key[-4:]}"


@dataclass(frozen=True, slots=True)
class Merchant:
    id: str
    name: str
    livemode: bool
    status: MerchantStatus
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "livemode": self.livemode,
            "status": str(self.status),
            "created": rfc3339(self.created),
        }


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's record (never the key itself). Usable while not revoked and not expired;
    `expires_at` is set when the key is rotated (the overlap window) and by explicit expiry."""

    id: str
    merchant_id: str
    kind: KeyKind
    hint: str
    created: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable_at(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "merchant_id": self.merchant_id,
            "kind": str(self.kind),
            "hint": self.hint,
            "created": rfc3339(self.created),
            "expires_at": rfc3339(self.expires_at) if self.expires_at else None,
            "revoked_at": rfc3339(self.revoked_at) if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class RawCardCapability:
    """Permission to send raw card data through the CDE ingress (S2S), granted by staff on a
    PCI attestation (SAQ D / ROC) that expires."""

    granted: bool
    attestation_expires_on: date | None
    changed_at: datetime | None = None

    def active_on(self, today: date) -> bool:
        return (
            self.granted
            and self.attestation_expires_on is not None
            and today <= self.attestation_expires_on
        )


@dataclass(frozen=True, slots=True)
class MerchantAuth:
    """Who an API key belongs to, as the request handlers and the ingress see it."""

    merchant_id: str
    key_id: str
    kind: KeyKind
    livemode: bool
    raw_card: RawCardCapability

    def capabilities(self, today: date) -> dict[str, Any]:
        """The `capabilities` object of the internal merchant-auth answer."""
        expires = self.raw_card.attestation_expires_on
        return {
            "raw_card_data": {
                "active": self.raw_card.active_on(today),
                "attestation_expires_at": expires.isoformat() if expires else None,
            }
        }


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where the merchant's events are delivered (#8), with the secret that signs them."""

    id: str
    merchant_id: str
    url: str
    enabled_events: tuple[str, ...]
    created: datetime
    disabled_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "merchant_id": self.merchant_id,
            "url": self.url,
            "enabled_events": list(self.enabled_events),
            "created": rfc3339(self.created),
            "disabled_at": rfc3339(self.disabled_at) if self.disabled_at else None,
        }
