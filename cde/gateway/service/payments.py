"""cde.gateway: the payment use cases: authorize, capture, cancel, refund, checkout sessions,
and the status of a payment by our reference.

CDE. Each use case is idempotent by our reference: the gateway keeps a record per reference and
sends the PSP an Idempotency-Key derived from the reference and the operation, so a retried job
never moves money twice. A lost answer is `unknown`, never guessed; `payment_status` (and any
retry) first asks the PSP what happened. A vault card lives only in memory for the one PSP call
that tokenizes it at the PSP (PCI DSS 3.3.1, 3.5.1); PSP-token payments never touch the vault.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from audit.domain import EventType, Outcome
from cde.gateway.domain import (
    AuthorizationRequest,
    CardRejected,
    CardTokenNotFound,
    CardTokenRefused,
    CheckoutRequest,
    CheckoutStatus,
    MethodType,
    Operation,
    PaymentNotFound,
    PaymentOutcome,
    PaymentRecord,
    PaymentStatus,
    PspIdempotencyError,
    PspRequestError,
    PspUnavailable,
    ReferenceConflict,
    RefundRecord,
    RefundStatus,
    SessionRecord,
    decline_message,
    idempotency_key,
)
from cde.gateway.ports import CardSource, GatewayStore, PaymentServiceProvider
from cde.gateway.service.common import Audited, Caller, ReferenceLocks

Clock = Callable[[], float]
_FINAL_REFUND = (RefundStatus.succeeded, RefundStatus.failed, RefundStatus.canceled)


class GatewayService:
    """The gateway's payment use cases; every PSP call goes through `Audited.psp_call`."""

    def __init__(
        self,
        *,
        psp: PaymentServiceProvider,
        cards: CardSource,
        store: GatewayStore,
        audited: Audited,
        clock: Clock = time.time,
    ) -> None:
        self.psp = psp
        self.cards = cards
        self.store = store
        self.audited = audited
        self.clock = clock
        self._locks = ReferenceLocks()

    # ------------------------------------------------------------ authorize

    async def authorize(self, request: PaymentRecord, caller: Caller) -> PaymentOutcome:
        """Authorize (and with `capture`, capture) a charge, once per charge id.

        A retry with the same parameters answers the first outcome; when that outcome was
        unknown it is resolved with the PSP first, and only if the PSP has no payment for the
        charge is it sent again (same Idempotency-Key). Other parameters under the same charge
        id raise `ReferenceConflict`. Raises `CardSourceError` (vault), `PspError` (refused
        request; nothing was charged) and `AuditUnavailable` (nothing was done).
        """
        async with self._locks.hold(request.charge_id):
            stored, created = await self.store.claim_payment(request)
            if not created:
                if not stored.same_request(request):
                    raise await self.audited.refusal(
                        caller,
                        ReferenceConflict(
                            "This charge_id was authorized before with other parameters.",
                            code="idempotency_error",
                            param="charge_id",
                        ),
                        target=request.charge_id,
                    )
                if stored.final:
                    return stored.as_outcome()
                if stored.submitted:
                    stored = await self._resolve(stored, caller)
                    if stored.final:
                        return stored.as_outcome()
            # Shielded: once a PSP call may be under way, its answer must reach the store even
            # if the caller hangs up.
            record = await asyncio.shield(self._submit(stored, caller))
            return record.as_outcome()

    async def _submit(self, record: PaymentRecord, caller: Caller) -> PaymentRecord:
        payment_method = record.psp_payment_method
        if record.method_type is MethodType.psp_token:
            payment_method = record.method_token
        elif payment_method is None:
            record = await self._payment_method_from_vault(record, caller)
            if record.final:
                return record  # the PSP would not take the card: a final `failed`
            payment_method = record.psp_payment_method
            assert payment_method is not None
        record = replace(
            record,
            submitted=True,
            psp_payment_method=payment_method,
            updated_at=self.clock(),
        )
        await self.store.save_payment(record)
        request = AuthorizationRequest(
            reference=record.charge_id,
            amount=record.amount,
            currency=record.currency,
            payment_method=payment_method,
            capture=record.capture,
            description=record.description,
        )
        key = idempotency_key(record.charge_id, Operation.authorize)
        try:
            outcome = await self.audited.psp_call(
                Operation.authorize,
                record.charge_id,
                caller,
                lambda: self.psp.authorize(request, idempotency_key=key),
                merchant_id=record.merchant_id,
                details={"amount": record.amount, "currency": record.currency},
            )
        except PspIdempotencyError:
            # The first request under this key is still running at the PSP (or was sent with
            # another payment method): its outcome is not known yet.
            outcome = PaymentOutcome(PaymentStatus.unknown, None, failure_code="idempotency_error")
        except PspRequestError as exc:
            # The PSP refused the payment itself (nothing was charged): a final failure.
            outcome = PaymentOutcome(
                PaymentStatus.failed,
                None,
                failure_code=exc.code or "psp_request_refused",
                failure_message=exc.message,
            )
        record = record.with_outcome(self._with_message(outcome), self.clock())
        await self.store.save_payment(record)
        return record

    async def _payment_method_from_vault(
        self, record: PaymentRecord, caller: Caller
    ) -> PaymentRecord:
        """Detokenize and tokenize at the PSP. The card exists in this process only in this
        frame, in masked types, until the one PSP call that sends it returns (PCI DSS 3.3.1,
        3.5.1); the CVC, if the vault still held it, is gone from the vault now. Returns the
        record with the PSP token (not yet stored: the caller stores it with `submitted`), or
        the record as a final failure."""
        try:
            card = await self.cards.card_for(record.method_token, record.merchant_id)
        except (CardTokenNotFound, CardTokenRefused) as exc:
            raise await self.audited.refusal(caller, exc, target=record.charge_id) from None
        attempt = record.payment_method_attempts + 1
        # The attempt is stored before the call: a retry after a lost answer uses a fresh key
        # (the card it sends may differ: the CVC was consumed), and this call moves no money.
        record = replace(record, payment_method_attempts=attempt, updated_at=self.clock())
        await self.store.save_payment(record)
        key = idempotency_key(record.charge_id, Operation.payment_method, attempt)
        try:
            made = await self.audited.psp_call(
                Operation.payment_method,
                record.charge_id,
                caller,
                lambda: self.psp.create_payment_method(card, idempotency_key=key),
                merchant_id=record.merchant_id,
                details={"token": record.method_token, "cvc_present": card.cvc is not None},
            )
        except CardRejected as exc:
            code = exc.decline_code or exc.code or "card_declined"
            failed = replace(
                record,
                status=PaymentStatus.failed,
                decline_code=code,
                failure_code=exc.code or "card_declined",
                failure_message=decline_message(code, exc.message),
                updated_at=self.clock(),
            )
            await self.store.save_payment(failed)
            return failed
        return replace(record, psp_payment_method=made.psp_reference, updated_at=self.clock())

    @staticmethod
    def _with_message(outcome: PaymentOutcome) -> PaymentOutcome:
        if outcome.status is not PaymentStatus.failed:
            return outcome
        return replace(
            outcome,
            decline_code=outcome.decline_code,
            failure_message=decline_message(outcome.decline_code, outcome.failure_message),
        )

    async def _resolve(self, record: PaymentRecord, caller: Caller) -> PaymentRecord:
        """Ask the PSP what became of a charge whose answer was lost (by the PSP's id if we
        have it, else by our reference). Unchanged when the PSP cannot say."""
        try:
            if record.psp_reference:
                pi = record.psp_reference
                found: PaymentOutcome | None = await self.audited.psp_call(
                    Operation.retrieve,
                    record.charge_id,
                    caller,
                    lambda: self.psp.retrieve(pi),
                    merchant_id=record.merchant_id,
                    details={"lookup": "retrieve"},
                )
            else:
                found = await self.audited.psp_call(
                    Operation.retrieve,
                    record.charge_id,
                    caller,
                    lambda: self.psp.retrieve_by_reference(record.charge_id),
                    merchant_id=record.merchant_id,
                    details={"lookup": "reference"},
                )
        except PspUnavailable:
            return record
        if found is None:
            return record
        updated = record.with_outcome(self._with_message(found), self.clock())
        await self.store.save_payment(updated)
        return updated

    # ------------------------------------------------------------ status

    async def payment_status(self, charge_id: str, caller: Caller) -> PaymentOutcome:
        """The PSP's current view of our charge (this is how `unknown` is resolved).

        Raises `PaymentNotFound` when the PSP has no payment for the charge (nothing was
        charged; authorizing again is safe) and `PspUnavailable` when it cannot answer.
        """
        async with self._locks.hold(charge_id):
            record = await self.store.payment(charge_id)
            if record is not None and record.psp_reference:
                pi = record.psp_reference
                outcome = await self.audited.psp_call(
                    Operation.retrieve,
                    charge_id,
                    caller,
                    lambda: self.psp.retrieve(pi),
                    merchant_id=record.merchant_id,
                    details={"lookup": "retrieve"},
                )
            elif record is not None and record.final:
                # Failed before any PSP payment existed (the PSP would not take the card).
                return record.as_outcome()
            else:
                found = await self.audited.psp_call(
                    Operation.retrieve,
                    charge_id,
                    caller,
                    lambda: self.psp.retrieve_by_reference(charge_id),
                    merchant_id=record.merchant_id if record else None,
                    details={"lookup": "reference"},
                )
                if found is None:
                    raise PaymentNotFound(
                        "The PSP has no payment for this charge; nothing was charged.",
                        code="payment_not_found",
                        param="charge_id",
                    )
                outcome = found
            outcome = self._with_message(outcome)
            if record is None:
                return replace(outcome, reference=charge_id)
            record = record.with_outcome(outcome, self.clock())
            await self.store.save_payment(record)
            return record.as_outcome()

    # ------------------------------------------------------------ capture / cancel

    async def _payment_for(
        self, charge_id: str, psp_reference: str | None, caller: Caller
    ) -> PaymentRecord:
        """The record of a charge with its PSP id, resolving an unknown authorization, or
        linking a hosted-checkout payment named by `psp_reference` to `charge_id`."""
        record = await self.store.payment(charge_id)
        if record is not None and not record.psp_reference and record.submitted:
            record = await self._resolve(record, caller)
        if record is not None and record.psp_reference:
            return record
        if record is None and psp_reference is not None:
            linked = await self._link_checkout_payment(charge_id, psp_reference)
            if linked is not None:
                return linked
        raise PaymentNotFound(
            "No payment is known for this charge.", code="payment_not_found", param="charge_id"
        )

    async def _link_checkout_payment(self, charge_id: str, pi: str) -> PaymentRecord | None:
        """A payment made on the PSP's hosted page belongs to one of our checkout sessions;
        the API names it by its own charge id from then on. Only a PaymentIntent of a session
        this gateway created can be linked (never an arbitrary PSP payment)."""
        session = await self.store.session_by_psp_reference(pi)
        if session is None or session.payment_reference != pi:
            return None
        now = self.clock()
        record = PaymentRecord(
            charge_id=charge_id,
            merchant_id=session.merchant_id,
            amount=session.amount,
            currency=session.currency,
            capture=True,
            method_type=MethodType.psp_token,
            method_token=session.session_id,
            description=None,
            created_at=now,
            updated_at=now,
            status=PaymentStatus.unknown,
            submitted=True,
            psp_reference=pi,
        )
        stored, _ = await self.store.claim_payment(record)
        return stored if stored.psp_reference == pi else None

    async def capture(
        self, charge_id: str, amount: int | None, psp_reference: str | None, caller: Caller
    ) -> PaymentOutcome:
        """Capture an authorization in full or `amount` of it (once per charge id)."""
        key = idempotency_key(charge_id, Operation.capture)
        return await self._settle(
            charge_id,
            psp_reference,
            caller,
            Operation.capture,
            PaymentStatus.succeeded,
            lambda pi: self.psp.capture(pi, amount=amount, idempotency_key=key),
            {"amount": amount},
        )

    async def cancel(
        self, charge_id: str, psp_reference: str | None, caller: Caller
    ) -> PaymentOutcome:
        """Release an authorization that was not captured (once per charge id)."""
        key = idempotency_key(charge_id, Operation.cancel)
        return await self._settle(
            charge_id,
            psp_reference,
            caller,
            Operation.cancel,
            PaymentStatus.canceled,
            lambda pi: self.psp.cancel(pi, idempotency_key=key),
            {},
        )

    async def _settle(
        self,
        charge_id: str,
        psp_reference: str | None,
        caller: Caller,
        operation: Operation,
        done: PaymentStatus,
        call: Callable[[str], PaymentOutcome],
        details: dict[str, object],
    ) -> PaymentOutcome:
        """Capture or cancel: a charge already `done` answers as it is; otherwise one audited
        PSP call under the operation's key, its answer stored (shielded: once sent, the
        answer must reach the store even if the caller hangs up)."""
        async with self._locks.hold(charge_id):
            record = await self._payment_for(charge_id, psp_reference, caller)
            if record.status is done:
                return record.as_outcome()
            pi = record.psp_reference
            assert pi is not None
            return await asyncio.shield(
                self._money_call(record, operation, caller, lambda: call(pi), details)
            )

    async def _money_call(
        self,
        record: PaymentRecord,
        operation: Operation,
        caller: Caller,
        call: Callable[[], PaymentOutcome],
        details: dict[str, object],
    ) -> PaymentOutcome:
        try:
            outcome = await self.audited.psp_call(
                operation,
                record.charge_id,
                caller,
                call,
                merchant_id=record.merchant_id,
                details=details,
            )
        except PspIdempotencyError:
            outcome = PaymentOutcome(
                PaymentStatus.unknown, record.psp_reference, failure_code="idempotency_error"
            )
        record = record.with_outcome(self._with_message(outcome), self.clock())
        await self.store.save_payment(record)
        return record.as_outcome()

    # ------------------------------------------------------------ refunds

    async def refund(
        self,
        request: RefundRecord,
        psp_reference: str | None,
        caller: Caller,
    ) -> RefundRecord:
        """Refund a captured charge (in full when `amount` is None), once per refund id.

        A refund the PSP refuses (over-refund, not captured) is recorded as `failed` with the
        PSP's code and raised as `PspRequestError`; a retry answers the same refusal.
        """
        async with self._locks.hold(request.refund_id):
            stored, created = await self.store.claim_refund(request)
            if not created:
                if not stored.same_request(request):
                    raise await self.audited.refusal(
                        caller,
                        ReferenceConflict(
                            "This refund_id was used before with other parameters.",
                            code="idempotency_error",
                            param="refund_id",
                        ),
                        target=request.refund_id,
                    )
                if stored.status is RefundStatus.failed and stored.failure_code:
                    raise PspRequestError(
                        stored.failure_message or "The PSP refused the refund.",
                        code=stored.failure_code,
                    )
                if stored.status in _FINAL_REFUND:
                    return stored
            payment = await self._payment_for(stored.charge_id, psp_reference, caller)
            pi = payment.psp_reference
            assert pi is not None
            return await asyncio.shield(self._refund_call(stored, payment, pi, caller))

    async def _refund_call(
        self, record: RefundRecord, payment: PaymentRecord, pi: str, caller: Caller
    ) -> RefundRecord:
        key = idempotency_key(record.refund_id, Operation.refund)
        amount = record.amount
        try:
            outcome = await self.audited.psp_call(
                Operation.refund,
                record.refund_id,
                caller,
                lambda: self.psp.refund(
                    pi, amount=amount, reference=record.refund_id, idempotency_key=key
                ),
                merchant_id=payment.merchant_id,
                details={"charge_id": record.charge_id, "amount": amount},
            )
        except PspIdempotencyError:
            record = replace(record, status=RefundStatus.unknown, updated_at=self.clock())
            await self.store.save_refund(record)
            return record
        except PspRequestError as exc:
            failed = replace(
                record,
                status=RefundStatus.failed,
                payment_reference=pi,
                failure_code=exc.code or "refund_refused",
                failure_message=exc.message,
                updated_at=self.clock(),
            )
            await self.store.save_refund(failed)
            raise
        record = record.with_outcome(outcome, self.clock())
        await self.store.save_refund(record)
        return record

    # ------------------------------------------------------------ checkout sessions

    async def create_checkout_session(
        self, request: SessionRecord, caller: Caller
    ) -> SessionRecord:
        """A PSP-hosted payment page for our payment session, once per session id."""
        async with self._locks.hold(request.session_id):
            stored, created = await self.store.claim_session(request)
            if not created and not stored.same_request(request):
                raise await self.audited.refusal(
                    caller,
                    ReferenceConflict(
                        "This session_id was used before with other parameters.",
                        code="idempotency_error",
                        param="session_id",
                    ),
                    target=request.session_id,
                )
            if stored.psp_session_id:
                return stored
            psp_request = CheckoutRequest(
                reference=stored.session_id,
                amount=stored.amount,
                currency=stored.currency,
                success_url=stored.success_url,
                cancel_url=stored.cancel_url,
                expires_at=(
                    datetime.fromtimestamp(stored.expires_at, UTC) if stored.expires_at else None
                ),
            )
            key = idempotency_key(stored.session_id, Operation.checkout_session)
            session = await self.audited.psp_call(
                Operation.checkout_session,
                stored.session_id,
                caller,
                lambda: self.psp.create_checkout_session(psp_request, idempotency_key=key),
                merchant_id=stored.merchant_id,
                details={"amount": stored.amount, "currency": stored.currency},
            )
            record = replace(
                stored,
                psp_session_id=session.psp_reference,
                url=session.url,
                status=session.status,
                expires_at=(
                    session.expires_at.timestamp() if session.expires_at else stored.expires_at
                ),
                payment_reference=session.payment_reference,
                updated_at=self.clock(),
            )
            await self.store.save_session(record)
            return record

    async def expire_checkout_session(self, session_id: str, caller: Caller) -> SessionRecord:
        """Expire an open session so its page can no longer be paid."""
        async with self._locks.hold(session_id):
            record = await self.store.session(session_id)
            if record is None or record.psp_session_id is None:
                raise PaymentNotFound(
                    "No checkout session is known for this session_id.",
                    code="resource_missing",
                    param="session_id",
                )
            if record.status is CheckoutStatus.expired:
                return record
            cs = record.psp_session_id
            key = idempotency_key(session_id, Operation.expire_checkout_session)
            session = await self.audited.psp_call(
                Operation.expire_checkout_session,
                session_id,
                caller,
                lambda: self.psp.expire_checkout_session(cs, idempotency_key=key),
                merchant_id=record.merchant_id,
            )
            record = replace(record, status=session.status, updated_at=self.clock())
            await self.store.save_session(record)
            return record

    # ------------------------------------------------------------ refusals

    async def refused_caller(self, caller: Caller, reason: str, target: str | None) -> None:
        """Audit a caller refused by the endpoint's allow-list or a bad service token."""
        await self.audited.arecord(
            EventType.SERVICE_IDENTITY_REFUSED,
            caller,
            Outcome.FAILURE,
            target=target,
            resource="gateway.api",
            reason=reason[:200],
        )
