"""cde.vault (CDE): the vault's use cases: tokenize, read metadata, delete, detokenize.

Every use case is audited in the CDE log, successes and refusals alike, and fails closed: when
the audit record cannot be written the operation does not happen (or is undone before the
caller hears of it). PCI DSS 3.3.1 (CVC deleted on first use), 3.5.1 (PAN sealed per record),
7.2.5 (only the gateway detokenizes, only for the token's own merchant), 10.2.1.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from audit.domain import Actor, ActorType, EventType, Outcome
from cde.vault.domain import (
    Attestation,
    CardDisplay,
    Detokenized,
    InvalidCard,
    KeyPurpose,
    NotPermitted,
    RateLimited,
    RawCardDataNotPermitted,
    RecordIntegrityError,
    StoredRecord,
    TokenDestroyed,
    Tokenized,
    TokenNotFound,
    validate_card,
)
from cde.vault.domain.crypto import fingerprint, open_cvc, open_record, seal_cvc, seal_record
from cde.vault.domain.ids import check_merchant_id, check_token, new_token
from cde.vault.domain.merchants import register_refusal
from cde.vault.domain.records import CardRecord, decode_payload, display_of, encode_payload
from cde.vault.ports import AuditTrail, CvcStore, RateLimiter, VaultStore
from cde.vault.service.keyring import Keyring
from fincore.sensitive import Cvc

Clock = Callable[[], datetime]
MAX_CVC_TTL_S = 15 * 60
TOUCH_EVERY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: a service identity (or an operator) and the request's correlation data."""

    name: str
    kind: str = ActorType.SERVICE
    request_id: str | None = None
    origin_ip: str | None = None

    def actor(self, merchant_id: str | None = None) -> Actor:
        return Actor(id=self.name, type=self.kind, on_behalf_of=merchant_id)


