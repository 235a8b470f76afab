"""noncde.api (non-CDE): the payment use cases: charges, captures, cancels, refunds, payment
sessions, the merchant's events and the PSP events relayed by the gateway.

Every write is one unit of work of the platform: the idempotency record, the events and the
jobs commit together or not at all (DESIGN.md section 3), so a crash never leaves an event
without its job, and a replayed Idempotency-Key returns the stored answer. State changes to an
existing charge or session append with the stream's expected version (optimistic
concurrency): two refunds racing for the last captured cents cannot both be accepted.

Reads by id fold the object's event stream (always fresh); lists come from the read model
(`PaymentQueries`), which trails the event store by the projection lag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fincore.logs import get_logger
from noncde.api.domain.commands import (
    CancelCharge,
    CaptureCharge,
    CreateCharge,
    CreatePaymentSession,
    CreateRefund,
    ExpirePaymentSession,
    RecordPspEvent,
    request_fingerprint,
)
from noncde.api.domain.entities import (
    Charge,
    ChargeStatus,
    PaymentSession,
    RefundStatus,
    SessionStatus,
)
from noncde.api.domain.errors import (
    CardError,
    DependencyUnavailable,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidRequest,
    InvalidState,
    PaymentApiError,
    PermissionDenied,
    ResourceMissing,
)
from noncde.api.domain.events import (
    CardDisplay,
    ChargeAuthorized,
    ChargeCanceled,
    ChargeCancelRequested,
    ChargeCaptured,
    ChargeCaptureRequested,
    ChargeFailed,
    ChargeRequested,
    ChargeRiskAssessed,
    DomainEvent,
    Flow,
    PaymentMethodRef,
    PaymentMethodType,
    PaymentSessionCompleted,
    PaymentSessionCreated,
    PaymentSessionExpired,
    RefundFailed,
    RefundRequested,
    RefundSucceeded,
    RiskDecision,
)
from noncde.api.domain.ids import (
    CHARGE,
    EVENT,
    PAYMENT_SESSION,
    REFUND,
    charge_stream,
    is_id,
    new_id,
    session_stream,
)
from noncde.api.domain.jobs import AuthorizeCharge, ExecuteRefund
from noncde.api.domain.jobs import CancelCharge as CancelJob
from noncde.api.domain.jobs import CaptureCharge as CaptureJob
from noncde.api.domain.merchants import MerchantAuth
from noncde.api.domain.risk import RiskInput
from noncde.api.domain.time import rfc3339
from noncde.api.ports import (
    CheckoutGateway,
    CheckoutSessionRequest,
    CursorNotFound,
    Page,
    PageRequest,
    PaymentQueries,
)
from noncde.api.service.risk import RiskEngine
from noncde.platform.domain import (
    ConcurrencyConflict,
    NewEvent,
    Reservation,
    ReservationStatus,
    StoredResponse,
)
from noncde.platform.ports import Platform, UnitOfWork

Clock = Callable[[], datetime]
AfterCommit = list[Callable[[], None]]
_ATTEMPTS = 4
# The PSP (like Stripe) refuses a hosted session that expires less than 30 minutes after it
# creates it, counted on its own clock, a moment after ours: a session asked for with the
# shortest `expires_in` gets this much more, so the request is never refused for the trip.
PSP_MIN_SESSION_S = 30 * 60
SESSION_EXPIRY_SLACK_S = 60


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the merchant (from its API key), the request id, the Idempotency-Key,
    and whether the card ingress relayed the request (its service identity was verified)."""

    merchant: MerchantAuth
    request_id: str | None = None
    idempotency_key: str | None = None
    via_ingress: bool = False

    @property
    def merchant_id(self) -> str:
        return self.merchant.merchant_id


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status and JSON body; `replayed` for a stored idempotent answer."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


class ConcurrentUpdate(PaymentApiError):
    """409: the object kept changing under this request; retry it."""

    status = 409
    default_code = "concurrent_update"


def _storable(error: PaymentApiError) -> bool:
    """Stripe saves the outcome of a request once it started executing, except when a
    dependency failed (the retry should run again) or the key was in use."""
    return not isinstance(error, DependencyUnavailable | IdempotencyKeyInFlight)


