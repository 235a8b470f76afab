"""cde.vault (CDE): data keys for sealing and opening, with bounded reuse and bounded caching.

Encryption: each (merchant, purpose) has one current plaintext data key per process, used for
at most `ReusePolicy.max_uses` seals and `max_age_s` seconds; then a fresh key is generated,
wrapped by the primary KEK (through the aws-encryption-sdk) and stored before its first use.
Decryption: unwrapped keys are cached by id for at most `decrypt_max_age_s`, LRU-bounded. A
record whose key is destroyed is refused before any cache is consulted, so crypto-shredding
takes effect at once even in a process that still holds the key (PCI DSS 3.6.1, 3.7.x).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from audit.domain import Actor, EventType, Outcome
from cde.vault.domain import (
    DataKey,
    Kek,
    KekState,
    KeyPurpose,
    KeyUnavailable,
    ReusePolicy,
    TokenDestroyed,
)
from cde.vault.domain.crypto import DATA_KEY_BYTES
from cde.vault.domain.ids import new_data_key_id
from cde.vault.ports import AuditTrail, KeyProvider, VaultStore

Clock = Callable[[], datetime]


@dataclass(slots=True)
class _Current:
    key_id: str
    key: bytes
    born: float
    uses: int = 0


@dataclass(frozen=True, slots=True)
class SealingKey:
    key_id: str
    key: bytes


class Keyring:
    """Hands out data keys; the only place the vault unwraps or generates them."""

    def __init__(
        self,
        *,
        store: VaultStore,
        provider: KeyProvider,
        audit: AuditTrail,
        policy: ReusePolicy,
        clock: Clock,
        actor: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._provider = provider
        self._audit = audit
        self.policy = policy
        self._clock = clock
        self._actor = actor
        self._monotonic = monotonic
        self._current: dict[tuple[str, KeyPurpose], _Current] = {}
        self._opened: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._fingerprint: dict[str, tuple[str, bytes, float]] = {}
        self._locks: dict[tuple[str, KeyPurpose], asyncio.Lock] = {}

    # ------------------------------------------------------------ encryption

    async def sealing_key(self, merchant_id: str, purpose: KeyPurpose) -> SealingKey:
        """The data key to seal one more item with (counts the use)."""
        slot = (merchant_id, purpose)
        current = self._current.get(slot)
        if current is None or self.policy.exhausted(self._monotonic() - current.born, current.uses):
            lock = self._locks.setdefault(slot, asyncio.Lock())
            async with lock:
                current = self._current.get(slot)
                if current is None or self.policy.exhausted(
                    self._monotonic() - current.born, current.uses
                ):
                    key = await self._generate(merchant_id, purpose)
                    current = _Current(key.key_id, key.key, self._monotonic())
                    self._current[slot] = current
        current.uses += 1
        return SealingKey(current.key_id, current.key)

    async def fingerprint_key(self, merchant_id: str) -> bytes:
        """The merchant's fingerprint (HMAC) key: one per merchant, for good."""
        cached = self._fingerprint.get(merchant_id)
        now = self._monotonic()
        if cached is not None and now - cached[2] < self.policy.decrypt_max_age_s:
            return cached[1]
        slot = (merchant_id, KeyPurpose.FINGERPRINT)
        lock = self._locks.setdefault(slot, asyncio.Lock())
        async with lock:
            stored = await self._store.fingerprint_key(merchant_id)
            if stored is None:
                fresh = await self._generate(merchant_id, KeyPurpose.FINGERPRINT)
                key_id, key = fresh.key_id, fresh.key
            else:
                key_id, key = stored.key_id, await self._unwrap(stored)
            self._fingerprint[merchant_id] = (key_id, key, self._monotonic())
            return key

    async def _primary_kek(self) -> Kek:
        for kek in await self._store.keks():
            if kek.state is KekState.PRIMARY:
                return kek
        raise KeyUnavailable("No primary key-encryption key is registered.")

    async def _generate(self, merchant_id: str, purpose: KeyPurpose) -> SealingKey:
        kek = await self._primary_kek()
        plaintext = os.urandom(DATA_KEY_BYTES)
        key_id = new_data_key_id()
        draft = DataKey(
            key_id=key_id,
            merchant_id=merchant_id,
            purpose=purpose,
            kek_id=kek.kek_id,
            wrapped=b"",
            created_at=self._clock(),
        )
        wrapped = await asyncio.to_thread(
            self._provider.wrap, kek.kek_id, plaintext, draft.wrapping_context()
        )
        stored = await self._store.add_data_key(
            DataKey(
                key_id=key_id,
                merchant_id=merchant_id,
                purpose=purpose,
                kek_id=kek.kek_id,
                wrapped=wrapped,
                created_at=draft.created_at,
            )
        )
        if stored.key_id != key_id:
            # Lost a race for the merchant's single fingerprint key: use the winner's.
            return SealingKey(stored.key_id, await self._unwrap(stored))
        self._audit.record(
            EventType.KEY_CREATE,
            actor=Actor(self._actor),
            outcome=Outcome.SUCCESS,
            target=key_id,
            resource="vault.data_key",
            details={"purpose": str(purpose), "merchant_id": merchant_id, "kek_id": kek.kek_id},
        )
        return SealingKey(key_id, plaintext)

    # ------------------------------------------------------------ decryption

    async def opening_key(self, key_id: str) -> bytes:
        """The plaintext of data key `key_id` (cached for a bounded time)."""
        cached = self._opened.get(key_id)
        now = self._monotonic()
        if cached is not None and now - cached[1] < self.policy.decrypt_max_age_s:
            self._opened.move_to_end(key_id)
            return cached[0]
        stored = await self._store.get_data_key(key_id)
        if stored is None or stored.destroyed:
            self._opened.pop(key_id, None)
            raise TokenDestroyed("The card's keys were destroyed; it cannot be read.")
        key = await self._unwrap(stored)
        self._opened[key_id] = (key, self._monotonic())
        self._opened.move_to_end(key_id)
        while len(self._opened) > self.policy.decrypt_capacity:
            self._opened.popitem(last=False)
        return key

    async def _unwrap(self, stored: DataKey) -> bytes:
        if stored.wrapped is None or stored.destroyed:
            raise TokenDestroyed("The card's keys were destroyed; it cannot be read.")
        return await asyncio.to_thread(
            self._provider.unwrap, stored.kek_id, stored.wrapped, stored.wrapping_context()
        )

    async def unwrap(self, stored: DataKey) -> bytes:
        """Unwrap a data key read by the caller (rotation), without caching it."""
        return await self._unwrap(stored)

    # ------------------------------------------------------------ forgetting

    def forget_merchant(self, merchant_id: str) -> None:
        """Drop every cached key of the merchant (after crypto-shredding)."""
        for slot in [s for s in self._current if s[0] == merchant_id]:
            del self._current[slot]
        self._fingerprint.pop(merchant_id, None)
        self._opened.clear()

    def forget_all(self) -> None:
        """Drop every cached plaintext key (after a KEK rotation or on shutdown)."""
        self._current.clear()
        self._fingerprint.clear()
        self._opened.clear()