class VaultService:
    """Tokenize, read, delete and detokenize cards for one merchant at a time."""

    def __init__(
        self,
        *,
        store: VaultStore,
        keyring: Keyring,
        cvc_store: CvcStore,
        rate_limiter: RateLimiter,
        audit: AuditTrail,
        clock: Clock,
        cvc_ttl_s: int = MAX_CVC_TTL_S,
        detokenize_callers: Iterable[str] = ("gateway",),
        attestation_cache_s: float = 1.0,
    ) -> None:
        if not 1 <= cvc_ttl_s <= MAX_CVC_TTL_S:
            raise ValueError("the CVC TTL is between 1 second and 15 minutes")
        self.store = store
        self.keyring = keyring
        self.cvc_store = cvc_store
        self.rate_limiter = rate_limiter
        self.audit = audit
        self.clock = clock
        self.cvc_ttl_s = cvc_ttl_s
        self.detokenize_callers = frozenset(detokenize_callers)
        self._attestation_cache_s = attestation_cache_s
        self._attestations: dict[str, tuple[Attestation | None, float]] = {}

    # ------------------------------------------------------------ helpers

    async def _audit(
        self,
        event: EventType,
        caller: Caller,
        outcome: Outcome,
        *,
        merchant_id: str | None,
        target: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        body = {"merchant_id": merchant_id} if merchant_id else {}
        if details:
            body.update(details)
        await self.audit.arecord(
            event,
            actor=caller.actor(merchant_id),
            outcome=outcome,
            target=target,
            resource="vault.card",
            details=body,
            request_id=caller.request_id,
            origin_ip=caller.origin_ip,
            reason=reason,
        )

    async def _refuse(
        self,
        event: EventType,
        caller: Caller,
        error: Exception,
        *,
        merchant_id: str | None,
        target: str | None = None,
    ) -> Exception:
        """Audit a refusal and return the error to raise (AuditUnavailable wins if it fails)."""
        reason = getattr(error, "code", type(error).__name__)
        await self._audit(
            event, caller, Outcome.FAILURE, merchant_id=merchant_id, target=target, reason=reason
        )
        return error

    async def attestation(self, merchant_id: str) -> Attestation | None:
        """The CDE register's entry for the merchant (cached for about a second)."""
        now = time.monotonic()
        cached = self._attestations.get(merchant_id)
        if cached is not None and now - cached[1] < self._attestation_cache_s:
            return cached[0]
        entry = await self.store.get_attestation(merchant_id)
        self._attestations[merchant_id] = (entry, now)
        if len(self._attestations) > 10_000:
            self._attestations.clear()
        return entry

    def forget_attestation(self, merchant_id: str) -> None:
        self._attestations.pop(merchant_id, None)

    async def _load(
        self, token: object, merchant_id: object, caller: Caller, event: EventType
    ) -> StoredRecord:
        token_id = check_token(token)
        merchant = check_merchant_id(merchant_id)
        stored = await self.store.get_record(token_id)
        if stored is None:
            raise await self._refuse(
                event,
                caller,
                TokenNotFound("No such token."),
                merchant_id=merchant,
                target=token_id,
            )
        if stored.record.merchant_id != merchant:
            raise await self._refuse(
                event,
                caller,
                NotPermitted("This token belongs to another merchant.", code="token_not_owned"),
                merchant_id=merchant,
                target=token_id,
            )
        if stored.key_destroyed:
            raise await self._refuse(
                event,
                caller,
                TokenDestroyed("The card's keys were destroyed; it cannot be read."),
                merchant_id=merchant,
                target=token_id,
            )
        return stored

    async def _open(self, stored: StoredRecord, caller: Caller, event: EventType) -> Any:
        record = stored.record
        try:
            key = await self.keyring.opening_key(record.data_key_id)
            return decode_payload(
                open_record(key, record.token, record.merchant_id, record.ciphertext)
            )
        except (RecordIntegrityError, TokenDestroyed) as exc:
            raise await self._refuse(
                event, caller, exc, merchant_id=record.merchant_id, target=record.token
            ) from exc

    # ------------------------------------------------------------ use cases

    async def tokenize(
        self, *, merchant_id: object, card: Mapping[str, Any], caller: Caller
    ) -> Tokenized:
        """Validate, seal and store a card; hold its CVC (sealed, TTL) if one was given.

        Raises `InvalidRequest`/`InvalidCard` (bad input), `RateLimited`,
        `RawCardDataNotPermitted` (no unexpired attestation in the CDE register) and
        `AuditUnavailable` (nothing is kept then).
        """
        merchant = check_merchant_id(merchant_id)
        event = EventType.TOKENIZE
        retry_after = await self.rate_limiter.acquire(merchant)
        if retry_after > 0:
            raise await self._refuse(
                event,
                caller,
                RateLimited("Too many cards tokenized; slow down.", retry_after_s=retry_after),
                merchant_id=merchant,
            )
        now = self.clock()
        refusal = register_refusal(await self.attestation(merchant), now.date())
        if refusal is not None:
            raise await self._refuse(
                event,
                caller,
                RawCardDataNotPermitted(
                    "This merchant may not send raw card data.", code="raw_card_data_not_permitted"
                ),
                merchant_id=merchant,
            )
        try:
            valid = validate_card(
                number=card.get("number"),
                exp_month=card.get("exp_month"),
                exp_year=card.get("exp_year"),
                cvc=card.get("cvc"),
                name=card.get("name"),
                today=now.date(),
            )
        except InvalidCard as exc:
            raise await self._refuse(event, caller, exc, merchant_id=merchant) from exc
        token = new_token()
        fp = fingerprint(await self.keyring.fingerprint_key(merchant), valid.pan)
        sealing = await self.keyring.sealing_key(merchant, KeyPurpose.RECORD)
        record = CardRecord(
            token=token,
            merchant_id=merchant,
            data_key_id=sealing.key_id,
            ciphertext=seal_record(sealing.key, token, merchant, encode_payload(valid)),
            fingerprint=fp,
            created_at=now,
        )
        cvc_sealed = None
        if valid.cvc is not None:
            cvc_key = await self.keyring.sealing_key(merchant, KeyPurpose.CVC)
            cvc_sealed = (
                cvc_key.key_id.encode("ascii")
                + b"."
                + seal_cvc(cvc_key.key, token, merchant, valid.cvc.reveal().encode("ascii"))
            )
        # Shielded: once the record is being written, a cancelled request (client gone) must
        # still end with the record audited, or undone; never a silent, unaudited token.
        await asyncio.shield(self._keep(record, cvc_sealed, caller, str(valid.brand)))
        return Tokenized(token=token, card=display_of(valid, fp))

    async def _keep(
        self, record: CardRecord, cvc_sealed: bytes | None, caller: Caller, brand: str
    ) -> None:
        await self.store.add_record(record)
        try:
            if cvc_sealed is not None:
                # PCI DSS 3.3.2: the CVC is kept only sealed, under its own key, for minutes.
                await self.cvc_store.put(record.token, cvc_sealed, self.cvc_ttl_s)
            await self._audit(
                EventType.TOKENIZE,
                caller,
                Outcome.SUCCESS,
                merchant_id=record.merchant_id,
                target=record.token,
                details={"brand": brand, "cvc_held": cvc_sealed is not None},
            )
        except BaseException:
            # Fail closed: without its audit record (or its CVC) the token must not exist.
            await self._undo(record.token)
            raise

    async def _open_cvc(self, record: CardRecord, sealed: bytes) -> Cvc | None:
        key_id, _, blob = sealed.partition(b".")
        try:
            cvc_key = await self.keyring.opening_key(key_id.decode("ascii"))
            return Cvc(open_cvc(cvc_key, record.token, record.merchant_id, blob).decode("ascii"))
        except (RecordIntegrityError, TokenDestroyed, UnicodeDecodeError):
            return None

    async def _undo(self, token: str) -> None:
        await self.cvc_store.delete(token)
        await self.store.delete_record(token)

    async def metadata(self, *, token: object, merchant_id: object, caller: Caller) -> CardDisplay:
        """Brand, BIN, last four, expiry and fingerprint of the merchant's token."""
        stored = await self._load(token, merchant_id, caller, EventType.CARD_READ)
        card = await self._open(stored, caller, EventType.CARD_READ)
        return display_of(card, stored.record.fingerprint)

    async def delete(self, *, token: object, merchant_id: object, caller: Caller) -> None:
        """Delete the merchant's token, its record and any CVC still held."""
        stored = await self._load(token, merchant_id, caller, EventType.TOKEN_DELETE)
        record = stored.record
        # Audit first: if the record cannot be written, nothing is deleted (fail closed).
        await self._audit(
            EventType.TOKEN_DELETE,
            caller,
            Outcome.SUCCESS,
            merchant_id=record.merchant_id,
            target=record.token,
        )
        await self.cvc_store.delete(record.token)
        await self.store.delete_record(record.token)

    async def detokenize(
        self, *, token: object, merchant_id: object, caller: Caller
    ) -> Detokenized:
        """The card and the CVC (if still held, deleted by this read) for the gateway only."""
        event = EventType.DETOKENIZE
        if caller.name not in self.detokenize_callers:
            raise await self._refuse(
                EventType.DETOKENIZE_DENIED,
                caller,
                NotPermitted("This caller may not detokenize.", code="service_not_allowed"),
                merchant_id=merchant_id if isinstance(merchant_id, str) else None,
                target=token if isinstance(token, str) else None,
            )
        stored = await self._load(token, merchant_id, caller, EventType.DETOKENIZE_DENIED)
        record = stored.record
        card = await self._open(stored, caller, event)
        # PCI DSS 3.3.1: the CVC is deleted by its first (and only) read, before the audit
        # record is written: if that write fails the card is not returned, and the CVC is
        # gone either way (failing towards less data, never towards more).
        sealed_cvc = await self.cvc_store.take(record.token)
        cvc = await self._open_cvc(record, sealed_cvc) if sealed_cvc is not None else None
        # Audit before the card leaves: if the record cannot be written, it does not leave.
        await self._audit(
            event,
            caller,
            Outcome.SUCCESS,
            merchant_id=record.merchant_id,
            target=record.token,
            details={"cvc_status": "none" if sealed_cvc is None else "returned_and_deleted"},
        )
        now = self.clock()
        if (record.last_used_at or record.created_at) < now - TOUCH_EVERY:
            # Retention counts from the last use; a day's precision is enough for it.
            await self.store.touch_record(record.token, now)
        return Detokenized(token=record.token, card=card, cvc=cvc)
