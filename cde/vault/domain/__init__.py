"""cde.vault (CDE): values, entities and errors of the card vault and ingress; pure, no I/O."""

from cde.vault.domain.cards import Brand, Card, detect_brand, validate_card
from cde.vault.domain.errors import (
    InvalidCard,
    InvalidRequest,
    KeyStateError,
    KeyUnavailable,
    MerchantUnauthenticated,
    NotPermitted,
    RateLimited,
    RawCardDataNotPermitted,
    RecordIntegrityError,
    TokenDestroyed,
    TokenNotFound,
    UpstreamUnavailable,
    VaultError,
)
from cde.vault.domain.keys import DataKey, Kek, KekState, KeyPurpose, ReusePolicy
from cde.vault.domain.merchants import Attestation, MerchantAuthorization
from cde.vault.domain.records import (
    CardDisplay,
    CardRecord,
    Detokenized,
    StoredRecord,
    Tokenized,
)

__all__ = [
    "Attestation",
    "Brand",
    "Card",
    "CardDisplay",
    "CardRecord",
    "DataKey",
    "Detokenized",
    "InvalidCard",
    "InvalidRequest",
    "Kek",
    "KekState",
    "KeyPurpose",
    "KeyStateError",
    "KeyUnavailable",
    "MerchantAuthorization",
    "MerchantUnauthenticated",
    "NotPermitted",
    "RateLimited",
    "RawCardDataNotPermitted",
    "RecordIntegrityError",
    "ReusePolicy",
    "StoredRecord",
    "TokenDestroyed",
    "TokenNotFound",
    "Tokenized",
    "UpstreamUnavailable",
    "VaultError",
    "detect_brand",
    "validate_card",
]
