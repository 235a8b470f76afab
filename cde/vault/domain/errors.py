"""cde.vault (CDE): the vault's error family. Messages never carry card data or key material.

Each error names what went wrong and, for bad input, the parameter (`card[number]`); the HTTP
layer maps the family to Stripe-style error objects. A message never repeats a submitted value.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base of every vault error."""

    code = "vault_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param


class InvalidRequest(VaultError):
    """The request is malformed (not a card problem): missing merchant, bad token format."""

    code = "parameter_invalid"


class InvalidCard(VaultError):
    """The card data fails validation; `param` names the field (`card[exp_month]`)."""

    code = "invalid_card"


class TokenNotFound(VaultError):
    """No such token for this merchant (also answered for another merchant's token)."""

    code = "resource_missing"


class TokenDestroyed(VaultError):
    """The token's keys were destroyed (crypto-shredded); the card can never be read again."""

    code = "token_destroyed"


class RecordIntegrityError(VaultError):
    """A stored ciphertext does not authenticate for its row: tampered, swapped or corrupted."""

    code = "record_integrity_error"


class NotPermitted(VaultError):
    """The caller may not do this (wrong service, wrong merchant, no raw-card permission)."""

    code = "forbidden"


class RawCardDataNotPermitted(NotPermitted):
    """The merchant lacks the raw_card_data capability or an unexpired PCI attestation."""

    code = "raw_card_data_not_permitted"


class MerchantUnauthenticated(VaultError):
    """The merchant's API key is unknown or revoked."""

    code = "api_key_invalid"


class RateLimited(VaultError):
    """Too many tokenizations for this merchant in a short time (card-testing defence)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KeyUnavailable(VaultError):
    """A key-encryption key or data key cannot be used right now (provider down, retired)."""

    code = "key_unavailable"


class UpstreamUnavailable(VaultError):
    """A backing service (CVC store, rate limiter, vault, merchant directory, API) failed."""

    code = "upstream_unavailable"


class KeyStateError(VaultError):
    """A key operation is not allowed in the key's current state (retire the primary KEK...)."""

    code = "key_state_invalid"