def _list(url: str, data: Sequence[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": list(data), "has_more": has_more, "url": url}


class PaymentService:
    """Charges, refunds, payment sessions and events for one deployment of the API."""

    def __init__(
        self,
        platform: Platform,
        queries: PaymentQueries,
        risk: RiskEngine,
        gateway: CheckoutGateway,
        *,
        livemode: bool = False,
        session_default_expires_s: int = 86_400,
        clock: Clock = utc_now,
        on_commit: Callable[[], None] | None = None,
        catch_up: Callable[[], int] | None = None,
    ) -> None:
        self.platform = platform
        self.queries = queries
        self.risk = risk
        self.gateway = gateway
        self.livemode = livemode
        self.session_default_expires_s = session_default_expires_s
        self.clock = clock
        self._on_commit = on_commit
        self._catch_up = catch_up
        self._log = get_logger("api.payments")

    # ------------------------------------------------------------ plumbing

    def _new_events(
        self,
        events: Sequence[DomainEvent],
        merchant_id: str,
        correlation_id: str | None,
        causation_id: str | None = None,
    ) -> list[NewEvent]:
        return [
            NewEvent(
                type=event.type,
                data=event.to_data(),
                merchant_id=merchant_id,
                correlation_id=correlation_id,
                causation_id=causation_id,
                id=new_id(EVENT),
            )
            for event in events
        ]

    def _run(
        self,
        merchant_id: str,
        idempotency_key: str | None,
        fingerprint: Callable[[], str],
        work: Callable[[UnitOfWork, AfterCommit], tuple[int, dict[str, Any]]],
    ) -> Reply:
        """One write as one unit of work with Stripe's idempotency semantics.

        The reservation, the events, the jobs and the stored response commit together. A
        stream conflict (a concurrent writer) rolls everything back and runs `work` again
        on fresh state.
        """
        for _ in range(_ATTEMPTS):
            after: AfterCommit = []
            try:
                with self.platform.unit_of_work() as uow:
                    reservation: Reservation | None = None
                    if idempotency_key is not None:
                        reservation = uow.idempotency.reserve(
                            merchant_id, idempotency_key, fingerprint()
                        )
                        replay = self._replay_or_refuse(reservation)
                        if replay is not None:
                            return replay
                    try:
                        status, body = work(uow, after)
                    except PaymentApiError as exc:
                        if not _storable(exc):
                            raise
                        status, body = exc.status, exc.body()
                    if reservation is not None:
                        uow.idempotency.complete(reservation, StoredResponse(status, body))
                    uow.commit()
            except ConcurrencyConflict:
                continue
            self._after_commit(after)
            return Reply(status, body)
        raise ConcurrentUpdate("This object is being changed by another request; retry.")

    @staticmethod
    def _replay_or_refuse(reservation: Reservation) -> Reply | None:
        if reservation.status is ReservationStatus.FINISHED:
            assert reservation.response is not None
            stored = reservation.response
            return Reply(stored.status_code, dict(stored.body), replayed=True)
        if reservation.status is ReservationStatus.MISMATCH:
            raise IdempotencyKeyReused(
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with. Use a new Idempotency-Key for a different request.",
                param="Idempotency-Key",
            )
        if reservation.status is ReservationStatus.IN_FLIGHT:
            raise IdempotencyKeyInFlight(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                param="Idempotency-Key",
            )
        return None

    def _after_commit(self, after: AfterCommit) -> None:
        for hook in after:
            hook()
        if self._on_commit is not None:
            self._on_commit()

    def _charge(self, merchant_id: str, charge_id: str, param: str = "charge") -> Charge:
        """The merchant's charge folded from its stream (404 for anything else)."""
        charge = None
        if is_id(charge_id, CHARGE):
            charge = Charge.fold(self.platform.events.read_stream(charge_stream(charge_id)))
        if charge is None or charge.merchant_id != merchant_id:
            raise ResourceMissing("No such charge.", param=param)
        return charge

    def _session(self, merchant_id: str, session_id: str) -> PaymentSession:
        session = None
        if is_id(session_id, PAYMENT_SESSION):
            stream = self.platform.events.read_stream(session_stream(session_id))
            session = PaymentSession.fold(stream)
        if session is None or session.merchant_id != merchant_id:
            raise ResourceMissing("No such payment session.", param="id")
        return session

    # ------------------------------------------------------------ charges

    def create_charge(self, caller: Caller, command: CreateCharge) -> Reply:
        """Record a charge request (status `processing`) and its authorization job.

        A vault token is accepted only from the card ingress for a merchant that holds an
        active raw-card capability (PCI DSS 12.8; DESIGN.md flow S2S); a PSP token only from
        the merchant itself. A `block` from the risk engine records the charge as failed with
        `risk_blocked` and answers 402 (no job).
        """
        method = command.payment_method
        if method.type is PaymentMethodType.VAULT_TOKEN:
            if not caller.via_ingress:
                raise PermissionDenied(
                    "vault_token payment methods are accepted only from the card ingress.",
                    code="vault_token_not_permitted",
                    param="payment_method[type]",
                )
            if not caller.merchant.raw_card.active_on(self.clock().date()):
                raise PermissionDenied(
                    "This account may not send raw card data.",
                    code="raw_card_data_not_permitted",
                )
            flow = Flow.S2S
        else:
            if caller.via_ingress:
                raise InvalidRequest(
                    "The card ingress forwards vault tokens only.", param="payment_method[type]"
                )
            flow = Flow.SDK

        def fingerprint() -> str:
            return request_fingerprint(
                "charges.create", command.fingerprint_params(caller.via_ingress)
            )

        def work(uow: UnitOfWork, after: AfterCommit) -> tuple[int, dict[str, Any]]:
            return self._create_charge(uow, after, caller, command, flow)

        return self._run(caller.merchant_id, caller.idempotency_key, fingerprint, work)

    def _create_charge(
        self,
        uow: UnitOfWork,
        after: AfterCommit,
        caller: Caller,
        command: CreateCharge,
        flow: Flow,
    ) -> tuple[int, dict[str, Any]]:
        charge_id = new_id(CHARGE)
        method = command.payment_method
        card = method.card
        assessment, series = self.risk.assess(
            RiskInput(
                merchant_id=caller.merchant_id,
                amount=command.amount,
                currency=command.currency,
                flow=flow,
                card_fingerprint=card.fingerprint if card else None,
                bin=card.bin if card else None,
            )
        )
        if card is not None and assessment.country and card.country is None:
            method = PaymentMethodRef(
                method.type,
                method.token,
                CardDisplay(
                    brand=card.brand,
                    last4=card.last4,
                    exp_month=card.exp_month,
                    exp_year=card.exp_year,
                    fingerprint=card.fingerprint,
                    bin=card.bin,
                    country=assessment.country,
                ),
            )
        events: list[DomainEvent] = [
            ChargeRequested(
                charge_id=charge_id,
                amount=command.amount,
                currency=command.currency,
                capture=command.capture,
                payment_method=method,
                flow=flow,
                created=rfc3339(self.clock()),
                description=command.description,
                metadata=dict(command.metadata),
                idempotency_key=caller.idempotency_key,
            ),
            ChargeRiskAssessed(
                charge_id=charge_id,
                decision=assessment.decision,
                reasons=list(assessment.reasons),
                rules_version=assessment.rules_version,
                rules=list(assessment.rules),
            ),
        ]
        blocked = assessment.decision is RiskDecision.BLOCK
        if blocked:
            events.append(
                ChargeFailed(
                    charge_id=charge_id,
                    failure_code="risk_blocked",
                    failure_message="The payment was blocked by the risk rules.",
                )
            )
        recorded = uow.events.append(
            charge_stream(charge_id),
            self._new_events(events, caller.merchant_id, caller.request_id),
            expected_version=0,
        )
        if not blocked:
            job = AuthorizeCharge(
                charge_id=charge_id,
                merchant_id=caller.merchant_id,
                amount=command.amount,
                currency=command.currency,
                capture=command.capture,
                payment_method=method.job_data(),
            )
            uow.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
        after.append(lambda: self.risk.record(series))
        if blocked:
            return 402, CardError(
                "The payment was blocked by the risk rules.",
                code="risk_blocked",
                extra={"charge": charge_id, "reasons": list(assessment.reasons)},
            ).body()
        charge = Charge.fold(recorded, caller.merchant_id)
        assert charge is not None
        return 201, charge.to_api(self.livemode)

    def get_charge(self, merchant_id: str, charge_id: str) -> dict[str, Any]:
        return self._charge(merchant_id, charge_id, param="id").to_api(self.livemode)

    def _authorized_charge(self, caller: Caller, charge_id: str, verb: str, able: str) -> Charge:
        """The charge, if it is authorized and no capture or cancel of it is under way."""
        charge = self._charge(caller.merchant_id, charge_id, param="id")
        if charge.status is not ChargeStatus.REQUIRES_CAPTURE:
            raise InvalidState(
                f"This charge cannot be {verb}: its status is {charge.status}.",
                code=f"charge_not_{able}",
            )
        if charge.capture_requested is not None or charge.cancel_requested:
            raise InvalidState(
                "A capture or cancel of this charge is already in progress.",
                code="charge_operation_pending",
            )
        return charge

    def capture_charge(self, caller: Caller, command: CaptureCharge) -> Reply:
        """Ask for the capture of an authorized charge (full, or partial with `amount`)."""

        def work(uow: UnitOfWork, after: AfterCommit) -> tuple[int, dict[str, Any]]:
            charge = self._authorized_charge(caller, command.charge_id, "captured", "capturable")
            amount = command.amount if command.amount is not None else charge.amount_capturable
            if amount > charge.amount_capturable:
                raise InvalidState(
                    "The amount to capture exceeds the authorized amount.",
                    code="amount_too_large",
                    param="amount",
                )
            recorded = uow.events.append(
                charge_stream(charge.id),
                self._new_events(
                    [ChargeCaptureRequested(charge.id, amount)],
                    caller.merchant_id,
                    caller.request_id,
                ),
                expected_version=charge.version,
            )
            job = CaptureJob(charge.id, caller.merchant_id, amount)
            uow.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
            for event in recorded:
                charge.apply(event)
            return 200, charge.to_api(self.livemode)

        return self._run(
            caller.merchant_id,
            caller.idempotency_key,
            lambda: request_fingerprint(
                "charges.capture", {"charge": command.charge_id, "amount": command.amount}
            ),
            work,
        )

    def cancel_charge(self, caller: Caller, command: CancelCharge) -> Reply:
        """Ask for the release of an uncaptured authorization."""

        def work(uow: UnitOfWork, after: AfterCommit) -> tuple[int, dict[str, Any]]:
            charge = self._authorized_charge(caller, command.charge_id, "canceled", "cancelable")
            recorded = uow.events.append(
                charge_stream(charge.id),
                self._new_events(
                    [ChargeCancelRequested(charge.id)], caller.merchant_id, caller.request_id
                ),
                expected_version=charge.version,
            )
            job = CancelJob(charge.id, caller.merchant_id)
            uow.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
            for event in recorded:
                charge.apply(event)
            return 200, charge.to_api(self.livemode)

        return self._run(
            caller.merchant_id,
            caller.idempotency_key,
            lambda: request_fingerprint("charges.cancel", {"charge": command.charge_id}),
            work,
        )

    def list_charges(
        self, merchant_id: str, page: PageRequest, status: str | None = None
    ) -> dict[str, Any]:
        found = self._page(lambda: self.queries.list_charges(merchant_id, page, status))
        return _list("/v1/charges", [c.to_api(self.livemode) for c in found.data], found.has_more)

    # ------------------------------------------------------------ refunds

    def create_refund(self, caller: Caller, command: CreateRefund) -> Reply:
        """Ask for a (partial) refund of a succeeded charge; never beyond what was captured
        minus what is refunded or being refunded (checked against the charge stream's
        version, so concurrent refunds cannot together exceed it)."""

        def work(uow: UnitOfWork, after: AfterCommit) -> tuple[int, dict[str, Any]]:
            charge = self._charge(caller.merchant_id, command.charge_id, param="charge")
            if charge.status is not ChargeStatus.SUCCEEDED:
                raise InvalidState(
                    f"This charge cannot be refunded: its status is {charge.status}.",
                    code="charge_not_refundable",
                    param="charge",
                )
            refundable = charge.amount_refundable
            if refundable == 0:
                raise InvalidState(
                    "This charge has already been refunded in full.",
                    code="charge_already_refunded",
                    param="charge",
                )
            amount = command.amount if command.amount is not None else refundable
            if amount > refundable:
                raise InvalidState(
                    f"The refund amount exceeds what remains refundable ({refundable}).",
                    code="amount_too_large",
                    param="amount",
                )
            refund_id = new_id(REFUND)
            recorded = uow.events.append(
                charge_stream(charge.id),
                self._new_events(
                    [RefundRequested(refund_id, charge.id, amount, command.reason)],
                    caller.merchant_id,
                    caller.request_id,
                ),
                expected_version=charge.version,
            )
            job = ExecuteRefund(refund_id, charge.id, caller.merchant_id, amount)
            uow.jobs.enqueue(job.type, job.to_payload(), dedup_id=job.dedup_id)
            for event in recorded:
                charge.apply(event)
            refund = charge.refund(refund_id)
            assert refund is not None
            return 201, refund.to_api(self.livemode)

        return self._run(
            caller.merchant_id,
            caller.idempotency_key,
            lambda: request_fingerprint(
                "refunds.create",
                {"charge": command.charge_id, "amount": command.amount, "reason": command.reason},
            ),
            work,
        )

    def get_refund(self, merchant_id: str, refund_id: str) -> dict[str, Any]:
        missing = ResourceMissing("No such refund.", param="id")
        if not is_id(refund_id, REFUND):
            raise missing
        owner = self.queries.refund_owner(refund_id)
        if owner is None and self._catch_up is not None:
            self._catch_up()  # just created? bring the read model up to date once
            owner = self.queries.refund_owner(refund_id)
        if owner is None or owner[1] != merchant_id:
            raise missing
        charge = self._charge(merchant_id, owner[0])
        refund = charge.refund(refund_id)
        if refund is None:
            raise missing
        return refund.to_api(self.livemode)

    def list_refunds(
        self, merchant_id: str, page: PageRequest, charge_id: str | None = None
    ) -> dict[str, Any]:
        found = self._page(lambda: self.queries.list_refunds(merchant_id, page, charge_id))
        return _list("/v1/refunds", [r.to_api(self.livemode) for r in found.data], found.has_more)

    # ------------------------------------------------------------ payment sessions

    def _reserve_standalone(
        self, caller: Caller, fingerprint: str
    ) -> tuple[Reservation | None, Reply | None]:
        """Reserve the key before a gateway call: the call must not run twice concurrently,
        and a database transaction must not stay open across it."""
        if caller.idempotency_key is None:
            return None, None
        reservation = self.platform.idempotency.reserve(
            caller.merchant_id, caller.idempotency_key, fingerprint
        )
        return reservation, self._replay_or_refuse(reservation)

    def create_session(self, caller: Caller, command: CreatePaymentSession) -> Reply:
        """Create a hosted payment page at the PSP (through the gateway) and record it."""
        expires_in = command.expires_in or self.session_default_expires_s
        fingerprint = request_fingerprint(
            "payment_sessions.create",
            {
                "amount": command.amount,
                "currency": command.currency,
                "success_url": command.success_url,
                "cancel_url": command.cancel_url,
                "expires_in": command.expires_in,
                "metadata": dict(command.metadata),
            },
        )
        reservation, replay = self._reserve_standalone(caller, fingerprint)
        if replay is not None:
            return replay
        try:
            session_id = new_id(PAYMENT_SESSION)
            created = self.gateway.create_checkout_session(
                CheckoutSessionRequest(
                    session_id=session_id,
                    merchant_id=caller.merchant_id,
                    amount=command.amount,
                    currency=command.currency,
                    success_url=command.success_url,
                    cancel_url=command.cancel_url,
                    expires_at=self.clock()
                    + timedelta(
                        seconds=max(expires_in, PSP_MIN_SESSION_S + SESSION_EXPIRY_SLACK_S)
                    ),
                )
            )
            event = PaymentSessionCreated(
                session_id=session_id,
                amount=command.amount,
                currency=command.currency,
                success_url=command.success_url,
                cancel_url=command.cancel_url,
                expires_at=rfc3339(created.expires_at),
                url=created.url,
                psp_session_id=created.psp_session_id,
                metadata=dict(command.metadata),
            )
            with self.platform.unit_of_work() as uow:
                recorded = uow.events.append(
                    session_stream(session_id),
                    self._new_events([event], caller.merchant_id, caller.request_id),
                    expected_version=0,
                )
                session = PaymentSession.fold(recorded, caller.merchant_id)
                assert session is not None
                body = session.to_api(self.clock(), self.livemode)
                if reservation is not None:
                    uow.idempotency.complete(reservation, StoredResponse(201, body))
                uow.commit()
        except BaseException:
            if reservation is not None:
                self.platform.idempotency.release(reservation)
            raise
        self._after_commit([])
        return Reply(201, body)

    def get_session(self, merchant_id: str, session_id: str) -> dict[str, Any]:
        return self._session(merchant_id, session_id).to_api(self.clock(), self.livemode)

    def expire_session(self, caller: Caller, command: ExpirePaymentSession) -> Reply:
        """Expire an open session at the PSP and here; a paid or expired one is left alone."""
        session = self._session(caller.merchant_id, command.session_id)
        fingerprint = request_fingerprint(
            "payment_sessions.expire", {"session": command.session_id}
        )
        reservation, replay = self._reserve_standalone(caller, fingerprint)
        if replay is not None:
            return replay
        try:
            if session.status is not SessionStatus.OPEN:
                error = InvalidState(
                    f"This payment session is {session.status}; only open sessions can be expired.",
                    code="payment_session_unexpected_state",
                )
                self._finish_standalone(reservation, error.status, error.body())
                return Reply(error.status, error.body())
            self.gateway.expire_checkout_session(session.id)
            body: dict[str, Any] = {}
            for _ in range(_ATTEMPTS):
                try:
                    with self.platform.unit_of_work() as uow:
                        current = self._session(caller.merchant_id, command.session_id)
                        if current.status is SessionStatus.OPEN:
                            for event in uow.events.append(
                                session_stream(current.id),
                                self._new_events(
                                    [PaymentSessionExpired(current.id)],
                                    caller.merchant_id,
                                    caller.request_id,
                                ),
                                expected_version=current.version,
                            ):
                                current.apply(event)
                        body = current.to_api(self.clock(), self.livemode)
                        if reservation is not None:
                            uow.idempotency.complete(reservation, StoredResponse(200, body))
                        uow.commit()
                    break
                except ConcurrencyConflict:
                    continue
            else:
                raise ConcurrentUpdate("This payment session kept changing; retry.")
        except BaseException:
            if reservation is not None:
                self.platform.idempotency.release(reservation)
            raise
        self._after_commit([])
        return Reply(200, body)

    def _finish_standalone(
        self, reservation: Reservation | None, status: int, body: dict[str, Any]
    ) -> None:
        if reservation is None:
            return
        with self.platform.unit_of_work() as uow:
            uow.idempotency.complete(reservation, StoredResponse(status, body))
            uow.commit()

    def list_sessions(
        self, merchant_id: str, page: PageRequest, status: str | None = None
    ) -> dict[str, Any]:
        found = self._page(lambda: self.queries.list_sessions(merchant_id, page, status))
        now = self.clock()
        return _list(
            "/v1/payment_sessions",
            [s.to_api(now, self.livemode) for s in found.data],
            found.has_more,
        )

    # ------------------------------------------------------------ events

    def list_events(
        self, merchant_id: str, page: PageRequest, types: Sequence[str] = ()
    ) -> dict[str, Any]:
        found = self._page(lambda: self.queries.list_events(merchant_id, page, types))
        return _list("/v1/events", found.data, found.has_more)

    def get_event(self, merchant_id: str, event_id: str) -> dict[str, Any]:
        missing = ResourceMissing("No such event.", param="id")
        if not is_id(event_id, EVENT):
            raise missing
        event = self.queries.get_event(merchant_id, event_id)
        if event is None and self._catch_up is not None:
            self._catch_up()
            event = self.queries.get_event(merchant_id, event_id)
        if event is None:
            raise missing
        return event

    @staticmethod
    def _page(read: Callable[[], Page[Any]]) -> Page[Any]:
        try:
            return read()
        except CursorNotFound as exc:
            # Stripe answers an unknown cursor like an unknown object: 404 resource_missing.
            raise ResourceMissing(f"No such object for {exc.param}.", param=exc.param) from None

    # ------------------------------------------------------------ PSP events (from the gateway)

    def record_psp_event(self, event: RecordPspEvent, request_id: str | None) -> Reply:
        """Apply a PSP event relayed by the gateway; idempotent by the event's id.

        Completion of a hosted session records the session as complete and its charge (flow
        `redirect`, captured by the PSP) in one unit of work; a second completion of the same
        session is ignored (one-time use). Outcomes of charges and refunds are applied only if
        the object is still waiting for them (the job worker may have recorded them first).
        """
        merchant_id, target = self._psp_target(event)
        fingerprint = request_fingerprint(
            "psp_events",
            {"type": event.type, "charge": event.charge_id, "session": event.session_id},
        )

        def work(uow: UnitOfWork, after: AfterCommit) -> tuple[int, dict[str, Any]]:
            outcome = self._apply_psp_event(uow, event, merchant_id, target, request_id)
            return 200, {"id": event.id, "object": "psp_event", "received": True, **outcome}

        return self._run(merchant_id, f"psp_event:{event.id}", lambda: fingerprint, work)

    def _psp_target(self, event: RecordPspEvent) -> tuple[str, str]:
        session_payment = event.type.startswith("payment.") and event.charge_id is None
        if event.type.startswith("checkout_session.") or session_payment:
            if event.session_id is None or not is_id(event.session_id, PAYMENT_SESSION):
                raise InvalidRequest("session_id is required for this event.", param="session_id")
            stream = self.platform.events.read_stream(session_stream(event.session_id), limit=1)
            if not stream or not stream[0].merchant_id:
                raise ResourceMissing("No such payment session.", param="session_id")
            return stream[0].merchant_id, event.session_id
        if event.charge_id is None or not is_id(event.charge_id, CHARGE):
            raise InvalidRequest("charge_id is required for this event.", param="charge_id")
        stream = self.platform.events.read_stream(charge_stream(event.charge_id), limit=1)
        if not stream or not stream[0].merchant_id:
            raise ResourceMissing("No such charge.", param="charge_id")
        return stream[0].merchant_id, event.charge_id

    def _apply_psp_event(
        self,
        uow: UnitOfWork,
        event: RecordPspEvent,
        merchant_id: str,
        target: str,
        request_id: str | None,
    ) -> dict[str, Any]:
        def append(stream: str, events: Sequence[DomainEvent], expected: int) -> None:
            uow.events.append(
                stream,
                self._new_events(events, merchant_id, request_id, causation_id=event.id),
                expected_version=expected,
            )

        if event.type.startswith("payment.") and event.charge_id is None:
            # The payment of a hosted session: its `checkout_session.completed` records it.
            return {"applied": False, "reason": "recorded_by_session_completion"}
        if event.type == "checkout_session.completed":
            session = self._session(merchant_id, target)
            if session.status is SessionStatus.COMPLETE:
                return {"applied": False, "reason": "session_already_complete"}
            if session.status is SessionStatus.EXPIRED:
                # The PSP took the money regardless: record it (and tell the operators).
                self._log.warning("completion of an expired session", session_id=session.id)
            charge_id = new_id(CHARGE)
            amount = event.amount if event.amount is not None else session.amount
            reference = event.psp_reference or session.psp_session_id
            method = event.payment_method or PaymentMethodRef(
                PaymentMethodType.PSP_TOKEN, reference
            )
            append(
                session_stream(session.id),
                [PaymentSessionCompleted(session.id, charge_id, reference)],
                session.version,
            )
            append(
                charge_stream(charge_id),
                [
                    ChargeRequested(
                        charge_id=charge_id,
                        amount=amount,
                        currency=event.currency or session.currency,
                        capture=True,
                        payment_method=method,
                        flow=Flow.REDIRECT,
                        created=rfc3339(self.clock()),
                        session_id=session.id,
                        metadata=dict(session.metadata),
                    ),
                    ChargeCaptured(charge_id, amount, amount, reference),
                ],
                0,
            )
            return {"applied": True, "charge": charge_id}
        if event.type == "checkout_session.expired":
            session = self._session(merchant_id, target)
            if session.status is not SessionStatus.OPEN:
                return {"applied": False, "reason": f"session_{session.status}"}
            append(session_stream(session.id), [PaymentSessionExpired(session.id)], session.version)
            return {"applied": True}
        charge = self._charge(merchant_id, target, param="charge_id")
        reference = event.psp_reference or charge.psp_reference or ""
        stream = charge_stream(charge.id)
        if event.type in {"payment.succeeded", "payment.captured"}:
            if charge.status in {
                ChargeStatus.SUCCEEDED,
                ChargeStatus.FAILED,
                ChargeStatus.CANCELED,
            }:
                return {"applied": False, "reason": f"charge_{charge.status}"}
            amount = event.amount if event.amount is not None else charge.amount
            if charge.capture or charge.status is ChargeStatus.REQUIRES_CAPTURE:
                append(
                    stream, [ChargeCaptured(charge.id, amount, amount, reference)], charge.version
                )
            else:
                append(stream, [ChargeAuthorized(charge.id, amount, reference)], charge.version)
            return {"applied": True}
        if event.type == "payment.authorized":
            if charge.status is not ChargeStatus.PROCESSING:
                return {"applied": False, "reason": f"charge_{charge.status}"}
            amount = event.amount if event.amount is not None else charge.amount
            append(stream, [ChargeAuthorized(charge.id, amount, reference)], charge.version)
            return {"applied": True}
        if event.type == "payment.failed":
            if charge.status is not ChargeStatus.PROCESSING:
                return {"applied": False, "reason": f"charge_{charge.status}"}
            append(
                stream,
                [
                    ChargeFailed(
                        charge.id,
                        failure_code="card_declined",
                        failure_message=event.message or "The card was declined.",
                        decline_code=event.decline_code,
                        psp_reference=event.psp_reference,
                    )
                ],
                charge.version,
            )
            return {"applied": True}
        if event.type == "payment.canceled":
            if charge.status is not ChargeStatus.REQUIRES_CAPTURE:
                return {"applied": False, "reason": f"charge_{charge.status}"}
            append(stream, [ChargeCanceled(charge.id, event.psp_reference)], charge.version)
            return {"applied": True}
        if event.type == "refund.pending":
            return {"applied": False, "reason": "refund_pending"}
        if event.type in {"refund.succeeded", "refund.failed", "refund.canceled"}:
            refund = charge.refund(event.refund_id) if event.refund_id else None
            if refund is None:
                return {"applied": False, "reason": "refund_unknown"}
            if refund.status is not RefundStatus.PENDING:
                return {"applied": False, "reason": f"refund_{refund.status}"}
            outcome: DomainEvent
            if event.type == "refund.succeeded":
                outcome = RefundSucceeded(refund.id, charge.id, refund.amount, reference)
            else:
                outcome = RefundFailed(
                    refund.id,
                    charge.id,
                    event.decline_code or "refund_failed",
                    event.message or "The PSP refused the refund.",
                )
            append(stream, [outcome], charge.version)
            return {"applied": True}
        return {"applied": False, "reason": "event_type_not_handled"}
