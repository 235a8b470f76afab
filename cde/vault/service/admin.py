"""cde.vault (CDE): operator use cases: KEK rotation, re-wrap, retirement, re-keying, retention
purge, per-merchant crypto-shredding and the attestation register. All audited.

Rotation is online and resumable: a new primary KEK wraps every new data key at once, then
`rewrap` re-wraps the existing data keys in batches, each row changed only if it is still as it
was read (so two runs, or a crash and a re-run, never lose or double an update). Reads keep
working throughout because the old KEK stays usable until `retire_kek`, which refuses while any
data key still depends on it (PCI DSS 3.6.4 cryptoperiods, 3.6.5 retirement, 3.7.x).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from audit.domain import Actor, EventType, Outcome
from cde.vault.domain import (
    Attestation,
    Kek,
    KekState,
    KeyPurpose,
    KeyStateError,
    RecordIntegrityError,
    TokenDestroyed,
)
from cde.vault.domain.crypto import open_record, seal_record
from cde.vault.domain.ids import check_merchant_id
from cde.vault.ports import AuditTrail, CvcStore, KeyProvider, VaultStore
from cde.vault.service.keyring import Keyring

Clock = Callable[[], datetime]
Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@dataclass
class RewrapReport:
    target_kek: str
    rewrapped: int = 0
    skipped: int = 0
    remaining: int = 0
    batches: int = 0


@dataclass
class RekeyReport:
    records: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass
class PurgeReport:
    records: int = 0
    data_keys: int = 0


@dataclass
class ShredReport:
    merchant_id: str
    keys_destroyed: int = 0
    records_deleted: int = 0


class VaultAdmin:
    """What a CDE operator does through `python -m cde.vault.app admin …`."""

    def __init__(
        self,
        *,
        store: VaultStore,
        provider: KeyProvider,
        keyring: Keyring,
        cvc_store: CvcStore,
        audit: AuditTrail,
        clock: Clock,
        actor: Actor,
    ) -> None:
        self.store = store
        self.provider = provider
        self.keyring = keyring
        self.cvc_store = cvc_store
        self.audit = audit
        self.clock = clock
        self.actor = actor

    def _record(
        self,
        event: EventType,
        *,
        target: str | None,
        outcome: Outcome = Outcome.SUCCESS,
        details: dict[str, Any] | None = None,
        reason: str | None = None,
        resource: str = "vault.keys",
    ) -> None:
        self.audit.record(
            event,
            actor=self.actor,
            outcome=outcome,
            target=target,
            resource=resource,
            details=details or {},
            reason=reason,
        )

    # ------------------------------------------------------------ KEK registry

    async def ensure_primary_kek(self) -> Kek:
        """Register the provider's configured KEK as primary if the vault has none (first start)."""
        keks = await self.store.keks()
        for kek in keks:
            if kek.state is KekState.PRIMARY:
                return kek
        kek_id = self.provider.default_kek_id()
        known = {k.kek_id: k for k in keks}
        if kek_id in known and known[kek_id].state is KekState.RETIRED:
            raise KeyStateError("The configured KEK is retired; configure the current one.")
        kek = Kek(kek_id, self.provider.name, KekState.PRIMARY, self.clock())
        await self.store.put_kek(kek)
        self._record(
            EventType.KEY_CREATE, target=kek_id, details={"kind": "kek", "state": "primary"}
        )
        return kek

    async def rotate_kek(self, new_kek_id: str | None = None) -> Kek:
        """Make a new KEK primary (created by the provider unless one is named)."""
        current = await self.ensure_primary_kek()
        if new_kek_id is None:
            kek_id = await asyncio.to_thread(self.provider.create_kek)
        else:
            kek_id = new_kek_id
        if kek_id == current.kek_id:
            raise KeyStateError("The new KEK must differ from the current primary.")
        if not await asyncio.to_thread(self.provider.check, kek_id):
            raise KeyStateError("The new KEK cannot be used by the key provider.")
        known = {k.kek_id: k for k in await self.store.keks()}
        if kek_id in known and known[kek_id].state is KekState.RETIRED:
            raise KeyStateError("A retired KEK cannot become primary again.")
        now = self.clock()
        if kek_id not in known:
            await self.store.put_kek(Kek(kek_id, self.provider.name, KekState.ACTIVE, now))
        await self.store.set_primary_kek(kek_id, now)
        self.keyring.forget_all()
        self._record(
            EventType.KEY_ROTATE,
            target=kek_id,
            details={"kind": "kek", "previous": current.kek_id},
        )
        return Kek(kek_id, self.provider.name, KekState.PRIMARY, now)

    async def rewrap(
        self, *, batch_size: int = 500, max_batches: int | None = None, progress: Progress = _quiet
    ) -> RewrapReport:
        """Re-wrap every data key not yet under the primary KEK, batch by batch (resumable)."""
        primary = await self.ensure_primary_kek()
        report = RewrapReport(target_kek=primary.kek_id)
        self._record(EventType.KEY_ROTATE, target=primary.kek_id, details={"step": "rewrap_start"})
        while max_batches is None or report.batches < max_batches:
            batch = await self.store.data_keys_wrapped_by_other(primary.kek_id, batch_size)
            if not batch:
                break
            for key in batch:
                if key.wrapped is None:
                    continue
                plaintext = await self.keyring.unwrap(key)
                wrapped = await asyncio.to_thread(
                    self.provider.wrap, primary.kek_id, plaintext, key.wrapping_context()
                )
                changed = await self.store.rewrap_data_key(
                    key.key_id, key.kek_id, primary.kek_id, wrapped
                )
                if changed:
                    report.rewrapped += 1
                else:
                    report.skipped += 1
            report.batches += 1
            progress(f"re-wrapped {report.rewrapped} data keys ({report.batches} batches)")
        counts = await self.store.count_data_keys_by_kek()
        report.remaining = sum(n for kek, n in counts.items() if kek != primary.kek_id)
        self._record(
            EventType.KEY_ROTATE,
            target=primary.kek_id,
            details={
                "step": "rewrap_done" if report.remaining == 0 else "rewrap_paused",
                "rewrapped": report.rewrapped,
                "remaining": report.remaining,
            },
        )
        return report

    async def retire_kek(self, kek_id: str) -> Kek:
        """Retire a KEK no data key depends on; its material is erased/disabled in the provider."""
        known = {k.kek_id: k for k in await self.store.keks()}
        kek = known.get(kek_id)
        if kek is None:
            raise KeyStateError("No such KEK is registered.")
        if kek.state is KekState.PRIMARY:
            self._record(
                EventType.KEY_RETIRE, target=kek_id, outcome=Outcome.FAILURE, reason="primary"
            )
            raise KeyStateError("The primary KEK cannot be retired; rotate first.")
        users = (await self.store.count_data_keys_by_kek()).get(kek_id, 0)
        if users:
            self._record(
                EventType.KEY_RETIRE,
                target=kek_id,
                outcome=Outcome.FAILURE,
                reason="still_in_use",
                details={"data_keys": users},
            )
            raise KeyStateError(f"{users} data keys still depend on this KEK; run rewrap first.")
        await asyncio.to_thread(self.provider.retire_kek, kek_id)
        retired = Kek(kek.kek_id, kek.provider, KekState.RETIRED, kek.created_at, self.clock())
        await self.store.put_kek(retired)
        self.keyring.forget_all()
        self._record(EventType.KEY_RETIRE, target=kek_id, details={"kind": "kek"})
        return retired

    # ------------------------------------------------------------ data keys and records

    async def rekey_records(
        self,
        *,
        older_than: timedelta,
        batch_size: int = 500,
        max_batches: int | None = None,
        progress: Progress = _quiet,
    ) -> RekeyReport:
        """Re-seal records whose data key is older than `older_than` under fresh data keys.

        Online and resumable like `rewrap`; the old data keys, once unused, go at the next purge.
        """
        cutoff = self.clock() - older_than
        report = RekeyReport()
        self.keyring.forget_all()  # seal with data keys made after the cutoff
        batches = 0
        self._record(EventType.KEY_ROTATE, target=None, details={"step": "rekey_start"})
        while max_batches is None or batches < max_batches:
            batch = await self.store.records_keyed_before(cutoff, batch_size)
            batch = [r for r in batch if r.token not in report.failed]
            if not batch:
                break
            for record in batch:
                try:
                    old = await self.keyring.opening_key(record.data_key_id)
                    plaintext = open_record(
                        old, record.token, record.merchant_id, record.ciphertext
                    )
                except (RecordIntegrityError, TokenDestroyed):
                    report.failed.append(record.token)
                    continue
                fresh = await self.keyring.sealing_key(record.merchant_id, KeyPurpose.RECORD)
                if fresh.key_id == record.data_key_id:
                    report.failed.append(record.token)
                    continue
                sealed = seal_record(fresh.key, record.token, record.merchant_id, plaintext)
                if await self.store.replace_record_key(
                    record.token, record.data_key_id, fresh.key_id, sealed
                ):
                    report.records += 1
            batches += 1
            progress(f"re-keyed {report.records} records ({batches} batches)")
        self._record(
            EventType.KEY_ROTATE,
            target=None,
            details={"step": "rekey_done", "records": report.records, "failed": len(report.failed)},
        )
        return report

    async def purge(
        self, *, retention: timedelta, key_max_age: timedelta, cvc_ttl: timedelta
    ) -> PurgeReport:
        """Delete records unused for `retention`, then data keys no record needs any more.

        A record data key is deleted only once it is older than its reuse window plus a margin,
        so no running process can still be sealing with it; CVC keys once every CVC sealed
        with them has expired. Fingerprint keys stay until the merchant is shredded (a new key
        would change every fingerprint of the merchant). PCI DSS 3.2.1.
        """
        now = self.clock()
        report = PurgeReport()
        while True:
            tokens = await self.store.purge_records(now - retention, 1000)
            for token in tokens:
                await self.cvc_store.delete(token)
            report.records += len(tokens)
            if len(tokens) < 1000:
                break
        margin = timedelta(hours=1)
        report.data_keys += await self.store.purge_data_keys(
            now - key_max_age - margin, [KeyPurpose.RECORD]
        )
        report.data_keys += await self.store.purge_data_keys(
            now - key_max_age - cvc_ttl - margin, [KeyPurpose.CVC]
        )
        self._record(
            EventType.SYSTEM_OBJECT_DELETE,
            target=None,
            resource="vault.retention",
            details={
                "records": report.records,
                "data_keys": report.data_keys,
                "retention_days": retention.days,
            },
        )
        return report

    async def shred_merchant(self, merchant_id: str, *, batch_size: int = 1000) -> ShredReport:
        """Crypto-shred a merchant: destroy all its keys (records become unreadable at once),
        remove its attestation, then delete its now-unreadable records."""
        merchant = check_merchant_id(merchant_id)
        report = ShredReport(merchant_id=merchant)
        # Audit first: if the record cannot be written, nothing is destroyed.
        self._record(
            EventType.KEY_DESTROY,
            target=merchant,
            resource="vault.merchant",
            details={"step": "start"},
        )
        await self.store.delete_attestation(merchant)
        destroyed = await self.store.destroy_merchant_keys(merchant, self.clock())
        self.keyring.forget_merchant(merchant)
        report.keys_destroyed = len(destroyed)
        while True:
            deleted = await self.store.delete_merchant_records(merchant, batch_size)
            report.records_deleted += deleted
            if deleted < batch_size:
                break
        self._record(
            EventType.KEY_DESTROY,
            target=merchant,
            resource="vault.merchant",
            details={
                "step": "done",
                "keys_destroyed": report.keys_destroyed,
                "records_deleted": report.records_deleted,
            },
        )
        return report

    # ------------------------------------------------------------ attestation register

    async def attest(self, merchant_id: str, expires_on: date, note: str = "") -> Attestation:
        """Record (or renew) the merchant's PCI attestation in the CDE register."""
        merchant = check_merchant_id(merchant_id)
        entry = Attestation(merchant, expires_on, self.clock(), self.actor.id)
        self._record(
            EventType.RAW_CARD_API_ENABLE,
            target=merchant,
            resource="vault.attestation",
            details={"expires_on": expires_on.isoformat(), "note": note[:200]},
        )
        await self.store.put_attestation(entry)
        return entry

    async def revoke_attestation(self, merchant_id: str) -> bool:
        merchant = check_merchant_id(merchant_id)
        self._record(EventType.RAW_CARD_API_DISABLE, target=merchant, resource="vault.attestation")
        return await self.store.delete_attestation(merchant)

    async def attestations(self) -> list[Attestation]:
        return await self.store.attestations()

    async def status(self) -> dict[str, Any]:
        """Counts and the KEK registry (no key material)."""
        keks = await self.store.keks()
        return {
            "keks": [
                {"kek_id": k.kek_id, "provider": k.provider, "state": str(k.state)} for k in keks
            ],
            "data_keys_by_kek": await self.store.count_data_keys_by_kek(),
            **await self.store.counts(),
        }
