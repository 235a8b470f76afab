"""cde.vault (CDE): key-hierarchy entities (KEKs, data keys) and the reuse policy; pure.

A KEK lives in the key provider and never leaves it in plaintext (for the key file it lives in
that file, 0600). Data keys are 256-bit random keys stored only wrapped by a KEK (an
aws-encryption-sdk message whose encryption context names the data key, its merchant and its
purpose); their plaintext exists only in process memory, in caches bounded by age and count
(PCI DSS 3.6.1.2-3.6.1.4, 3.7.x).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

DATA_KEY_CONTEXT_PURPOSE = "fincore-vault-data-key"


class KeyPurpose(StrEnum):
    """What a data key protects. Each merchant has its own keys for each purpose."""

    RECORD = "record"  # card records (PAN, expiry, name)
    FINGERPRINT = "fingerprint"  # HMAC key of the merchant's card fingerprints
    CVC = "cvc"  # CVCs in the TTL store, never under the PAN's key (PCI DSS 3.3.2)


class KekState(StrEnum):
    """A KEK's life: the primary wraps new data keys, active ones still unwrap, retired are gone."""

    PRIMARY = "primary"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class Kek:
    """A key-encryption key known to the vault (its material stays in the provider)."""

    kek_id: str
    provider: str
    state: KekState
    created_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DataKey:
    """A wrapped data key. `wrapped` is None once the key is destroyed (crypto-shredded)."""

    key_id: str
    merchant_id: str
    purpose: KeyPurpose
    kek_id: str
    wrapped: bytes | None
    created_at: datetime
    destroyed_at: datetime | None = None

    @property
    def destroyed(self) -> bool:
        return self.wrapped is None or self.destroyed_at is not None

    def wrapping_context(self) -> dict[str, str]:
        """The encryption context the KEK binds this data key to (checked on every unwrap)."""
        return wrapping_context(self.key_id, self.merchant_id, self.purpose)


def wrapping_context(key_id: str, merchant_id: str, purpose: KeyPurpose) -> dict[str, str]:
    return {
        "fincore_purpose": DATA_KEY_CONTEXT_PURPOSE,
        "key_id": key_id,
        "key_purpose": str(purpose),
        "merchant_id": merchant_id,
    }


@dataclass(frozen=True, slots=True)
class ReusePolicy:
    """How long and how often one plaintext data key may be used before a fresh one is made.

    Encryption: a data key seals at most `max_uses` records and is used for at most
    `max_age_s` seconds, then the process makes a new one (the aws-encryption-sdk caching
    CMM's `max_messages_encrypted` / `max_age`). Decryption: an unwrapped key stays cached at
    most `decrypt_max_age_s` and the cache holds at most `decrypt_capacity` keys, so a KEK that
    is disabled in the provider stops working within that time.
    """

    max_age_s: float = 3600.0
    max_uses: int = 100_000
    decrypt_max_age_s: float = 300.0
    decrypt_capacity: int = 10_000

    def exhausted(self, age_s: float, uses: int) -> bool:
        return age_s >= self.max_age_s or uses >= self.max_uses
