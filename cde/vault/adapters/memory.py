"""cde.vault (CDE): in-process adapters: the CVC TTL store, the rate limiter and a vault store.

The CVC store is the development default: entries are sealed bytes that vanish after their TTL
or their first `take`; it serves ONE process, so the vault runs one worker with it (Redis is
the shared, production choice). The vault store keeps everything in dicts (tests, benches).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from cde.vault.domain import (
    Attestation,
    CardRecord,
    DataKey,
    Kek,
    KekState,
    KeyPurpose,
    StoredRecord,
)

Monotonic = Callable[[], float]


class MemoryCvcStore:
    """Sealed CVCs in a dict with expiry times (one process only)."""

    shared = False

    def __init__(self, monotonic: Monotonic = time.monotonic) -> None:
        self._entries: dict[str, tuple[bytes, float]] = {}
        # Expiry times in a heap: a sweep touches only what has expired, not every CVC held
        # (it runs on the event loop; a full scan grew with the number held).
        self._expiries: list[tuple[float, str]] = []
        self._monotonic = monotonic

    def _sweep(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            until, token = heapq.heappop(self._expiries)
            entry = self._entries.get(token)
            if entry is not None and entry[1] == until:
                del self._entries[token]

    async def put(self, token: str, sealed: bytes, ttl_s: int) -> None:
        now = self._monotonic()
        self._sweep(now)
        until = now + ttl_s
        self._entries[token] = (sealed, until)
        heapq.heappush(self._expiries, (until, token))

    async def take(self, token: str) -> bytes | None:
        entry = self._entries.pop(token, None)
        if entry is None or entry[1] <= self._monotonic():
            return None
        return entry[0]

    async def delete(self, token: str) -> None:
        self._entries.pop(token, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()
        self._expiries.clear()

    def __len__(self) -> int:
        now = self._monotonic()
        return sum(until > now for _, until in self._entries.values())


class MemoryRateLimiter:
    """Token buckets per key: `rate` per second, bursts up to `burst` (one process)."""

    def __init__(self, rate: float, burst: int, monotonic: Monotonic = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, key: str) -> float:
        now = self._monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    async def close(self) -> None:
        self._buckets.clear()


class MemoryVaultStore:
    """The vault store in dicts: the contract's behaviour without durability."""

    def __init__(self) -> None:
        self.records: dict[str, CardRecord] = {}
        self.data_keys: dict[str, DataKey] = {}
        self._keks: dict[str, Kek] = {}
        self._attestations: dict[str, Attestation] = {}

    async def add_record(self, record: CardRecord) -> None:
        if record.token in self.records:
            raise ValueError("duplicate token")
        if record.data_key_id not in self.data_keys:
            raise ValueError("unknown data key")
        self.records[record.token] = record

    async def get_record(self, token: str) -> StoredRecord | None:
        record = self.records.get(token)
        if record is None:
            return None
        key = self.data_keys.get(record.data_key_id)
        return StoredRecord(record, key is None or key.destroyed)

    async def touch_record(self, token: str, at: datetime) -> None:
        record = self.records.get(token)
        if record is not None:
            self.records[token] = replace(record, last_used_at=at)

    async def delete_record(self, token: str) -> bool:
        return self.records.pop(token, None) is not None

    async def add_data_key(self, key: DataKey) -> DataKey:
        if key.key_id in self.data_keys:
            raise ValueError("duplicate data key")
        if key.purpose is KeyPurpose.FINGERPRINT:
            existing = await self.fingerprint_key(key.merchant_id)
            if existing is not None:
                return existing
        self.data_keys[key.key_id] = key
        return key

    async def get_data_key(self, key_id: str) -> DataKey | None:
        return self.data_keys.get(key_id)

    async def fingerprint_key(self, merchant_id: str) -> DataKey | None:
        for key in self.data_keys.values():
            if (
                key.merchant_id == merchant_id
                and key.purpose is KeyPurpose.FINGERPRINT
                and not key.destroyed
            ):
                return key
        return None

    async def keks(self) -> list[Kek]:
        return sorted(self._keks.values(), key=lambda k: (k.created_at, k.kek_id))

    async def put_kek(self, kek: Kek) -> None:
        self._keks[kek.kek_id] = kek

    async def set_primary_kek(self, kek_id: str, at: datetime) -> None:
        if kek_id not in self._keks:
            raise ValueError("unknown KEK")
        for other in list(self._keks.values()):
            if other.state is KekState.PRIMARY and other.kek_id != kek_id:
                self._keks[other.kek_id] = replace(other, state=KekState.ACTIVE)
        self._keks[kek_id] = replace(self._keks[kek_id], state=KekState.PRIMARY)

    async def data_keys_wrapped_by_other(self, kek_id: str, limit: int) -> list[DataKey]:
        found = [k for k in self.data_keys.values() if not k.destroyed and k.kek_id != kek_id]
        return sorted(found, key=lambda k: k.key_id)[:limit]

    async def rewrap_data_key(
        self, key_id: str, expected_kek_id: str, new_kek_id: str, wrapped: bytes
    ) -> bool:
        key = self.data_keys.get(key_id)
        if key is None or key.destroyed or key.kek_id != expected_kek_id:
            return False
        self.data_keys[key_id] = replace(key, kek_id=new_kek_id, wrapped=wrapped)
        return True

    async def count_data_keys_by_kek(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key in self.data_keys.values():
            if not key.destroyed:
                counts[key.kek_id] = counts.get(key.kek_id, 0) + 1
        return counts

    async def records_keyed_before(self, cutoff: datetime, limit: int) -> list[CardRecord]:
        old = {
            k.key_id
            for k in self.data_keys.values()
            if k.created_at < cutoff and not k.destroyed and k.purpose is KeyPurpose.RECORD
        }
        found = [r for r in self.records.values() if r.data_key_id in old]
        return sorted(found, key=lambda r: r.token)[:limit]

    async def replace_record_key(
        self, token: str, expected_key_id: str, new_key_id: str, ciphertext: bytes
    ) -> bool:
        record = self.records.get(token)
        if record is None or record.data_key_id != expected_key_id:
            return False
        self.records[token] = replace(record, data_key_id=new_key_id, ciphertext=ciphertext)
        return True

    async def purge_records(self, unused_since: datetime, limit: int) -> list[str]:
        old = [
            t for t, r in self.records.items() if (r.last_used_at or r.created_at) < unused_since
        ][:limit]
        for token in old:
            del self.records[token]
        return old

    async def purge_data_keys(
        self, created_before: datetime, purposes: Sequence[KeyPurpose]
    ) -> int:
        used = {r.data_key_id for r in self.records.values()}
        doomed = [
            k.key_id
            for k in self.data_keys.values()
            if k.purpose in purposes and k.created_at < created_before and k.key_id not in used
        ]
        for key_id in doomed:
            del self.data_keys[key_id]
        return len(doomed)

    async def destroy_merchant_keys(self, merchant_id: str, at: datetime) -> list[str]:
        ids = []
        for key in list(self.data_keys.values()):
            if key.merchant_id == merchant_id and not key.destroyed:
                self.data_keys[key.key_id] = replace(key, wrapped=None, destroyed_at=at)
                ids.append(key.key_id)
        return ids

    async def delete_merchant_records(self, merchant_id: str, limit: int) -> int:
        doomed = [t for t, r in self.records.items() if r.merchant_id == merchant_id][:limit]
        for token in doomed:
            del self.records[token]
        return len(doomed)

    async def get_attestation(self, merchant_id: str) -> Attestation | None:
        return self._attestations.get(merchant_id)

    async def put_attestation(self, attestation: Attestation) -> None:
        self._attestations[attestation.merchant_id] = attestation

    async def delete_attestation(self, merchant_id: str) -> bool:
        return self._attestations.pop(merchant_id, None) is not None

    async def attestations(self) -> list[Attestation]:
        return sorted(self._attestations.values(), key=lambda a: a.merchant_id)

    async def counts(self) -> dict[str, int]:
        return {
            "records": len(self.records),
            "data_keys": sum(not k.destroyed for k in self.data_keys.values()),
            "destroyed_keys": sum(k.destroyed for k in self.data_keys.values()),
            "attestations": len(self._attestations),
        }

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
