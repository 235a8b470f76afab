"""cde.vault (CDE): the Protocols for everything outside the vault and the ingress.

Each port states its guarantees; adapters in `cde/vault/adapters/` keep them and the contract
suites in `tests/contract/vault/` check every adapter against them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from audit.domain import Actor, EventType, Outcome
from cde.vault.domain import (
    Attestation,
    CardDisplay,
    CardRecord,
    DataKey,
    Kek,
    KeyPurpose,
    MerchantAuthorization,
    StoredRecord,
)
from fincore.sensitive import SecretKey


class KeyProvider(Protocol):
    """Holds key-encryption keys (KEKs) and wraps data keys with them.

    Guarantees:
    - KEK material never leaves the provider (KMS, Transit) or its 0600 key file.
    - `wrap` returns an aws-encryption-sdk message that binds `context` (the data key's id,
      merchant and purpose); `unwrap` returns the data key only for the same context and raises
      `RecordIntegrityError` for another one, `KeyUnavailable` when the KEK cannot be used.
    - Methods are blocking (network or file I/O); callers run them off the event loop.
    - `retire_kek` makes the KEK unusable for good (key file: material erased; KMS: disabled).
    """

    @property
    def name(self) -> str:
        """The provider's kind: `file`, `aws-kms` or `hashicorp-transit`."""
        ...

    def default_kek_id(self) -> str:
        """The KEK named by configuration; registered as primary when the vault is new."""
        ...

    def wrap(self, kek_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        """The data key `plaintext` encrypted under `kek_id`, bound to `context`."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        """The data key inside `wrapped`, if it was wrapped by `kek_id` for `context`."""
        ...

    def create_kek(self) -> str:
        """A new KEK (key file: generated; KMS: a new CMK; Transit: a new named key)."""
        ...

    def retire_kek(self, kek_id: str) -> None:
        """Make `kek_id` unusable. Idempotent."""
        ...

    def check(self, kek_id: str) -> bool:
        """True when `kek_id` can be used right now (readiness)."""
        ...


class VaultStore(Protocol):
    """Card records, wrapped data keys, the KEK registry and the attestation register.

    Guarantees:
    - A method returns once its change is committed (durable under the store's policy:
      SQLite WAL with synchronous=NORMAL survives a process crash; PostgreSQL commits).
    - Holds no plaintext card data or key material: records are sealed, keys wrapped.
    - `add_record` raises `ValueError` for a duplicate token (never overwrites).
    - Conditional updates (`rewrap_data_key`, `replace_record_key`) change a row only when it is
      still as the caller read it, so concurrent rotation runs never lose an update.
    - Deletions are physical (SQLite `secure_delete` zeroes the freed pages).
    """

    async def add_record(self, record: CardRecord) -> None:
        """Store a new record."""
        ...

    async def get_record(self, token: str) -> StoredRecord | None:
        """The record and whether its data key is destroyed, or None."""
        ...

    async def touch_record(self, token: str, at: datetime) -> None:
        """Record a use of the token (retention counts from the last use)."""
        ...

    async def delete_record(self, token: str) -> bool:
        """Delete the record; False when there was none."""
        ...

    async def add_data_key(self, key: DataKey) -> DataKey:
        """Store a data key. For a merchant's fingerprint key (one per merchant) the key that
        won a concurrent insert is returned instead of raising."""
        ...

    async def get_data_key(self, key_id: str) -> DataKey | None:
        """The data key, destroyed or not, or None."""
        ...

    async def fingerprint_key(self, merchant_id: str) -> DataKey | None:
        """The merchant's live fingerprint key, or None."""
        ...

    async def keks(self) -> list[Kek]:
        """Every registered KEK, oldest first."""
        ...

    async def put_kek(self, kek: Kek) -> None:
        """Insert or update a KEK's registry entry."""
        ...

    async def set_primary_kek(self, kek_id: str, at: datetime) -> None:
        """Make `kek_id` the only primary KEK; the previous primary becomes active."""
        ...

    async def data_keys_wrapped_by_other(self, kek_id: str, limit: int) -> list[DataKey]:
        """Live data keys wrapped by a KEK other than `kek_id` (the re-wrap work list)."""
        ...

    async def rewrap_data_key(
        self, key_id: str, expected_kek_id: str, new_kek_id: str, wrapped: bytes
    ) -> bool:
        """Replace a data key's wrapping if it is still wrapped by `expected_kek_id`."""
        ...

    async def count_data_keys_by_kek(self) -> dict[str, int]:
        """Live data keys per KEK."""
        ...

    async def records_keyed_before(self, cutoff: datetime, limit: int) -> list[CardRecord]:
        """Readable records whose data key was created before `cutoff` (re-key work list)."""
        ...

    async def replace_record_key(
        self, token: str, expected_key_id: str, new_key_id: str, ciphertext: bytes
    ) -> bool:
        """Swap a record's data key and ciphertext if it still uses `expected_key_id`."""
        ...

    async def purge_records(self, unused_since: datetime, limit: int) -> list[str]:
        """Delete up to `limit` records last used (or created) before `unused_since`."""
        ...

    async def purge_data_keys(
        self, created_before: datetime, purposes: Sequence[KeyPurpose]
    ) -> int:
        """Delete data keys of `purposes` created before the cutoff that no record uses."""
        ...

    async def destroy_merchant_keys(self, merchant_id: str, at: datetime) -> list[str]:
        """Erase the wrapped material of every key of the merchant; returns their ids."""
        ...

    async def delete_merchant_records(self, merchant_id: str, limit: int) -> int:
        """Delete up to `limit` of the merchant's records; returns how many."""
        ...

    async def get_attestation(self, merchant_id: str) -> Attestation | None: ...

    async def put_attestation(self, attestation: Attestation) -> None: ...

    async def delete_attestation(self, merchant_id: str) -> bool: ...

    async def attestations(self) -> list[Attestation]: ...

    async def counts(self) -> dict[str, int]:
        """Row counts (`records`, `data_keys`, `destroyed_keys`, `attestations`)."""
        ...

    async def ping(self) -> bool:
        """True when the store answers (readiness)."""
        ...

    async def close(self) -> None: ...


class CvcStore(Protocol):
    """The short-lived store of sealed CVCs (PCI DSS 3.3.2): never a database, never a log.

    Guarantees: holds only sealed bytes; an entry disappears after its TTL; `take` returns and
    deletes an entry atomically, so a CVC is read at most once (PCI DSS 3.3.1), also across
    processes for the shared (Redis) adapter. The memory adapter serves one process only.
    """

    async def put(self, token: str, sealed: bytes, ttl_s: int) -> None: ...

    async def take(self, token: str) -> bytes | None:
        """Return and delete the entry; None when absent or expired."""
        ...

    async def delete(self, token: str) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...

    @property
    def shared(self) -> bool:
        """True when several processes can use the store (Redis); False for process memory."""
        ...


class RateLimiter(Protocol):
    """Per-key token bucket: `rate` operations per second with bursts up to `burst`."""

    async def acquire(self, key: str) -> float:
        """0.0 when one operation is allowed now (and counted), else seconds until one is."""
        ...

    async def close(self) -> None: ...


class AuditRecorder(Protocol):
    """The CDE audit log (`audit.service.AuditLog`): append one record or raise.

    `record` returns once the record is durable under the audit durability policy and raises
    `AuditUnavailable` when it cannot be written; the vault then does not proceed (or undoes
    what it did) before anyone hears of it (fail closed, PCI DSS 10.2.1, 10.7.2).
    """

    def record(
        self,
        event_type: EventType,
        *,
        actor: Actor | str,
        outcome: Outcome,
        target: str | None = None,
        resource: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        origin_ip: str | None = None,
        reason: str | None = None,
    ) -> Any: ...


class AuditTrail(AuditRecorder, Protocol):
    """The audit log as the vault's request path uses it: `arecord` awaits the same durable
    write without blocking the event loop; `available` is False after a failed write."""

    available: bool

    async def arecord(self, event_type: EventType, **fields: Any) -> Any: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- the ingress's neighbours


class MerchantDirectory(Protocol):
    """The non-CDE merchant directory (the API's `/internal/v1/merchant-auth`).

    `authenticate` raises `MerchantUnauthenticated` for an unknown or revoked key and
    `UpstreamUnavailable` when the directory does not answer properly.
    """

    async def authenticate(self, api_key: SecretKey) -> MerchantAuthorization: ...

    async def close(self) -> None: ...


class CardVault(Protocol):
    """The vault as the ingress sees it (HTTPS with the ingress identity).

    `tokenize` raises the vault's errors as domain errors (`InvalidCard` with the vault's
    `param` and `code`, `RateLimited`, `RawCardDataNotPermitted`) and `UpstreamUnavailable`.
    """

    async def attestation(self, merchant_id: str) -> Attestation | None: ...

    async def tokenize(
        self, merchant_id: str, card: Mapping[str, Any]
    ) -> tuple[str, CardDisplay]: ...

    async def delete(self, token: str, merchant_id: str) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """The API's answer, returned to the merchant unchanged."""

    status: int
    body: bytes
    content_type: str
    replayed: bool


class ChargeApi(Protocol):
    """The non-CDE API's charge endpoint (HTTPS with the ingress identity).

    Passes the merchant's `Authorization` and `Idempotency-Key` through; raises
    `UpstreamUnavailable` when the API cannot be reached (the outcome is then unknown).
    """

    async def create_charge(
        self, authorization: str, idempotency_key: str | None, body: Mapping[str, Any]
    ) -> ApiAnswer: ...

    async def close(self) -> None: ...


__all__ = [
    "ApiAnswer",
    "AuditRecorder",
    "AuditTrail",
    "CardVault",
    "ChargeApi",
    "CvcStore",
    "KeyProvider",
    "MerchantDirectory",
    "RateLimiter",
    "VaultStore",
]
